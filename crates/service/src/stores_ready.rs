//! Waiting for reflector stores' first lists, for any number of waiters.
//!
//! kube's `Store::wait_until_ready` wakes only the last of several concurrent waiters: its
//! `DelayedInit` polls one oneshot receiver, which keeps one waker, so a reconcile (or a call)
//! that waits beside another may never wake. Measured here: of two test clusters created at a
//! controller's start, one was never reconciled. [`StoresReady`] has one task wait on each store
//! and tells everyone else through a watch channel, which wakes every waiter.

use std::future::Future;

use futures::FutureExt as _;
use futures::future::{BoxFuture, try_join_all};
use kube::Resource;
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::WriterDropped;
use tokio::sync::watch;

/// Whether some stores all hold their first complete list; cheap to clone.
#[derive(Clone, Debug)]
pub struct StoresReady(watch::Receiver<Option<bool>>);

impl StoresReady {
    /// Starts waiting for every store of `waits` (see [`StoresReady::store`]) in a task.
    pub fn all(waits: Vec<BoxFuture<'static, Result<(), WriterDropped>>>) -> StoresReady {
        let (ready, receiver) = watch::channel(None);
        tokio::spawn(async move {
            let listed = try_join_all(waits).await.is_ok();
            ready.send_replace(Some(listed));
        });
        StoresReady(receiver)
    }

    /// The wait for one store's first list.
    pub fn store<K>(store: &Store<K>) -> BoxFuture<'static, Result<(), WriterDropped>>
    where
        K: Resource + Clone + Send + Sync + 'static,
        K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
    {
        let store = store.clone();
        async move { store.wait_until_ready().await }.boxed()
    }

    /// Waits until every store holds its first list: `true`; `false` if a store's writer went
    /// away first (its watch stopped: the process is shutting down).
    pub fn wait(&self) -> impl Future<Output = bool> + Send + 'static {
        let mut receiver = self.0.clone();
        async move {
            match receiver.wait_for(Option::is_some).await {
                Ok(listed) => listed.unwrap_or(false),
                Err(_) => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_when_the_stores_are_listed() {
        let mut first = Writer::<ConfigMap>::default();
        let mut second = Writer::<ConfigMap>::default();
        let ready = StoresReady::all(vec![
            StoresReady::store(&first.as_reader()),
            StoresReady::store(&second.as_reader()),
        ]);
        let waiters: Vec<_> = (0..10).map(|_| tokio::spawn(ready.wait())).collect();
        first.apply_watcher_event(&Event::Init);
        first.apply_watcher_event(&Event::InitDone);
        tokio::task::yield_now().await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "one store is not listed"
        );
        // Not only unscheduled: the wait itself has not ended.
        assert!(ready.0.borrow().is_none(), "one store is not listed");
        second.apply_watcher_event(&Event::Init);
        second.apply_watcher_event(&Event::InitDone);
        for waiter in waiters {
            let woke = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("every waiter wakes")
                .expect("no panic");
            assert!(woke);
        }
    }

    #[tokio::test]
    async fn a_dropped_writer_ends_the_wait_with_false() {
        let writer = Writer::<ConfigMap>::default();
        let ready = StoresReady::all(vec![StoresReady::store(&writer.as_reader())]);
        drop(writer);
        assert!(!ready.wait().await);
    }
}
