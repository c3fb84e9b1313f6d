//! `LogService` passed through to logview, so that a CI job needs only the broker's endpoint.
//!
//! The request and logview's stream go through unchanged, except that an empty namespace becomes
//! the broker's default (as in every broker call), names are checked as in every broker call, an
//! unreachable logview gets a clearer message, and the stream ends with UNAVAILABLE when the broker
//! shuts down.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use testcluster_api::v1 as api;
use testcluster_api::v1::log_service_client::LogServiceClient;
use testcluster_api::v1::log_service_server::LogService;
use testcluster_service::grpc::until_shutdown;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::cache::ClusterCache;
use crate::tenancy::{self, Tenancy};
use crate::validate;

/// What the proxy needs to decide whether the caller may see a test cluster's logs.
pub struct Access {
    pub cache: ClusterCache,
    pub client: kube::Client,
    pub tenancy: Arc<Tenancy>,
}

/// Connects lazily: the broker serves before logview is up, and reconnects when it restarts.
pub struct LogProxy {
    client: LogServiceClient<Channel>,
    default_namespace: String,
    access: Access,
    /// Cancelled when the broker shuts down; a followed log stream then ends with UNAVAILABLE.
    shutdown: CancellationToken,
}

impl LogProxy {
    pub fn connect_lazy(
        endpoint: &str,
        default_namespace: String,
        access: Access,
        tls: Option<ClientTlsConfig>,
        shutdown: CancellationToken,
    ) -> Result<Self, tonic::transport::Error> {
        let mut endpoint = Endpoint::from_shared(endpoint.to_owned())?;
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint.connect_lazy();
        Ok(LogProxy {
            client: LogServiceClient::new(channel),
            default_namespace,
            access,
            shutdown,
        })
    }
}

/// The stream `StreamLogs` answers with: logview's, until the broker shuts down.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<api::StreamLogsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl LogService for LogProxy {
    type StreamLogsStream = LogStream;

    async fn stream_logs(
        &self,
        request: Request<api::StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        // Only the message goes on: the caller's metadata (and credentials) is the broker's to
        // interpret, not logview's. The deadline travels with tonic's grpc-timeout.
        let caller = self.access.tenancy.caller(&request).await?;
        let timeout = request.metadata().get("grpc-timeout").cloned();
        let mut message = request.into_inner();
        // Empty means the broker's default namespace, as in every broker call; logview has none.
        if message.namespace.is_empty() {
            message.namespace.clone_from(&self.default_namespace);
        }
        validate::check_object_ref(&message.namespace, &message.name)?;
        // Logs of a cluster the caller may not see are NOT_FOUND, as the cluster is.
        let clusters = kube::Api::namespaced(self.access.client.clone(), &message.namespace);
        tenancy::find_visible(
            &self.access.cache,
            &clusters,
            &caller,
            &message.namespace,
            &message.name,
        )
        .await?;
        let mut forwarded = Request::new(message);
        if let Some(timeout) = timeout {
            forwarded.metadata_mut().insert("grpc-timeout", timeout);
        }
        let response = self
            .client
            .clone()
            .stream_logs(forwarded)
            .await
            .map_err(|status| match status.code() {
                Code::Unavailable | Code::Unknown => {
                    Status::unavailable(format!("logview is unavailable: {}", status.message()))
                }
                _ => status,
            })?;
        Ok(Response::new(Box::pin(until_shutdown(
            response.into_inner(),
            self.shutdown.clone(),
        ))))
    }
}
