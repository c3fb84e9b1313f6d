//! `testcluster.v1.LogService`: checks a request, then hands it to a [`Session`] task whose
//! messages are the response stream.

use std::sync::Arc;

use kube::{Api, Client};
use testcluster_api::errors::invalid_argument;
use testcluster_api::v1::log_service_server::LogService;
use testcluster_api::v1::{StreamLogsRequest, StreamLogsResponse};
use testcluster_resources::TestClusterGKE;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_types::FieldViolation;

use crate::Settings;
use crate::session::Session;

/// Messages buffered per stream before a slow client holds the session back.
const STREAM_BUFFER: usize = 64;

/// The LogService implementation.
pub struct LogView {
    client: Client,
    settings: Settings,
    /// One permit per open stream: a hard limit on sessions (and so on watches).
    streams: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl LogView {
    pub fn new(client: Client, settings: Settings, shutdown: CancellationToken) -> LogView {
        let streams = Arc::new(Semaphore::new(settings.max_streams));
        LogView {
            client,
            settings,
            streams,
            shutdown,
        }
    }
}

/// Field violations of a request; empty when it is valid.
fn violations(request: &StreamLogsRequest) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    if request.namespace.is_empty() {
        violations.push(FieldViolation::new("namespace", "must not be empty"));
    }
    if request.name.is_empty() {
        violations.push(FieldViolation::new("name", "must not be empty"));
    }
    violations
}

fn kube_status(error: kube::Error) -> Status {
    match error {
        kube::Error::Api(status) if status.code == 403 => Status::permission_denied(status.message),
        error => Status::unavailable(format!("reading the test cluster: {error}")),
    }
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
        let resources: Api<TestClusterGKE> =
            Api::namespaced(self.client.clone(), &request.namespace);
        let resource = resources
            .get_opt(&request.name)
            .await
            .map_err(kube_status)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "test cluster {}/{} not found",
                    request.namespace, request.name
                ))
            })?;
        let (out, stream) = mpsc::channel(STREAM_BUFFER);
        let client_gone = out.clone();
        let session = Session {
            client: self.client.clone(),
            namespace: request.namespace,
            name: request.name,
            follow: request.follow,
            outcome_wait: self.settings.outcome_wait,
            out,
        };
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                // The response stream was dropped (client disconnected): stop every watch.
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
