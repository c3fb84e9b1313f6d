//! In-process fan-out of the reflector's changes: a channel per watched object and a bounded window
//! of recent changes to replay from.
//!
//! Each watched object has a `tokio::sync::broadcast` channel, created when its first stream
//! subscribes and removed with its last. A broadcast channel holds a fixed number of changes however
//! many streams read it, and a stream that falls further behind than that skips the oldest ones
//! (`Lagged`) and carries on with the newest: a slow client costs a bounded amount of memory and
//! never holds up the reflector or other clients.
//!
//! The window is the broker's answer to "every change since version R": like the API server's watch
//! cache, it keeps the last N changes of all test clusters (shared `Arc`s, not copies), so a client
//! that watches right after its create misses no phase. A version older than the window is treated
//! as the API server treats a compacted one: the stream starts from the current state.
//!
//! Changes are recorded and sent under one lock, and a subscriber reads the window, the store and
//! takes its receiver under that same lock, so that nothing falls between replay and live changes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::runtime::reflector::{ObjectRef, Store};
use testcluster_resources::TestClusterGKE;
use tokio::sync::{broadcast, watch};

use super::version::version_of;

/// Changes a watched object's channel holds for its slowest stream.
const CHANNEL_CAPACITY: usize = 16;

/// One change of one object, as the reflector delivered it.
#[derive(Clone, Debug)]
pub enum Change {
    /// Created or modified: the object as it now is.
    Applied(Arc<TestClusterGKE>),
    /// Deleted: the object as it was last.
    Deleted(Arc<TestClusterGKE>),
    /// Gone without a delete event: the reflector re-listed (its watch broke for too long) and the
    /// object was no longer there.
    Vanished,
}

pub type Key = ObjectRef<TestClusterGKE>;

pub struct Fanout {
    inner: Mutex<Inner>,
    /// The highest version dispatched so far: how far the reflector has caught up with the API
    /// server, as far as test clusters tell.
    seen: watch::Sender<u64>,
}

struct Inner {
    channels: HashMap<Key, broadcast::Sender<Change>>,
    window: VecDeque<(Key, u64, Change)>,
    window_size: usize,
    /// Every change after this version is in the window (`u64::MAX` while re-listing: none is
    /// known to be).
    complete_after: u64,
}

/// One stream's hold on an object's changes: what it starts from, and the changes after that.
pub struct Subscription {
    /// `None` only while dropping.
    receiver: Option<broadcast::Receiver<Change>>,
    fanout: Arc<Fanout>,
    key: Key,
    /// The object in the store when the stream subscribed (possibly one change ahead of the
    /// receiver: streams skip versions they have seen).
    pub current: Option<Arc<TestClusterGKE>>,
    /// The object's changes after the asked-for version, when the window still holds them all.
    pub replay: Option<Vec<Change>>,
}

impl Fanout {
    pub fn new(window_size: usize) -> Self {
        Fanout {
            inner: Mutex::new(Inner {
                channels: HashMap::new(),
                window: VecDeque::with_capacity(window_size),
                window_size,
                complete_after: 0,
            }),
            seen: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind, still consistent enough to use.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records and sends a change of `key` at `version` (0 when unknown, as for `Vanished`).
    pub fn dispatch(&self, key: Key, version: u64, change: Change) {
        {
            let mut inner = self.lock();
            if let Some(sender) = inner.channels.get(&key) {
                // An error means no receiver is left; the last one removes the channel.
                let _ = sender.send(change.clone());
            }
            if inner.window_size > 0 && version > 0 {
                if inner.window.len() == inner.window_size
                    && let Some((_, dropped, _)) = inner.window.pop_front()
                {
                    inner.complete_after = inner.complete_after.max(dropped);
                }
                inner.window.push_back((key, version, change));
            }
        }
        self.seen.send_if_modified(|seen| {
            let newer = version > *seen;
            *seen = (*seen).max(version);
            newer
        });
    }

    /// The reflector starts listing again: changes it missed meanwhile are not in the window.
    pub fn relisting(&self) {
        self.lock().complete_after = u64::MAX;
    }

    /// The re-list is done: objects with streams that are no longer in `store` vanished, and the
    /// window is complete from the newest version seen.
    pub fn relisted(&self, store: &Store<TestClusterGKE>) {
        let vanished: Vec<Key> = {
            let inner = self.lock();
            inner
                .channels
                .keys()
                .filter(|key| store.get(key).is_none())
                .cloned()
                .collect()
        };
        for key in vanished {
            self.dispatch(key, 0, Change::Vanished);
        }
        let seen = *self.seen.borrow();
        let mut inner = self.lock();
        inner.window.clear();
        inner.complete_after = seen;
    }

    /// Subscribes to `key`'s changes; with `since`, also collects its changes after that version
    /// from the window.
    pub fn subscribe(
        self: &Arc<Self>,
        key: &Key,
        store: &Store<TestClusterGKE>,
        since: Option<u64>,
    ) -> Subscription {
        let mut inner = self.lock();
        let receiver = inner
            .channels
            .entry(key.clone())
            .or_insert_with(|| broadcast::Sender::new(CHANNEL_CAPACITY))
            .subscribe();
        let replay = since
            .filter(|since| *since >= inner.complete_after)
            .map(|since| {
                inner
                    .window
                    .iter()
                    .filter(|(k, version, _)| k == key && *version > since)
                    .map(|(_, _, change)| change.clone())
                    .collect()
            });
        Subscription {
            receiver: Some(receiver),
            fanout: Arc::clone(self),
            key: key.clone(),
            current: store.get(key),
            replay,
        }
    }

    /// Called when a stream of `key` ends: the channel goes with its last receiver.
    fn unsubscribe(&self, key: &Key) {
        let mut inner = self.lock();
        if inner
            .channels
            .get(key)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            inner.channels.remove(key);
        }
    }

    /// Waits until the reflector has delivered `version` (or later), up to `timeout`. False when
    /// it has not by then.
    pub async fn wait_seen(&self, version: u64, timeout: std::time::Duration) -> bool {
        let mut seen = self.seen.subscribe();
        tokio::time::timeout(timeout, seen.wait_for(|seen| *seen >= version))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// Open channels, for tests: one per object with at least one stream.
    #[cfg(test)]
    pub fn channels(&self) -> usize {
        self.lock().channels.len()
    }
}

impl Subscription {
    /// The next change. `Lagged` says how many were skipped because this stream fell behind;
    /// `Closed`, that the reflector stopped (the broker is shutting down).
    pub async fn recv(&mut self) -> Result<Change, broadcast::error::RecvError> {
        match &mut self.receiver {
            Some(receiver) => receiver.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The receiver first, so that the count the fan-out checks no longer includes it.
        self.receiver = None;
        self.fanout.unsubscribe(&self.key);
    }
}

/// The version of a change, 0 when it has none.
pub fn change_version(change: &Change) -> u64 {
    match change {
        Change::Applied(object) | Change::Deleted(object) => version_of(object).unwrap_or(0),
        Change::Vanished => 0,
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;

    use super::*;

    fn at(name: &str, version: u64) -> Change {
        let mut object = TestClusterGKE::new(name, Default::default());
        object.metadata.namespace = Some("ns".to_owned());
        object.metadata.resource_version = Some(version.to_string());
        Change::Applied(Arc::new(object))
    }

    fn key(name: &str) -> Key {
        ObjectRef::new(name).within("ns")
    }

    fn versions(changes: &[Change]) -> Vec<u64> {
        changes.iter().map(change_version).collect()
    }

    #[tokio::test]
    async fn replays_the_window_then_sends_live_changes() {
        let (store, _writer) = reflector::store();
        let fanout = Arc::new(Fanout::new(3));
        fanout.dispatch(key("a"), 1, at("a", 1));
        fanout.dispatch(key("b"), 2, at("b", 2));
        fanout.dispatch(key("a"), 3, at("a", 3));
        let mut subscription = fanout.subscribe(&key("a"), &store, Some(0));
        assert_eq!(
            versions(&subscription.replay.take().expect("in window")),
            [1, 3]
        );
        fanout.dispatch(key("a"), 4, at("a", 4));
        let live = subscription.recv().await.expect("live");
        assert_eq!(change_version(&live), 4);

        // 1 fell out of the window: a replay from before it would be incomplete.
        assert!(
            fanout
                .subscribe(&key("a"), &store, Some(0))
                .replay
                .take()
                .is_none()
        );
        let replay = fanout.subscribe(&key("a"), &store, Some(1)).replay.take();
        assert_eq!(versions(&replay.expect("complete after 1")), [3, 4]);
    }

    #[tokio::test]
    async fn a_slow_stream_skips_to_the_newest_changes_and_blocks_nobody() {
        let (store, _writer) = reflector::store();
        let fanout = Arc::new(Fanout::new(0));
        let mut slow = fanout.subscribe(&key("a"), &store, None);
        let total = CHANNEL_CAPACITY as u64 + 10;
        for version in 1..=total {
            fanout.dispatch(key("a"), version, at("a", version));
        }
        let skipped = slow.recv().await.expect_err("lagged");
        assert_eq!(skipped, broadcast::error::RecvError::Lagged(10));
        let next = slow.recv().await.expect("newest kept");
        assert_eq!(change_version(&next), 11);
    }

    #[test]
    fn the_channel_goes_with_its_last_stream() {
        let (store, _writer) = reflector::store();
        let fanout = Arc::new(Fanout::new(0));
        let first = fanout.subscribe(&key("a"), &store, None);
        let second = fanout.subscribe(&key("a"), &store, None);
        assert_eq!(fanout.channels(), 1);
        drop(first);
        assert_eq!(fanout.channels(), 1);
        drop(second);
        assert_eq!(fanout.channels(), 0);
    }
}
