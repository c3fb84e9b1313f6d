//! `WatchTestCluster`: a snapshot per change of one object, straight from a Kubernetes watch.
//!
//! The watch is on that one object (`fieldSelector=metadata.name=<name>`), so the broker receives
//! only its changes and never polls. It resumes from the last version seen when the API server ends a
//! watch (timeouts, restarts), and carries on from the current state when that version is too old
//! (410 Gone): that state is sent, but changes between the two are lost. The stream ends after a
//! terminal phase (Succeeded, Failed, Error) or the deletion.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use kube::Api;
use kube::api::{ListParams, WatchParams};
use kube::core::WatchEvent;
use testcluster_api::errors::invalid_argument;
use testcluster_api::v1 as api;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::convert::to_test_cluster;
use tonic::Status;
use tonic_types::FieldViolation;

use service::kube_errors::kube_status;
use service::retry::RetryPolicy;

/// The stream `WatchTestCluster` answers with.
pub type SnapshotStream =
    Pin<Box<dyn Stream<Item = Result<api::WatchTestClusterResponse, Status>> + Send>>;

/// The API server ends a watch after this long; the broker then resumes it. Shorter than the usual
/// proxies' idle timeouts.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// Pauses between attempts to (re)establish the watch; after the last, the stream gives up with
/// UNAVAILABLE (the eighth consecutive failure). Jitter, because one API-server restart cuts every
/// open watch at once.
const RETRY: RetryPolicy =
    RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(5))
        .with_max_attempts(7)
        .with_jitter();

/// Starts watching `name`. Fails at once (NOT_FOUND, ...) when the object cannot be read; after that,
/// problems come as the stream's last item.
///
/// `since` is a resource version the caller already has: the stream then replays every change after
/// it instead of starting with the current state. That replay is only as good as the API server's
/// history: when `since` (or, later, the version a resumed watch starts from) has been compacted away
/// (410 Gone), the stream sends the current state and carries on from there, and the phases in
/// between are never sent. Clients should therefore compare phases ("at least Ready") rather than
/// expect to see each one.
pub async fn watch(
    clusters: Api<TestClusterGKE>,
    name: String,
    since: Option<String>,
) -> Result<SnapshotStream, Status> {
    let what = format!("TestClusterGKE {}", name);
    let current = clusters
        .get(&name)
        .await
        .map_err(|e| kube_status(&what, e))?;
    let stream = async_stream::try_stream! {
        let mut sent_version = None;
        let version = match since {
            Some(since) => since,
            None => {
                sent_version = current.metadata.resource_version.clone();
                yield snapshot(&current, false);
                if is_terminal(&current) {
                    return;
                }
                sent_version.clone().unwrap_or_default()
            }
        };
        let mut latest = Latest { object: current, version, sent_version };
        let mut pauses = RETRY.backoff();
        let mut first = true;
        // Set on 410 Gone: read the current state before watching again.
        let mut resync = false;
        let selector = format!("metadata.name={name}");
        let params = WatchParams::default()
            .fields(&selector)
            .timeout(WATCH_TIMEOUT_SECS);
        loop {
            if resync {
                resync = false;
                // Too old to replay: carry on from the current state, sent first (unless it was
                // already), since the changes before it are lost. A list rather than a get: its
                // version is the collection's, current even when the object has not changed since
                // the history was compacted, so the next watch can start from it.
                match clusters.list(&ListParams::default().fields(&selector)).await {
                    Ok(list) => match list.items.into_iter().next() {
                        Some(object) => {
                            if let Some(snapshot) = latest.update(object) {
                                yield snapshot;
                            }
                            if let Some(version) = list.metadata.resource_version {
                                latest.version = version;
                            }
                            if is_terminal(&latest.object) {
                                return;
                            }
                        }
                        None => {
                            yield snapshot(&latest.object, true);
                            return;
                        }
                    },
                    Err(error) => Err::<(), _>(kube_status(&what, error))?,
                }
            }
            let events = match clusters.watch(&params, &latest.version).await {
                Ok(events) => events,
                // Some API servers answer a too old version with a 410 response rather than an
                // ERROR event.
                Err(kube::Error::Api(response)) if response.code == 410 => {
                    tracing::debug!(%name, version = %latest.version, "watch version expired");
                    resync = true;
                    let Some(pause) = pauses.next_pause() else {
                        Err::<(), _>(Status::unavailable(format!("{what}: the watch keeps failing")))?;
                        return;
                    };
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Err(kube::Error::Api(response)) if first && matches!(response.code, 400 | 422) => {
                    Err::<(), _>(invalid_argument(vec![FieldViolation::new(
                        "resource_version",
                        format!("cannot watch from {:?}: {}", latest.version, response.message),
                    )]))?;
                    return;
                }
                Err(error) => {
                    let Some(pause) = pauses.next_pause() else {
                        Err::<(), _>(kube_status(&what, error))?;
                        return;
                    };
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            first = false;
            let mut interrupted = false;
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        // A broken stream: resume from the last version after a pause.
                        tracing::debug!(%error, %name, "watch interrupted");
                        interrupted = true;
                        break;
                    }
                };
                match event {
                    WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                        pauses.reset();
                        if let Some(snapshot) = latest.update(object) {
                            yield snapshot;
                        }
                        if is_terminal(&latest.object) {
                            return;
                        }
                    }
                    WatchEvent::Deleted(object) => {
                        yield snapshot(&object, true);
                        return;
                    }
                    WatchEvent::Bookmark(bookmark) => {
                        pauses.reset();
                        latest.version = bookmark.metadata.resource_version;
                    }
                    WatchEvent::Error(status) if status.code == 410 => {
                        tracing::debug!(%name, version = %latest.version, "watch version expired");
                        resync = true;
                        interrupted = true;
                        break;
                    }
                    WatchEvent::Error(status) => {
                        tracing::debug!(code = status.code, message = %status.message, %name, "watch error");
                        interrupted = true;
                        break;
                    }
                }
            }
            // A watch the API server ended normally (its timeout) resumes at once.
            if interrupted {
                let Some(pause) = pauses.next_pause() else {
                    Err::<(), _>(Status::unavailable(format!("{what}: the watch keeps failing")))?;
                    return;
                };
                tokio::time::sleep(pause).await;
            }
        }
    };
    Ok(Box::pin(stream))
}

/// The object as the stream last saw it, so that each version is sent once, whether it comes from
/// the watch or from reading the object again after 410 Gone.
struct Latest {
    object: TestClusterGKE,
    /// Where the next watch resumes from.
    version: String,
    /// The version of the last snapshot sent, if any.
    sent_version: Option<String>,
}

impl Latest {
    /// Takes `object` as the current state; returns its snapshot unless that version was sent.
    fn update(&mut self, object: TestClusterGKE) -> Option<api::WatchTestClusterResponse> {
        self.version = object.metadata.resource_version.clone().unwrap_or_default();
        let unsent = self.sent_version.as_deref() != Some(self.version.as_str());
        if unsent {
            self.sent_version = Some(self.version.clone());
        }
        let news = unsent.then(|| snapshot(&object, false));
        self.object = object;
        news
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

    #[test]
    fn the_watch_gives_up_on_the_eighth_failure_in_a_row() {
        let mut pauses = RETRY.backoff();
        assert_eq!(std::iter::from_fn(|| pauses.next_pause()).count(), 7);
    }

    #[test]
    fn each_version_is_sent_once() {
        let at = |version: &str| {
            let mut object = TestClusterGKE::new("t1", Default::default());
            object.metadata.resource_version = Some(version.to_owned());
            object
        };
        let mut latest = Latest {
            object: at("1"),
            version: "1".to_owned(),
            sent_version: Some("1".to_owned()),
        };
        assert!(latest.update(at("1")).is_none());
        assert!(latest.update(at("2")).is_some());
        assert_eq!(latest.version, "2");
        assert!(latest.update(at("2")).is_none());
    }
}
