//! `WatchTestCluster`: a snapshot per change of one object, from the broker's shared informer.
//!
//! A stream never opens a watch of its own: it subscribes to the object's changes in the
//! [`ClusterCache`], so a thousand streams cost the API server what one does. Each stream holds a
//! receiver on a bounded per-object channel; a client that reads slower than its object changes
//! skips intermediate versions and gets the newest ones, and slows nobody else down.
//!
//! With a `resource_version` the stream carries on after it: the changes since are replayed from
//! the cache's window of recent changes (so nothing between a create and its watch is missed);
//! when the window no longer reaches back that far the stream starts with the current state, as
//! after a 410 Gone. A version the reflector has not seen yet is waited for, boundedly, then checked
//! with the API server: still ahead of it, it is refused as INVALID_ARGUMENT. The stream ends after
//! a terminal phase (Succeeded, Failed, Error) or the deletion.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use kube::Api;
use kube::api::ListParams;
use testcluster_api::errors::invalid_argument;
use testcluster_api::v1 as api;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::convert::to_test_cluster;
use tokio::sync::broadcast::error::RecvError;
use tonic::Status;
use tonic_types::FieldViolation;

use crate::cache::version::{self, version_of};
use crate::cache::{Change, ClusterCache, Subscription, change_version};
use testcluster_service::kube_errors::kube_status;

/// The stream `WatchTestCluster` answers with.
pub type SnapshotStream =
    Pin<Box<dyn Stream<Item = Result<api::WatchTestClusterResponse, Status>> + Send>>;

/// How long a watch from a version the reflector has not delivered yet waits for it before asking
/// the API server whether that version exists at all.
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);

/// Where a stream starts: the object, and whether the client has that state already.
struct Start {
    object: Arc<TestClusterGKE>,
    /// The version the client has: changes up to it are not sent.
    known: u64,
    /// Changes after `known` to send before the live ones.
    replay: Vec<Change>,
}

/// Starts watching `namespace/name` for a client that has seen `since` (empty: nothing yet).
/// Fails at once (NOT_FOUND, INVALID_ARGUMENT for `resource_version`, ...) when the stream
/// cannot start; after that, problems come as the stream's last item.
pub async fn watch(
    cache: &ClusterCache,
    api: Api<TestClusterGKE>,
    namespace: &str,
    name: &str,
    since: &str,
) -> Result<SnapshotStream, Status> {
    let since = match since {
        "" => None,
        since => Some(version::parse(since).ok_or_else(|| {
            invalid_argument(vec![FieldViolation::new(
                "resource_version",
                format!(
                    "{since:?} is not a resource version of this API server (they are integers)"
                ),
            )])
        })?),
    };
    if let Some(since) = since {
        // The reflector may not have delivered `since` yet (a create moments ago, or through
        // another broker replica): wait for it, so the replay is complete.
        cache.wait_seen(since, CATCH_UP_WAIT).await;
    } else {
        cache.ready().await;
    }
    let mut subscription = cache.subscribe(namespace, name, since);
    let start = start(&mut subscription, &api, name, since).await?;
    Ok(Box::pin(snapshots(subscription, start)))
}

/// Decides where the stream starts, from the cache when it can and the API server when it must.
async fn start(
    subscription: &mut Subscription,
    api: &Api<TestClusterGKE>,
    name: &str,
    since: Option<u64>,
) -> Result<Start, Status> {
    let cached = subscription.current.clone();
    let Some(since) = since else {
        let object = match cached {
            Some(object) => object,
            None => Arc::new(live_get(api, name).await?),
        };
        return Ok(Start {
            object,
            known: 0,
            replay: Vec::new(),
        });
    };
    if let Some(object) = cached
        && version_of(&object).is_some_and(|current| current >= since)
    {
        // Replay the changes after `since` when the window has them all; otherwise start from
        // the current state, which the client has unless it is newer.
        let replay = subscription
            .replay
            .take()
            .unwrap_or_else(|| vec![Change::Applied(Arc::clone(&object))]);
        return Ok(Start {
            object,
            known: since,
            replay,
        });
    }
    // The cache has not caught up with `since` within the wait (or the object is not cached):
    // the API server decides. A list, not a get: its version says how far the API server is.
    let what = format!("TestClusterGKE {name}");
    let selector = format!("metadata.name={name}");
    let list = api
        .list(&ListParams::default().fields(&selector))
        .await
        .map_err(|e| kube_status(&what, e))?;
    let current = list
        .metadata
        .resource_version
        .as_deref()
        .and_then(version::parse);
    let Some(object) = list.items.into_iter().next() else {
        return Err(Status::not_found(format!("{what}: not found")));
    };
    if current.is_some_and(|current| since > current) {
        return Err(invalid_argument(vec![FieldViolation::new(
            "resource_version",
            format!(
                "{since} is newer than the API server's current version {}; use a \
                 resource_version from this service's answers, or none",
                current.unwrap_or_default()
            ),
        )]));
    }
    let object = Arc::new(object);
    Ok(Start {
        replay: vec![Change::Applied(Arc::clone(&object))],
        object,
        known: since,
    })
}

async fn live_get(api: &Api<TestClusterGKE>, name: &str) -> Result<TestClusterGKE, Status> {
    api.get(name)
        .await
        .map_err(|e| kube_status(&format!("TestClusterGKE {name}"), e))
}

/// The stream itself: the start, then live changes, each version once and never an older one
/// after a newer.
fn snapshots(
    mut subscription: Subscription,
    start: Start,
) -> impl Stream<Item = Result<api::WatchTestClusterResponse, Status>> + Send {
    async_stream::try_stream! {
        let mut last = Last { object: start.object, sent: start.known };
        if start.known == 0 {
            last.sent = version_of(&last.object).unwrap_or(0);
            yield snapshot(&last.object, false);
        }
        let mut replay = VecDeque::from(start.replay);
        let mut caught_up = false;
        loop {
            let change = match replay.pop_front() {
                Some(change) => change,
                None => {
                    // Replayed: a client that already has a terminal state gets nothing more.
                    if !caught_up {
                        caught_up = true;
                        if last.has_current() && is_terminal(&last.object) {
                            return;
                        }
                    }
                    match subscription.recv().await {
                        Ok(change) => change,
                        Err(RecvError::Lagged(skipped)) => {
                            // This client reads slower than its object changes: it gets the
                            // newest versions, not each one.
                            tracing::debug!(skipped, "watch stream fell behind");
                            continue;
                        }
                        Err(RecvError::Closed) => {
                            Err::<(), _>(Status::unavailable("the broker's informer stopped"))?;
                            return;
                        }
                    }
                }
            };
            match last.take(change) {
                Step::Skip => {}
                Step::Send(message) => yield message,
                Step::End(message) => {
                    yield message;
                    return;
                }
            }
        }
    }
}

/// What the stream has sent: the object last seen and the newest version sent (or known).
struct Last {
    object: Arc<TestClusterGKE>,
    sent: u64,
}

enum Step {
    Skip,
    Send(api::WatchTestClusterResponse),
    /// The last message: a terminal phase or the deletion.
    End(api::WatchTestClusterResponse),
}

impl Last {
    /// Whether the client has the object's current state (it may have an older one when the
    /// store is a change ahead of the channel: that change is still to come).
    fn has_current(&self) -> bool {
        version_of(&self.object).is_some_and(|current| current <= self.sent)
    }

    fn take(&mut self, change: Change) -> Step {
        let version = change_version(&change);
        match change {
            Change::Applied(object) => {
                // The store can be one change ahead of the channel: skip what was sent already.
                if version <= self.sent {
                    return Step::Skip;
                }
                self.sent = version;
                self.object = object;
                let message = snapshot(&self.object, false);
                if is_terminal(&self.object) {
                    Step::End(message)
                } else {
                    Step::Send(message)
                }
            }
            Change::Deleted(object) => Step::End(snapshot(&object, true)),
            Change::Vanished => Step::End(snapshot(&self.object, true)),
        }
    }
}

fn snapshot(object: &TestClusterGKE, deleted: bool) -> api::WatchTestClusterResponse {
    api::WatchTestClusterResponse {
        test_cluster: Some(to_test_cluster(object)),
        deleted,
    }
}

fn is_terminal(object: &TestClusterGKE) -> bool {
    object
        .status
        .as_ref()
        .and_then(|status| status.phase)
        .is_some_and(|phase| phase.is_terminal())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(version: u64, phase: Option<&str>) -> Arc<TestClusterGKE> {
        let mut object = TestClusterGKE::new("t1", Default::default());
        object.metadata.resource_version = Some(version.to_string());
        if let Some(phase) = phase {
            object.status =
                serde_json::from_value(serde_json::json!({ "phase": phase })).expect("status");
        }
        Arc::new(object)
    }

    #[test]
    fn each_version_is_sent_once_and_never_an_older_one() {
        let mut last = Last {
            object: at(2, None),
            sent: 2,
        };
        assert!(matches!(
            last.take(Change::Applied(at(2, None))),
            Step::Skip
        ));
        assert!(matches!(
            last.take(Change::Applied(at(1, None))),
            Step::Skip
        ));
        assert!(matches!(
            last.take(Change::Applied(at(3, Some("Ready")))),
            Step::Send(_)
        ));
        assert_eq!(last.sent, 3);
        assert!(matches!(
            last.take(Change::Applied(at(5, Some("Failed")))),
            Step::End(_)
        ));
    }

    #[test]
    fn a_vanished_object_ends_with_its_last_state_marked_deleted() {
        let mut last = Last {
            object: at(4, Some("Ready")),
            sent: 4,
        };
        let Step::End(message) = last.take(Change::Vanished) else {
            panic!("ends");
        };
        assert!(message.deleted);
        assert_eq!(
            message.test_cluster.map(|cluster| cluster.resource_version),
            Some("4".to_owned())
        );
    }
}
