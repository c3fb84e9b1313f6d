//! What the provisioner's integration tests share: a simulated management cluster with the CRD
//! installed, a provisioner running against it over real HTTPS (and serving gRPC on a free port),
//! and bounded waits on watches.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::wait::{Condition, await_condition};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use testcluster_provisioner::Settings;
use testcluster_provisioner::template::OWNED_KINDS;
use testcluster_resources::{
    Condition as StatusCondition, ErrorStatus, JobRunnerSpec, Phase, TestClusterGKE,
    TestClusterGKEStatus,
};
use testcluster_sim::cloud::connector::ConnectorConfig;
use testcluster_sim::{SimConfig, Simulator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use testcluster_testkit::{WAIT, create_namespace, init, install_crd, within};

/// A simulator with the `TestClusterGKE` CRD, and a client for it.
pub struct Env {
    pub sim: Simulator,
    pub client: Client,
}

impl Env {
    /// A simulator whose ContainerClusters take `cluster_create` to come up.
    pub async fn start(cluster_create: Duration) -> Env {
        Env::start_with(SimConfig {
            connector: ConnectorConfig {
                cluster_create,
                node_pool_create: Duration::from_millis(100),
                other_create: Duration::from_millis(20),
                delete: Duration::from_millis(50),
                max_retry_backoff: Duration::from_millis(500),
            },
            ..SimConfig::default()
        })
        .await
    }

    /// A simulator (as `start` makes it) with the namespace `ns`, and the `TestClusterGKE` API of
    /// `ns`.
    pub async fn in_namespace(cluster_create: Duration, ns: &str) -> (Env, Api<TestClusterGKE>) {
        let env = Env::start(cluster_create).await;
        env.namespace(ns).await;
        let api = env.test_clusters(ns);
        (env, api)
    }

    /// A simulator started with `config`.
    pub async fn start_with(config: SimConfig) -> Env {
        init();
        let sim = Simulator::start(config).await.expect("simulator starts");
        let client = sim.api().client().await.expect("client");
        install_crd(&client, &testcluster_resources::crd::crd()).await;
        Env { sim, client }
    }

    pub async fn namespace(&self, name: &str) {
        create_namespace(&self.client, name).await;
    }

    pub fn settings(&self) -> Settings {
        Settings {
            default_project: "sim-project".into(),
            default_location: "europe-west2-b".into(),
            metadata_host: Some(self.sim.gke().metadata_host()),
            token_expiration: Duration::from_secs(600),
            provision_timeout: Duration::from_secs(600),
            // Its gRPC tests reach it in plaintext on loopback; mutual TLS is tested with the
            // shared stack (crates/service) and end to end.
            tls: None,
        }
    }

    /// Starts a provisioner with its own client, as a separate process would have.
    pub async fn provisioner(&self) -> Provisioner {
        self.provisioner_with(self.settings()).await
    }

    /// Starts a provisioner with `settings`.
    pub async fn provisioner_with(&self, settings: Settings) -> Provisioner {
        let client = self.sim.api().client().await.expect("client");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(testcluster_provisioner::run(
            client,
            listener,
            settings,
            testcluster_service::metrics::Metrics::new(),
            shutdown.clone(),
        ));
        Provisioner {
            address,
            shutdown,
            task,
        }
    }

    pub fn test_clusters(&self, namespace: &str) -> Api<TestClusterGKE> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Every Config Connector object of the kinds the provisioner owns, in `namespace`.
    pub async fn config_connector_objects(&self, namespace: &str) -> Vec<(String, DynamicObject)> {
        let mut all = Vec::new();
        for kind in OWNED_KINDS {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &kind.api_resource());
            for object in api.list(&Default::default()).await.expect("list") {
                all.push((kind.kind.to_owned(), object));
            }
        }
        all
    }

    /// Waits until no object of the owned kinds named `name` is left in `namespace`.
    pub async fn wait_config_connector_gone(&self, namespace: &str, name: &str) {
        for kind in OWNED_KINDS {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), namespace, &kind.api_resource());
            within(
                &format!("{} {namespace}/{name} gone", kind.kind),
                await_condition(api, name, |o: Option<&DynamicObject>| o.is_none()),
            )
            .await
            .expect("watch");
        }
    }
}

impl Env {
    /// Waits until no cloud cluster is live.
    pub async fn wait_no_live_cloud_cluster(&self) {
        self.sim
            .inventory()
            .wait_until_none_live(WAIT)
            .await
            .expect("no cloud cluster left");
    }

    /// Waits until the Config Connector objects named `cluster_name` and every live cloud
    /// cluster are gone.
    pub async fn wait_torn_down(&self, namespace: &str, cluster_name: &str) {
        self.wait_config_connector_gone(namespace, cluster_name)
            .await;
        self.wait_no_live_cloud_cluster().await;
    }

    /// Asserts that neither a Config Connector object in `namespace` nor a cloud cluster was ever
    /// created.
    pub async fn assert_nothing_created(&self, namespace: &str) {
        assert!(self.config_connector_objects(namespace).await.is_empty());
        assert!(self.sim.inventory().all().is_empty());
    }

    /// Waits for phase Error, then until every Config Connector object and cloud cluster is gone;
    /// returns the failure as the status recorded it.
    pub async fn wait_error_and_teardown(
        &self,
        api: &Api<TestClusterGKE>,
        ns: &str,
        name: &str,
    ) -> Failure {
        let failed = wait_for(api, name, "phase Error", phase_is(Phase::Error)).await;
        let status = failed.status.expect("status");
        let cluster_name = status.cluster_name.clone().expect("clusterName");
        self.wait_torn_down(ns, &cluster_name).await;
        assert!(self.config_connector_objects(ns).await.is_empty());
        // The record keeps the error, and the Ready condition that says why.
        let kept = wait_status(api, name, "teardown recorded", |s| {
            s.dependency_conditions.is_empty()
        })
        .await;
        assert_eq!(kept.phase, Some(Phase::Error));
        assert_eq!(kept.error, status.error);
        assert_eq!(says(ready_condition(&kept)), says(ready_condition(&status)));
        let error = status.error.clone().expect("status.error");
        Failure {
            status,
            cluster_name,
            error,
        }
    }
}

/// A run ended by a failure: its status, the cloud cluster's name and `status.error`.
pub struct Failure {
    pub status: TestClusterGKEStatus,
    pub cluster_name: String,
    pub error: ErrorStatus,
}

impl Failure {
    /// Asserts the Ready condition is False with `reason` and the error's message.
    pub fn assert_ready_false(&self, reason: &str) {
        assert_eq!(
            says(ready_condition(&self.status)),
            ("False", reason, self.error.message.as_str())
        );
    }
}

/// A running provisioner.
pub struct Provisioner {
    pub address: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Provisioner {
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops it as SIGTERM would, and checks it ended cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        within("provisioner stops", self.task)
            .await
            .expect("joins")
            .expect("provisioner ran cleanly");
    }

    /// Kills it mid-flight, as a crash or SIGKILL would: its futures are dropped wherever they
    /// were.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Waits on a watch until `condition` holds for `name`; returns the object then.
pub async fn wait_for(
    api: &Api<TestClusterGKE>,
    name: &str,
    what: &str,
    condition: impl Condition<TestClusterGKE>,
) -> TestClusterGKE {
    within(what, await_condition(api.clone(), name, condition))
        .await
        .expect("watch")
        .unwrap_or_else(|| panic!("{name} is gone while waiting for {what}"))
}

/// Waits on a watch until `name` has a status for which `holds` is true; returns that status.
pub async fn wait_status(
    api: &Api<TestClusterGKE>,
    name: &str,
    what: &str,
    holds: impl Fn(&TestClusterGKEStatus) -> bool,
) -> TestClusterGKEStatus {
    wait_for(api, name, what, move |tc: Option<&TestClusterGKE>| {
        tc.and_then(|tc| tc.status.as_ref()).is_some_and(&holds)
    })
    .await
    .status
    .expect("status")
}

/// Creates the seed example `name` with `nodes` nodes, waits for phase Ready and returns its
/// cloud cluster's name.
pub async fn create_ready(api: &Api<TestClusterGKE>, ns: &str, name: &str, nodes: i32) -> String {
    create(api, &seed_example(ns, name, nodes)).await;
    cluster_name_of(wait_for(api, name, "Ready", phase_is(Phase::Ready)).await)
}

/// `status.clusterName`, which must be set.
pub fn cluster_name_of(tc: TestClusterGKE) -> String {
    tc.status.and_then(|s| s.cluster_name).expect("clusterName")
}

/// Writes `status` (merged with its identity) as the runner does, with its own field manager.
pub async fn report_runner_status(
    api: &Api<TestClusterGKE>,
    name: &str,
    status: Value,
    what: &str,
) {
    api.patch_status(
        name,
        &PatchParams::apply("testcluster-runner").force(),
        &Patch::Apply(json!({
            "apiVersion": "clusters.ci.cilium.io/v1alpha2",
            "kind": "TestClusterGKE",
            "metadata": {"name": name},
            "status": status,
        })),
    )
    .await
    .expect(what);
}

/// Deletes `name` and waits until the object is gone.
pub async fn delete_and_wait_gone(api: &Api<TestClusterGKE>, name: &str, what: &str) {
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    within(
        what,
        await_condition(api.clone(), name, |tc: Option<&TestClusterGKE>| {
            tc.is_none()
        }),
    )
    .await
    .expect("watch");
}

/// Waits for phase Error on a spec refused as invalid with `message`; asserts the Ready
/// condition and `status.error` say so, and returns the status.
pub async fn wait_refused(
    api: &Api<TestClusterGKE>,
    name: &str,
    message: &str,
) -> TestClusterGKEStatus {
    let refused = wait_for(api, name, "phase Error", phase_is(Phase::Error)).await;
    let status = refused.status.expect("status");
    assert_eq!(
        says(ready_condition(&status)),
        ("False", "InvalidSpec", message)
    );
    let error = status.error.clone().expect("error");
    assert_eq!(
        (error.code.as_str(), error.message.as_str(), error.retryable),
        ("InvalidSpec", message, false)
    );
    status
}

/// The `Ready` condition among `conditions`.
pub fn ready_in(conditions: &[StatusCondition]) -> Option<&StatusCondition> {
    conditions.iter().find(|c| c.type_ == "Ready")
}

/// The provisioner's `Ready` condition, which must be there.
pub fn ready_condition(status: &TestClusterGKEStatus) -> &StatusCondition {
    ready_in(&status.conditions).expect("Ready condition")
}

/// A condition as (status, reason, message).
pub fn says(condition: &StatusCondition) -> (&str, &str, &str) {
    (
        condition.status.as_str(),
        condition.reason.as_str(),
        condition.message.as_str(),
    )
}

/// The runner container of a `TestClusterGKE` such as `seed_example`'s.
pub fn runner_of(tc: &mut TestClusterGKE) -> &mut JobRunnerSpec {
    tc.spec
        .job_spec
        .as_mut()
        .and_then(|j| j.runner.as_mut())
        .expect("runner")
}

/// The condition "status.phase is `phase`".
pub fn phase_is(phase: testcluster_resources::Phase) -> impl Condition<TestClusterGKE> {
    move |tc: Option<&TestClusterGKE>| {
        tc.and_then(|tc| tc.status.as_ref())
            .is_some_and(|s| s.phase == Some(phase))
    }
}

/// The seed's first example, in `namespace`, with `nodes` nodes.
pub fn seed_example(namespace: &str, name: &str, nodes: i32) -> TestClusterGKE {
    serde_json::from_value(json!({
        "apiVersion": "clusters.ci.cilium.io/v1alpha2",
        "kind": "TestClusterGKE",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "configTemplate": "basic",
            "jobSpec": {"runner": {
                "image": "cilium/cilium-test:8cfdbfe",
                "command": ["/usr/local/bin/test-gke.sh"],
            }},
            "machineType": "n1-standard-4",
            "nodes": nodes,
            "project": "cilium-ci",
            "location": "europe-west2-b",
            "region": "europe-west2",
        },
    }))
    .expect("seed example")
}

pub async fn create(api: &Api<TestClusterGKE>, tc: &TestClusterGKE) -> TestClusterGKE {
    api.create(&PostParams::default(), tc)
        .await
        .expect("TestClusterGKE created")
}

/// Waits for an Event about `name` with `reason` in `namespace`; returns it.
pub async fn wait_for_event(client: &Client, namespace: &str, name: &str, reason: &str) -> Event {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let stream = watcher(events, watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    within(&format!("event {reason} about {name}"), async {
        while let Some(event) = stream.next().await {
            let event = event.expect("event watch");
            if event.reason.as_deref() == Some(reason)
                && event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            {
                return event;
            }
        }
        panic!("event watch ended");
    })
    .await
}

/// Waits for a Warning Event about `name` with `reason` in `namespace`; returns it.
pub async fn wait_for_warning(client: &Client, namespace: &str, name: &str, reason: &str) -> Event {
    let event = wait_for_event(client, namespace, name, reason).await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    event
}

/// `status.conditions` of a Config Connector object.
pub fn ready_reason(object: &DynamicObject) -> Option<String> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["reason"].as_str().map(str::to_owned))
}

pub fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("JSON")
}

pub fn name_of(object: &DynamicObject) -> String {
    object.name_any()
}
