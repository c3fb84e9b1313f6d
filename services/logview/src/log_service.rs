//! `testcluster.v1.LogService`: checks a request, then hands it to a [`Session`] task whose
//! messages are the response stream.

use std::sync::Arc;
use std::time::Duration;

use kube::{Api, Client};
use testcluster_api::errors::invalid_argument;
use testcluster_api::v1::log_service_server::LogService;
use testcluster_api::v1::{StreamLogsRequest, StreamLogsResponse};
use testcluster_resources::TestClusterGKE;
use testcluster_resources::object_names::{namespace_problem, object_name_problem};
use testcluster_service::kube_errors::kube_status;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_types::FieldViolation;

use crate::Settings;
use crate::informers::Informers;
use crate::session::Session;
use crate::shared_log::SharedLogs;

/// Messages buffered per stream before a slow client holds its own session back (and only it).
const STREAM_BUFFER: usize = 64;
/// How long a call waits for the informers' first lists (just after start, or while the API
/// server is unreachable) before it is answered `UNAVAILABLE`.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// The LogService implementation.
pub struct LogView {
    client: Client,
    informers: Informers,
    logs: Arc<SharedLogs>,
    /// One permit per open stream: a hard limit on sessions (and so on followers of logs).
    streams: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl LogView {
    /// Starts the shared informers, which run until `shutdown`.
    pub fn new(client: Client, settings: Settings, shutdown: CancellationToken) -> LogView {
        let informers = Informers::start(client.clone(), &shutdown);
        let logs = Arc::new(SharedLogs::new(
            client.clone(),
            informers.clone(),
            settings.log_buffer_bytes,
        ));
        LogView {
            client,
            informers,
            logs,
            streams: Arc::new(Semaphore::new(settings.max_streams)),
            shutdown,
        }
    }
}

impl LogView {
    /// The test cluster `namespace/name`, from the informer. The informer may not show an object
    /// created just before (a CI job streams the logs right after CreateTestCluster), so a miss
    /// is checked with the API server: only a miss there is NOT_FOUND, and an object that exists
    /// is waited for until the informer shows it.
    async fn test_cluster(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<TestClusterGKE>, Status> {
        let mut changes = self.informers.changes();
        changes.borrow_and_update();
        if let Some(found) = self.informers.test_cluster(namespace, name) {
            return Ok(found);
        }
        let api: Api<TestClusterGKE> = Api::namespaced(self.client.clone(), namespace);
        let what = format!("test cluster {namespace}/{name}");
        if api
            .get_metadata_opt(name)
            .await
            .map_err(|error| kube_status(&what, error))?
            .is_none()
        {
            return Err(Status::not_found(format!("{what} not found")));
        }
        let shown = async {
            loop {
                if let Some(found) = self.informers.test_cluster(namespace, name) {
                    return Ok(found);
                }
                if changes.changed().await.is_err() {
                    return Err(Status::unavailable("logview is shutting down"));
                }
            }
        };
        tokio::time::timeout(SYNC_WAIT, shown)
            .await
            .unwrap_or_else(|_elapsed| {
                Err(Status::unavailable(format!(
                    "{what} exists but logview's informer has not shown it yet; try again later"
                )))
            })
    }
}

/// Field violations of a request; empty when it is valid. The namespace is a DNS-1123 label and
/// the name a DNS-1123 subdomain, as the API server requires; checking here turns a mistyped
/// name into `INVALID_ARGUMENT` naming the field instead of an API error.
fn violations(request: &StreamLogsRequest) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    if let Some(problem) = namespace_problem(&request.namespace) {
        violations.push(FieldViolation::new("namespace", problem));
    }
    if let Some(problem) = object_name_problem(&request.name) {
        violations.push(FieldViolation::new("name", problem));
    }
    violations
}

#[tonic::async_trait]
impl LogService for LogView {
    type StreamLogsStream = ReceiverStream<Result<StreamLogsResponse, Status>>;

    async fn stream_logs(
        &self,
        request: Request<StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let request = request.into_inner();
        let violations = violations(&request);
        if !violations.is_empty() {
            return Err(invalid_argument(violations));
        }
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many log streams open; try again later")
        })?;
        // The store may not have caught up with a just-started logview: only a complete one
        // may say NOT_FOUND.
        match tokio::time::timeout(SYNC_WAIT, self.informers.ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(Status::unavailable(error.to_string())),
            Err(_elapsed) => {
                return Err(Status::unavailable(
                    "logview has not listed the test clusters yet; try again later",
                ));
            }
        }
        let resource = self.test_cluster(&request.namespace, &request.name).await?;
        let (out, stream) = mpsc::channel(STREAM_BUFFER);
        let client_gone = out.clone();
        let session = Session {
            informers: self.informers.clone(),
            logs: self.logs.clone(),
            namespace: request.namespace,
            name: request.name,
            follow: request.follow,
            out,
        };
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                // The response stream was dropped (client disconnected): stop following at once.
                () = client_gone.closed() => tracing::debug!("client went away"),
                () = shutdown.cancelled() => {
                    let _ = client_gone.send(Err(Status::unavailable("logview is shutting down"))).await;
                }
                () = session.run(resource) => {}
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(namespace: &str, name: &str) -> StreamLogsRequest {
        StreamLogsRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            follow: true,
        }
    }

    fn fields(request: &StreamLogsRequest) -> Vec<String> {
        violations(request).into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn namespaces_are_dns_1123_labels() {
        for bad in [
            "Default",
            "ns.one",
            "-ns",
            "ns-",
            "ns_1",
            "n s",
            &"n".repeat(64),
        ] {
            assert_eq!(fields(&request(bad, "t1")), ["namespace"], "{bad:?}");
        }
        for good in ["default", "ns-1", "1ns", &"n".repeat(63)] {
            assert!(fields(&request(good, "t1")).is_empty(), "{good:?}");
        }
    }

    #[test]
    fn names_are_dns_1123_subdomains() {
        for bad in [
            "T1",
            "t1/x",
            "t1..x",
            ".t1",
            "t1.",
            "t1-",
            "-t1",
            "t_1",
            "../etc",
            &"t".repeat(254),
        ] {
            assert_eq!(fields(&request("ns", bad)), ["name"], "{bad:?}");
        }
        for good in ["t1", "t1.x-2", "a", &"t".repeat(253)] {
            assert!(fields(&request("ns", good)).is_empty(), "{good:?}");
        }
    }

    #[test]
    fn the_violation_is_an_invalid_argument_with_field_violations() {
        let status = invalid_argument(violations(&request("Bad_NS", "t1")));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let violations = testcluster_api::errors::field_violations(&status);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "namespace");
        assert!(
            violations[0].description.contains("DNS-1123"),
            "{}",
            violations[0].description
        );
    }

    #[test]
    fn empty_fields_are_named() {
        let fields: Vec<String> = violations(&StreamLogsRequest::default())
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["namespace", "name"]);
        let valid = StreamLogsRequest {
            namespace: "ns".to_owned(),
            name: "t1".to_owned(),
            follow: true,
        };
        assert!(violations(&valid).is_empty());
    }
}
