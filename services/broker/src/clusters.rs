//! `testcluster.v1.TestClusterService`: each handler reads top-down, check → Kubernetes → answer.

use kube::Api;
use kube::api::{DeleteParams, ListParams};
use service::grpc::until_shutdown;
use testcluster_api::errors::invalid_argument;
use testcluster_api::v1 as api;
use testcluster_api::v1::test_cluster_service_server::TestClusterService;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::convert::to_test_cluster;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_types::FieldViolation;

use crate::provisioner::Provisioner;
use crate::watch::{SnapshotStream, watch};
use crate::{create, validate};
use service::kube_errors::kube_status;

/// List page size when the caller leaves it to the server, and the most it may ask for.
const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;

/// The handlers' shared state: a Kubernetes client and the provisioner's client.
pub struct Broker {
    client: kube::Client,
    provisioner: Provisioner,
    default_namespace: String,
    /// Cancelled when the server shuts down: open watches then end with UNAVAILABLE, so that the
    /// graceful shutdown does not wait for them (a jobless Ready cluster's watch never ends).
    shutdown: CancellationToken,
}

impl Broker {
    pub fn new(
        client: kube::Client,
        provisioner: Provisioner,
        default_namespace: String,
        shutdown: CancellationToken,
    ) -> Self {
        Broker {
            client,
            provisioner,
            default_namespace,
            shutdown,
        }
    }

    fn namespace<'a>(&'a self, requested: &'a str) -> &'a str {
        if requested.is_empty() {
            &self.default_namespace
        } else {
            requested
        }
    }

    /// The API for the object a Get/Watch/Delete request names, after checking the names: they go
    /// into the URL path unescaped.
    fn object_api(&self, namespace: &str, name: &str) -> Result<Api<TestClusterGKE>, Status> {
        let namespace = self.namespace(namespace);
        validate::check_object_ref(namespace, name)?;
        Ok(Api::namespaced(self.client.clone(), namespace))
    }
}

#[tonic::async_trait]
impl TestClusterService for Broker {
    async fn create_test_cluster(
        &self,
        request: Request<api::CreateTestClusterRequest>,
    ) -> Result<Response<api::CreateTestClusterResponse>, Status> {
        let (plan, mut violations) = validate::check(request.into_inner(), &self.default_namespace);
        // The provisioner knows the templates and cloud limits. When it is down, a request that is
        // already known to be invalid still gets its violations rather than UNAVAILABLE.
        match self
            .provisioner
            .validate(
                &plan.namespace,
                &plan.naming.representative(),
                plan.naming.field(),
                &plan.spec,
            )
            .await
        {
            Ok(theirs) => violations.merge(theirs),
            Err(status) if violations.is_empty() => return Err(status),
            Err(_) => {}
        }
        if !violations.is_empty() {
            return Err(invalid_argument(violations.into_vec()));
        }
        let created = create::create(&self.client, &plan).await?;
        Ok(Response::new(api::CreateTestClusterResponse {
            test_cluster: Some(to_test_cluster(&created)),
        }))
    }

    async fn get_test_cluster(
        &self,
        request: Request<api::GetTestClusterRequest>,
    ) -> Result<Response<api::GetTestClusterResponse>, Status> {
        let request = request.into_inner();
        let clusters = self.object_api(&request.namespace, &request.name)?;
        let object = clusters
            .get(&request.name)
            .await
            .map_err(|e| kube_status(&format!("TestClusterGKE {}", request.name), e))?;
        Ok(Response::new(api::GetTestClusterResponse {
            test_cluster: Some(to_test_cluster(&object)),
        }))
    }

    async fn list_test_clusters(
        &self,
        request: Request<api::ListTestClustersRequest>,
    ) -> Result<Response<api::ListTestClustersResponse>, Status> {
        let request = request.into_inner();
        let page_size = match u32::try_from(request.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
            Err(_) => {
                return Err(invalid_argument(vec![FieldViolation::new(
                    "page_size",
                    "must not be negative",
                )]));
            }
        };
        validate::check_list_namespace(&request.namespace)?;
        // An empty namespace lists them all, as `kubectl get -A` does.
        let clusters: Api<TestClusterGKE> = if request.namespace.is_empty() {
            Api::all(self.client.clone())
        } else {
            Api::namespaced(self.client.clone(), &request.namespace)
        };
        let mut params = ListParams::default().limit(page_size);
        if !request.label_selector.is_empty() {
            params = params.labels(&request.label_selector);
        }
        if !request.page_token.is_empty() {
            params = params.continue_token(&request.page_token);
        }
        let list = clusters.list(&params).await.map_err(|error| match error {
            kube::Error::Api(response) if response.code == 400 => {
                // The API server rejects a bad selector or an expired continue token.
                let field = if request.page_token.is_empty() {
                    "label_selector"
                } else {
                    "page_token"
                };
                invalid_argument(vec![FieldViolation::new(field, response.message)])
            }
            error => kube_status("TestClusterGKE list", error),
        })?;
        Ok(Response::new(api::ListTestClustersResponse {
            test_clusters: list.items.iter().map(to_test_cluster).collect(),
            next_page_token: list.metadata.continue_.unwrap_or_default(),
        }))
    }

    type WatchTestClusterStream = SnapshotStream;

    async fn watch_test_cluster(
        &self,
        request: Request<api::WatchTestClusterRequest>,
    ) -> Result<Response<Self::WatchTestClusterStream>, Status> {
        let request = request.into_inner();
        let clusters = self.object_api(&request.namespace, &request.name)?;
        let since = (!request.resource_version.is_empty()).then_some(request.resource_version);
        let stream = watch(clusters, request.name, since).await?;
        Ok(Response::new(Box::pin(until_shutdown(
            stream,
            self.shutdown.clone(),
        ))))
    }

    async fn delete_test_cluster(
        &self,
        request: Request<api::DeleteTestClusterRequest>,
    ) -> Result<Response<api::DeleteTestClusterResponse>, Status> {
        let request = request.into_inner();
        let clusters = self.object_api(&request.namespace, &request.name)?;
        // Background: the call returns at once; the provisioner's finalizer holds the object until
        // the cloud resources are gone, and the ConfigMap goes with it by garbage collection.
        let deleted = clusters
            .delete(&request.name, &DeleteParams::background())
            .await
            .map_err(|e| kube_status(&format!("TestClusterGKE {}", request.name), e))?;
        let test_cluster = match deleted.left() {
            Some(object) => {
                let mut test_cluster = to_test_cluster(&object);
                deleting(&mut test_cluster);
                test_cluster
            }
            // Gone already (no finalizer was left): all the caller can be told is its name.
            None => api::TestCluster {
                namespace: self.namespace(&request.namespace).to_owned(),
                name: request.name,
                ..Default::default()
            },
        };
        tracing::info!(namespace = %test_cluster.namespace, name = %test_cluster.name, "test cluster deletion requested");
        Ok(Response::new(api::DeleteTestClusterResponse {
            test_cluster: Some(test_cluster),
        }))
    }
}

/// The object now has a deletion timestamp; the provisioner will record phase Deleting shortly.
/// The caller is shown that phase at once rather than the one before it.
fn deleting(test_cluster: &mut api::TestCluster) {
    let status = test_cluster.status.get_or_insert_with(Default::default);
    status.phase = api::Phase::Deleting.into();
}
