//! `testcluster.internal.v1.ProvisionerService`: what the broker and the runner ask the
//! provisioner. Handlers translate; the work is in [`template`], [`validation`] and [`access`].

use std::sync::Arc;

use testcluster_api::errors::invalid_argument;
use testcluster_api::internal::v1::provisioner_service_server::ProvisionerService;
use testcluster_api::internal::v1::{
    FieldViolation, GetClusterAccessRequest, GetClusterAccessResponse, ListTemplatesRequest,
    ListTemplatesResponse, Template, ValidateSpecRequest, ValidateSpecResponse,
};
use testcluster_resources::TestClusterGKESpec;
use testcluster_resources::convert::time::to_timestamp;
use testcluster_resources::validation::Reason;
use tonic::{Request, Response, Status};

use crate::access::{AccessError, AccessIssuer};
use crate::{template, validation};

/// The service, sharing the access issuer (and its cached cloud identity) across calls.
pub struct ProvisionerApi {
    access: Arc<AccessIssuer>,
}

impl ProvisionerApi {
    pub fn new(access: Arc<AccessIssuer>) -> ProvisionerApi {
        ProvisionerApi { access }
    }
}

#[tonic::async_trait]
impl ProvisionerService for ProvisionerApi {
    async fn list_templates(
        &self,
        _request: Request<ListTemplatesRequest>,
    ) -> Result<Response<ListTemplatesResponse>, Status> {
        let mut templates: Vec<Template> = template::TEMPLATES
            .iter()
            .map(|t| Template {
                name: t.name.to_owned(),
                description: t.description.to_owned(),
            })
            .collect();
        templates.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(ListTemplatesResponse { templates }))
    }

    async fn validate_spec(
        &self,
        request: Request<ValidateSpecRequest>,
    ) -> Result<Response<ValidateSpecResponse>, Status> {
        let request = request.into_inner();
        let spec: TestClusterGKESpec = request.spec.map(Into::into).unwrap_or_default();
        let violations = validation::validate_spec(&request.name, &spec);
        Ok(Response::new(ValidateSpecResponse { violations }))
    }

    async fn get_cluster_access(
        &self,
        request: Request<GetClusterAccessRequest>,
    ) -> Result<Response<GetClusterAccessResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Vec::new();
        for (field, value) in [("namespace", &request.namespace), ("name", &request.name)] {
            if value.is_empty() {
                violations.push(
                    FieldViolation {
                        field: field.to_owned(),
                        description: "is required".to_owned(),
                        reason: Reason::Required.as_str().to_owned(),
                    }
                    .into(),
                );
            }
        }
        if !violations.is_empty() {
            return Err(invalid_argument(violations));
        }
        let access = self
            .access
            .cluster_access(&request.namespace, &request.name)
            .await
            .map_err(status_of)?;
        Ok(Response::new(GetClusterAccessResponse {
            kubeconfig: access.kubeconfig,
            endpoint: access.endpoint,
            ca_certificate: access.ca_pem,
            token: access.token,
            expire_time: access.expires.as_ref().map(to_timestamp),
            cluster_name: access.cluster_name,
            location: access.location,
        }))
    }
}

fn status_of(error: AccessError) -> Status {
    match &error {
        AccessError::NotFound(_) => Status::not_found(error.to_string()),
        AccessError::NotReady { .. } => Status::failed_precondition(error.to_string()),
        AccessError::Identity(_) | AccessError::Kube(_) | AccessError::TestCluster { .. } => {
            tracing::warn!(%error, "cluster access failed");
            Status::unavailable(error.to_string())
        }
        AccessError::Encode(_) => Status::internal(error.to_string()),
    }
}
