//! The runner's integration-test world: a simulator (the management cluster, with the
//! TestClusterGKE CRD), a real test cluster in its cloud, and a small in-test
//! ProvisionerService that hands out that cluster's kubeconfig over real gRPC, as the
//! provisioner would.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use sim::cloud::{ClusterKey, Provider, TestCluster};
use sim::{SimConfig, Simulator};
use testcluster_api::internal::v1::provisioner_service_server::{
    ProvisionerService, ProvisionerServiceServer,
};
use testcluster_api::internal::v1::{
    GetClusterAccessRequest, GetClusterAccessResponse, ListTemplatesRequest, ListTemplatesResponse,
    ValidateSpecRequest, ValidateSpecResponse,
};
use testcluster_resources::TestClusterGKE;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{Request, Response, Status};

/// The longest any wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(60);
pub const PROJECT: &str = "cilium-ci";
pub const LOCATION: &str = "europe-west2-b";

pub fn init() {
    service::install_crypto();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Runs `future` with the test-wide time limit.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits until the named object satisfies `condition`, and returns it.
pub async fn wait_for<K>(api: &Api<K>, name: &str, condition: impl Condition<K>) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    within(
        &format!("{name} to reach the expected state"),
        await_condition(api.clone(), name, condition),
    )
    .await
    .expect("watch")
    .unwrap_or_else(|| panic!("{name} does not exist"))
}

/// A simulator with the CRD installed, and a namespace for the test.
pub struct World {
    pub sim: Simulator,
    pub client: Client,
    pub namespace: String,
}

impl World {
    pub async fn start(namespace: &str) -> World {
        init();
        let sim = Simulator::start(SimConfig::default())
            .await
            .expect("simulator");
        let client = sim.api().client().await.expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let crd = testcluster_resources::crd::crd();
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create CRD");
        wait_for(&crds, &crd.name_any(), conditions::is_crd_established()).await;
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("ns"),
            )
            .await
            .expect("create namespace");
        World {
            sim,
            client,
            namespace: namespace.to_owned(),
        }
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A live cloud cluster named `cluster_name` with `nodes` nodes.
    pub async fn cloud_cluster(&self, cluster_name: &str, nodes: u32) -> Arc<TestCluster> {
        let key = ClusterKey {
            project: PROJECT.to_owned(),
            location: LOCATION.to_owned(),
            name: cluster_name.to_owned(),
        };
        let cluster = self
            .sim
            .cloud()
            .create_cluster(&key, Provider::ConfigConnector)
            .await
            .expect("cloud cluster");
        self.sim
            .cloud()
            .resize_pool(&key, "default-pool", "n1-standard-4", nodes)
            .await
            .expect("node pool");
        cluster
    }

    /// A cloud cluster `cluster_name` with `nodes` nodes, and a fake provisioner that hands out its
    /// kubeconfig for the test cluster `name` of this world's namespace.
    pub async fn provision(&self, name: &str, cluster_name: &str, nodes: u32) -> Provisioned {
        let cluster = self.cloud_cluster(cluster_name, nodes).await;
        let provisioner = FakeProvisioner::default();
        provisioner.add(&self.namespace, name, &cluster).await;
        let stop = CancellationToken::new();
        let url = provisioner.serve(stop.clone()).await;
        Provisioned {
            cluster,
            provisioner,
            url,
            _serving: stop.drop_guard(),
        }
    }

    /// Creates a TestClusterGKE with a job running `command`, and marks it Ready as the
    /// provisioner would (its own field manager, its own fields).
    pub async fn ready_test_cluster(
        &self,
        name: &str,
        cluster_name: &str,
        command: &[&str],
    ) -> TestClusterGKE {
        self.ready_test_cluster_with_image(name, cluster_name, "busybox", command)
            .await
    }

    /// [`World::ready_test_cluster`] with the runner image `image`.
    pub async fn ready_test_cluster_with_image(
        &self,
        name: &str,
        cluster_name: &str,
        image: &str,
        command: &[&str],
    ) -> TestClusterGKE {
        let api: Api<TestClusterGKE> = self.api();
        let resource: TestClusterGKE = serde_json::from_value(json!({
            "apiVersion": "clusters.ci.cilium.io/v1alpha2",
            "kind": "TestClusterGKE",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "configTemplate": "basic",
                "nodes": 3,
                "location": LOCATION,
                "jobSpec": {"runner": {
                    "image": image,
                    "command": command,
                    "env": [{"name": "FROM_USER", "value": "yes"}],
                }},
            },
        }))
        .expect("resource");
        api.create(&PostParams::default(), &resource)
            .await
            .expect("create TestClusterGKE");
        let status = json!({
            "apiVersion": "clusters.ci.cilium.io/v1alpha2",
            "kind": "TestClusterGKE",
            "metadata": {"name": name},
            "status": {
                "phase": "Ready",
                "clusterName": cluster_name,
                "location": LOCATION,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "AllDependenciesReady",
                    "message": "All 2 dependencies are ready",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }],
            },
        });
        api.patch_status(
            name,
            &PatchParams::apply("testcluster-provisioner").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("status Ready")
    }
}

/// A cloud cluster and the fake provisioner that serves it, until this is dropped.
pub struct Provisioned {
    pub cluster: Arc<TestCluster>,
    pub provisioner: FakeProvisioner,
    /// Where the provisioner serves, for the runner's settings.
    pub url: String,
    _serving: DropGuard,
}

/// What the in-test provisioner knows: the kubeconfig of each test cluster by `namespace/name`.
#[derive(Clone, Default)]
pub struct FakeProvisioner {
    clusters: Arc<Mutex<HashMap<String, GetClusterAccessResponse>>>,
    /// Calls answered UNAVAILABLE before the real answers start.
    unavailable_first: Arc<AtomicU32>,
    pub calls: Arc<AtomicU32>,
}

impl FakeProvisioner {
    pub async fn add(&self, namespace: &str, name: &str, cluster: &TestCluster) {
        let response = GetClusterAccessResponse {
            kubeconfig: cluster.api().kubeconfig_yaml(),
            endpoint: cluster.api().https_url(),
            ca_certificate: cluster.api().ca_pem().to_owned(),
            token: cluster.api().admin_token().to_owned(),
            expire_time: None,
            cluster_name: cluster.key().name.clone(),
            location: cluster.key().location.clone(),
        };
        self.clusters
            .lock()
            .await
            .insert(format!("{namespace}/{name}"), response);
    }

    pub fn fail_first(&self, calls: u32) {
        self.unavailable_first.store(calls, Ordering::SeqCst);
    }

    /// Serves on a free loopback port until `shutdown`; returns its URL.
    pub async fn serve(&self, shutdown: CancellationToken) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let service = ProvisionerServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener),
                    shutdown.cancelled_owned(),
                )
                .await
                .expect("provisioner serves");
        });
        url
    }
}

#[tonic::async_trait]
impl ProvisionerService for FakeProvisioner {
    async fn list_templates(
        &self,
        _: Request<ListTemplatesRequest>,
    ) -> Result<Response<ListTemplatesResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn validate_spec(
        &self,
        _: Request<ValidateSpecRequest>,
    ) -> Result<Response<ValidateSpecResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn get_cluster_access(
        &self,
        request: Request<GetClusterAccessRequest>,
    ) -> Result<Response<GetClusterAccessResponse>, Status> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.unavailable_first.load(Ordering::SeqCst) {
            return Err(Status::unavailable("provisioner is starting"));
        }
        let request = request.into_inner();
        let key = format!("{}/{}", request.namespace, request.name);
        self.clusters
            .lock()
            .await
            .get(&key)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("test cluster {key} not found")))
    }
}

/// A runner started by [`start_runner`]; [`RunningRunner::stop`] stops it.
pub struct RunningRunner {
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningRunner {
    /// Cancels the runner and waits for it to return, which it must do without an error.
    pub async fn stop(self, what: &str) {
        self.shutdown.cancel();
        within(what, self.task)
            .await
            .expect("join")
            .expect("runner");
    }
}

/// Settings for a runner of the world's namespace, with a job deadline ample for any test job.
pub fn settings(world: &World, provisioner: &str) -> runner::Settings {
    runner::Settings {
        provisioner: provisioner.to_owned(),
        job_deadline: Duration::from_secs(120),
        namespace: Some(world.namespace.clone()),
        ..runner::Settings::default()
    }
}

/// Starts the runner with [`settings`].
pub fn start_runner(world: &World, provisioner: &str) -> RunningRunner {
    start_runner_with(world, settings(world, provisioner))
}

/// Starts the runner with `settings`.
pub fn start_runner_with(world: &World, settings: runner::Settings) -> RunningRunner {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runner::run(
        world.client.clone(),
        settings,
        service::metrics::Metrics::new(),
        shutdown.clone(),
    ));
    RunningRunner { shutdown, task }
}
