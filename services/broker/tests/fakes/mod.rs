//! Services the broker calls, played in its tests: they are other services' (which the broker's
//! tests do not depend on).

use testcluster_api::internal::v1 as internal;
use testcluster_api::internal::v1::provisioner_service_server::ProvisionerService;
use tonic::{Request, Response, Status};

/// Plays the provisioner's `ProvisionerService`: one template, `basic`.
pub struct FakeProvisioner;

#[tonic::async_trait]
impl ProvisionerService for FakeProvisioner {
    async fn list_templates(
        &self,
        _: Request<internal::ListTemplatesRequest>,
    ) -> Result<Response<internal::ListTemplatesResponse>, Status> {
        Ok(Response::new(internal::ListTemplatesResponse {
            templates: vec![internal::Template {
                name: "basic".to_owned(),
                description: "one cluster".to_owned(),
            }],
        }))
    }

    async fn validate_spec(
        &self,
        _: Request<internal::ValidateSpecRequest>,
    ) -> Result<Response<internal::ValidateSpecResponse>, Status> {
        // The broker validates with the shared rules; asking this would be a bug.
        Err(Status::unimplemented(
            "the broker must not need ValidateSpec",
        ))
    }

    async fn get_cluster_access(
        &self,
        _: Request<internal::GetClusterAccessRequest>,
    ) -> Result<Response<internal::GetClusterAccessResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}
