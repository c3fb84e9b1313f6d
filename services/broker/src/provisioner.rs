//! The provisioner's internal `ProvisionerService`, as the broker uses it: the authority on templates
//! and cloud-side limits, consulted before anything is created.

use std::time::Duration;

use testcluster_api::internal::v1 as internal;
use testcluster_api::internal::v1::provisioner_service_client::ProvisionerServiceClient;
use testcluster_api::v1 as api;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::FieldViolation;

use crate::validate::proto_path;

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
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(endpoint.to_owned())?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_lazy();
        Ok(Provisioner {
            client: ProvisionerServiceClient::new(channel),
        })
    }

    /// The provisioner's violations for `spec`, with field paths in this API's form; its
    /// `metadata.name` becomes `name_field` (`name`, or `name_prefix` when the name is generated).
    ///
    /// An unreachable or failing provisioner is UNAVAILABLE: the request may be fine, the broker
    /// just cannot tell yet, and the caller should retry.
    pub async fn validate(
        &self,
        namespace: &str,
        name: &str,
        name_field: &str,
        spec: &api::TestClusterSpec,
    ) -> Result<Vec<FieldViolation>, Status> {
        let request = internal::ValidateSpecRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            spec: Some(spec.clone()),
        };
        let response = self
            .client
            .clone()
            .validate_spec(request)
            .await
            .map_err(unavailable)?;
        Ok(response
            .into_inner()
            .violations
            .into_iter()
            .map(|violation| {
                let mut violation = FieldViolation::from(violation);
                violation.field = if violation.field == "metadata.name" {
                    name_field.to_owned()
                } else {
                    proto_path(&violation.field)
                };
                violation
            })
            .collect())
    }
}

fn unavailable(status: Status) -> Status {
    tracing::warn!(code = ?status.code(), message = status.message(), "provisioner ValidateSpec failed");
    match status.code() {
        // The provisioner judged the request itself: pass that on unchanged.
        Code::InvalidArgument => status,
        _ => Status::unavailable(format!(
            "cannot validate the spec: the provisioner is unavailable ({}: {})",
            status.code(),
            status.message()
        )),
    }
}
