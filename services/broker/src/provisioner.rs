//! The provisioner's internal `ProvisionerService`, as the broker uses it: the authority on which
//! templates exist, consulted before anything is created. Every other rule the broker checks
//! itself, with the shared rules.

use std::time::Duration;

use testcluster_api::internal::v1 as internal;
use testcluster_api::internal::v1::provisioner_service_client::ProvisionerServiceClient;
use tonic::Status;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A lazily connected client: the broker starts (and answers everything else) while the provisioner
/// is down, and reconnects by itself when it comes back.
#[derive(Clone)]
pub struct Provisioner {
    client: ProvisionerServiceClient<Channel>,
}

impl Provisioner {
    pub fn connect_lazy(
        endpoint: &str,
        timeout: Duration,
        tls: Option<ClientTlsConfig>,
    ) -> Result<Self, tonic::transport::Error> {
        let mut endpoint = Endpoint::from_shared(endpoint.to_owned())?;
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_lazy();
        Ok(Provisioner {
            client: ProvisionerServiceClient::new(channel),
        })
    }

    /// The names of the provisioner's templates.
    ///
    /// An unreachable or failing provisioner is UNAVAILABLE: the request may be fine, the broker
    /// just cannot tell yet, and the caller should retry.
    pub async fn template_names(&self) -> Result<Vec<String>, Status> {
        let response = self
            .client
            .clone()
            .list_templates(internal::ListTemplatesRequest {})
            .await
            .map_err(unavailable)?;
        Ok(response
            .into_inner()
            .templates
            .into_iter()
            .map(|template| template.name)
            .collect())
    }
}

fn unavailable(status: Status) -> Status {
    tracing::warn!(code = ?status.code(), message = status.message(), "provisioner ListTemplates failed");
    Status::unavailable(format!(
        "cannot check the template: the provisioner is unavailable ({}: {})",
        status.code(),
        status.message()
    ))
}
