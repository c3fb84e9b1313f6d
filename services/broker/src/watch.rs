//! `WatchTestCluster`: a snapshot per change of one object, straight from a Kubernetes watch.
//!
//! The watch is on that one object (`fieldSelector=metadata.name=<name>`), so the broker receives
//! only its changes and never polls. It resumes from the last version seen when the API server ends a
//! watch (timeouts, restarts), and starts over from the current state when that version is too old
//! (410 Gone). The stream ends after a terminal phase (Succeeded, Failed, Error) or the deletion.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use kube::Api;
use kube::api::WatchParams;
use kube::core::WatchEvent;
use testcluster_api::errors::invalid_argument;
use testcluster_api::v1 as api;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::convert::to_test_cluster;
use tonic::Status;
use tonic_types::FieldViolation;

use crate::errors::kube_status;

/// The stream `WatchTestCluster` answers with.
pub type SnapshotStream =
    Pin<Box<dyn Stream<Item = Result<api::WatchTestClusterResponse, Status>> + Send>>;

/// The API server ends a watch after this long; the broker then resumes it. Shorter than the usual
/// proxies' idle timeouts.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// Consecutive failures to (re)establish the watch before the stream gives up with UNAVAILABLE.
const MAX_FAILURES: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts watching `name`. Fails at once (NOT_FOUND, ...) when the object cannot be read; after that,
/// problems come as the stream's last item.
///
/// `since` is a resource version the caller already has: the stream then replays every change after
/// it instead of starting with the current state, so no phase is missed.
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
        let mut version = match since {
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
        let mut last = current;
        let mut failures = 0;
        let mut first = true;
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(WATCH_TIMEOUT_SECS);
        loop {
            let events = match clusters.watch(&params, &version).await {
                Ok(events) => events,
                Err(kube::Error::Api(response)) if first && matches!(response.code, 400 | 422) => {
                    Err::<(), _>(invalid_argument(vec![FieldViolation::new(
                        "resource_version",
                        format!("cannot watch from {version:?}: {}", response.message),
                    )]))?;
                    return;
                }
                Err(error) => {
                    failures += 1;
                    if failures >= MAX_FAILURES {
                        Err::<(), _>(kube_status(&what, error))?;
                    }
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            };
            first = false;
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        // A broken stream: resume from the last version after a pause.
                        tracing::debug!(%error, %name, "watch interrupted");
                        failures += 1;
                        break;
                    }
                };
                failures = 0;
                match event {
                    WatchEvent::Added(object) | WatchEvent::Modified(object) => {
                        version = object.metadata.resource_version.clone().unwrap_or_default();
                        if sent_version.as_deref() != Some(version.as_str()) {
                            sent_version = Some(version.clone());
                            yield snapshot(&object, false);
                        }
                        if is_terminal(&object) {
                            return;
                        }
                        last = object;
                    }
                    WatchEvent::Deleted(object) => {
                        yield snapshot(&object, true);
                        return;
                    }
                    WatchEvent::Bookmark(bookmark) => {
                        version = bookmark.metadata.resource_version;
                    }
                    WatchEvent::Error(status) if status.code == 410 => {
                        // Too old to replay: carry on from the current state.
                        match clusters.get_opt(&name).await {
                            Ok(Some(object)) => {
                                version = object.metadata.resource_version.clone().unwrap_or_default();
                                if sent_version.as_deref() != Some(version.as_str()) {
                                    sent_version = Some(version.clone());
                                    yield snapshot(&object, false);
                                }
                                if is_terminal(&object) {
                                    return;
                                }
                                last = object;
                            }
                            Ok(None) => {
                                yield snapshot(&last, true);
                                return;
                            }
                            Err(error) => Err::<(), _>(kube_status(&what, error))?,
                        }
                        break;
                    }
                    WatchEvent::Error(status) => {
                        tracing::debug!(code = status.code, message = %status.message, %name, "watch error");
                        failures += 1;
                        break;
                    }
                }
            }
            if failures >= MAX_FAILURES {
                Err::<(), _>(Status::unavailable(format!("{what}: the watch keeps failing")))?;
            }
            if failures > 0 {
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    };
    Ok(Box::pin(stream))
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

/// Doubling pauses between attempts, capped.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }
}
