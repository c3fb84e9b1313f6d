//! `testcluster.v1.TestClusterService`: each handler reads top-down, check → Kubernetes → answer.
//!
//! Reads (Get, List, Watch) come from the shared informer ([`ClusterCache`]); writes go to the API
//! server and return once the informer has seen them (boundedly), so that a client's next read on
//! this broker sees its own write.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};
use testcluster_api::v1 as api;
use testcluster_api::v1::test_cluster_service_server::TestClusterService;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::convert::to_test_cluster;
use testcluster_service::grpc::until_shutdown;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::cache::ClusterCache;
use crate::cache::version::version_of;
use crate::provisioner::Provisioner;
use crate::tenancy::{self, Caller, Tenancy};
use crate::watch::{SnapshotStream, watch};
use crate::{audit, create, extend, list, provenance, validate};
use testcluster_resources::convert::time::to_timestamp;
use testcluster_resources::lifetime::Lifetimes;
use testcluster_resources::metadata::{DEFAULT_CONFIG_TEMPLATE, DEFAULT_NODES};
use testcluster_service::kube_errors::kube_status;

/// How long a write waits for the informer to deliver it before answering anyway (a later read
/// that misses the cache asks the API server, so this bounds staleness, not correctness).
const WRITE_VISIBLE_WAIT: Duration = Duration::from_secs(2);

/// The handlers' shared state: a Kubernetes client, the shared informer and the provisioner's
/// client.
pub struct Broker {
    client: kube::Client,
    cache: ClusterCache,
    provisioner: Provisioner,
    tenancy: Arc<Tenancy>,
    default_namespace: String,
    lifetimes: Lifetimes,
    /// Cancelled when the server shuts down: open watches then end with UNAVAILABLE, so that the
    /// graceful shutdown does not wait for them (a jobless Ready cluster's watch never ends).
    shutdown: CancellationToken,
}

impl Broker {
    pub fn new(
        client: kube::Client,
        cache: ClusterCache,
        provisioner: Provisioner,
        tenancy: Arc<Tenancy>,
        default_namespace: String,
        lifetimes: Lifetimes,
        shutdown: CancellationToken,
    ) -> Self {
        Broker {
            client,
            cache,
            provisioner,
            tenancy,
            default_namespace,
            lifetimes,
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

    /// The test cluster a request names (an empty namespace is the default one), with the API
    /// for its namespace, if `caller` may see it (see [`tenancy::find_visible`]).
    async fn find(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
    ) -> Result<(Api<TestClusterGKE>, TestClusterGKE), Status> {
        let clusters = self.object_api(namespace, name)?;
        let namespace = self.namespace(namespace);
        let object = tenancy::find_visible(&self.cache, &clusters, caller, namespace, name).await?;
        Ok((clusters, object))
    }
}

#[tonic::async_trait]
impl TestClusterService for Broker {
    async fn create_test_cluster(
        &self,
        request: Request<api::CreateTestClusterRequest>,
    ) -> Result<Response<api::CreateTestClusterResponse>, Status> {
        let caller = self.tenancy.caller(&request).await?;
        let (mut plan, mut violations) =
            validate::check(request.into_inner(), &self.default_namespace);
        // The provisioner is asked the one thing it alone knows: which templates exist. When it
        // is down, a request already known to be invalid still gets its violations rather than
        // UNAVAILABLE.
        match self.provisioner.template_names().await {
            Ok(templates) => validate::check_template(&plan, &templates, &mut violations),
            Err(status) if violations.is_empty() => return Err(status),
            Err(_) => {}
        }
        validate::into_result(violations)?;
        // Held until the informer has the new object, so the next create of this tenant counts it.
        let _lock = self.tenancy.create_lock(&caller).await;
        if !self.cache.ready().await {
            return Err(Status::unavailable(
                "the broker has not read the test clusters yet; retry",
            ));
        }
        caller.check_create(
            &plan.namespace,
            plan.spec
                .config_template
                .as_deref()
                .unwrap_or(DEFAULT_CONFIG_TEMPLATE),
            plan.spec.nodes.unwrap_or(DEFAULT_NODES),
            &self.cache.all(),
        )?;
        provenance::record(&mut plan, &caller);
        let created = create::create(&self.client, &plan).await?;
        if let Some(version) = version_of(&created) {
            self.cache.wait_seen(version, WRITE_VISIBLE_WAIT).await;
        }
        audit::record(&caller, "create", &created);
        Ok(Response::new(api::CreateTestClusterResponse {
            test_cluster: Some(to_test_cluster(&created)),
        }))
    }

    async fn get_test_cluster(
        &self,
        request: Request<api::GetTestClusterRequest>,
    ) -> Result<Response<api::GetTestClusterResponse>, Status> {
        let caller = self.tenancy.caller(&request).await?;
        let request = request.into_inner();
        let (_, object) = self
            .find(&caller, &request.namespace, &request.name)
            .await?;
        Ok(Response::new(api::GetTestClusterResponse {
            test_cluster: Some(to_test_cluster(&object)),
        }))
    }

    async fn list_test_clusters(
        &self,
        request: Request<api::ListTestClustersRequest>,
    ) -> Result<Response<api::ListTestClustersResponse>, Status> {
        let caller = self.tenancy.caller(&request).await?;
        let request = request.into_inner();
        validate::check_list_namespace(&request.namespace)?;
        let query = list::Query::new(&request)?;
        if !self.cache.ready().await {
            return Err(Status::unavailable(
                "the broker has not read the test clusters yet; retry",
            ));
        }
        let mut visible = self.cache.all();
        visible.retain(|object| caller.sees(object));
        Ok(Response::new(query.page(visible)))
    }

    type WatchTestClusterStream = SnapshotStream;

    async fn watch_test_cluster(
        &self,
        request: Request<api::WatchTestClusterRequest>,
    ) -> Result<Response<Self::WatchTestClusterStream>, Status> {
        let caller = self.tenancy.caller(&request).await?;
        let request = request.into_inner();
        let (clusters, _) = self
            .find(&caller, &request.namespace, &request.name)
            .await?;
        let stream = watch(
            &self.cache,
            clusters,
            self.namespace(&request.namespace),
            &request.name,
            &request.resource_version,
        )
        .await?;
        Ok(Response::new(Box::pin(until_shutdown(
            stream,
            self.shutdown.clone(),
        ))))
    }

    async fn delete_test_cluster(
        &self,
        request: Request<api::DeleteTestClusterRequest>,
    ) -> Result<Response<api::DeleteTestClusterResponse>, Status> {
        let caller = self.tenancy.caller(&request).await?;
        let request = request.into_inner();
        let (clusters, object) = self
            .find(&caller, &request.namespace, &request.name)
            .await?;
        // Only the object that was checked: if it was replaced in between, the delete fails with
        // a conflict instead of deleting someone else's.
        let params = DeleteParams {
            preconditions: object.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        // Background: the call returns at once; the provisioner's finalizer holds the object until
        // the cloud resources are gone, and the ConfigMap goes with it by garbage collection.
        let deleted = clusters
            .delete(&request.name, &params)
            .await
            .map_err(|e| kube_status(&format!("TestClusterGKE {}", request.name), e))?;
        // Visible to this broker's next read before answering: a Get right after must not show
        // the object as it was before the delete.
        match deleted.as_ref().left().and_then(version_of) {
            Some(version) => self.cache.wait_seen(version, WRITE_VISIBLE_WAIT).await,
            None => {
                self.cache
                    .wait_gone(
                        self.namespace(&request.namespace),
                        &request.name,
                        WRITE_VISIBLE_WAIT,
                    )
                    .await
            }
        };
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
        audit::record_named(
            &caller,
            "delete",
            &test_cluster.namespace,
            &test_cluster.name,
        );
        Ok(Response::new(api::DeleteTestClusterResponse {
            test_cluster: Some(test_cluster),
        }))
    }

    async fn extend_test_cluster(
        &self,
        request: Request<api::ExtendTestClusterRequest>,
    ) -> Result<Response<api::ExtendTestClusterResponse>, Status> {
        let caller = self.tenancy.caller(&request).await?;
        let request = request.into_inner();
        let (clusters, _) = self
            .find(&caller, &request.namespace, &request.name)
            .await?;
        let by = extend::check_by(request.by)?;
        let (written, until) =
            extend::extend(&clusters, &self.lifetimes, &request.name, by).await?;
        audit::record(&caller, "extend", &written);
        if let Some(version) = version_of(&written) {
            self.cache.wait_seen(version, WRITE_VISIBLE_WAIT).await;
        }
        Ok(Response::new(api::ExtendTestClusterResponse {
            expire_time: Some(to_timestamp(&Time(until))),
            test_cluster: Some(to_test_cluster(&written)),
        }))
    }

    async fn get_test_cluster_credentials(
        &self,
        request: Request<api::GetTestClusterCredentialsRequest>,
    ) -> Result<Response<api::GetTestClusterCredentialsResponse>, Status> {
        let caller = self.tenancy.caller(&request).await?;
        let request = request.into_inner();
        let (_, object) = self
            .find(&caller, &request.namespace, &request.name)
            .await?;
        let namespace = self.namespace(&request.namespace);
        caller.check_credentials()?;
        audit::record(&caller, "fetch-credentials", &object);
        let access = self
            .provisioner
            .cluster_access(namespace, &request.name)
            .await?;
        // Who got credentials is worth a log line; the credentials never are.
        tracing::info!(%namespace, name = %request.name, cluster = %access.cluster_name, "handed out test cluster credentials");
        Ok(Response::new(api::GetTestClusterCredentialsResponse {
            kubeconfig: access.kubeconfig,
            expire_time: access.expire_time,
        }))
    }
}

/// The object now has a deletion timestamp; the provisioner will record phase Deleting shortly.
/// The caller is shown that phase at once rather than the one before it.
fn deleting(test_cluster: &mut api::TestCluster) {
    let status = test_cluster.status.get_or_insert_with(Default::default);
    status.phase = api::Phase::Deleting.into();
}
