//! What the provisioner's integration tests share: a simulated management cluster with the CRD
//! installed, a provisioner running against it over real HTTPS (and serving gRPC on a free port),
//! and bounded waits on watches.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::core::DynamicObject;
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use provisioner::Settings;
use provisioner::template::OWNED_KINDS;
use serde_json::{Value, json};
use sim::cloud::connector::ConnectorConfig;
use sim::{SimConfig, Simulator};
use testcluster_resources::TestClusterGKE;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The longest any single wait may take.
pub const WAIT: Duration = Duration::from_secs(30);

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

    /// A simulator started with `config`.
    pub async fn start_with(config: SimConfig) -> Env {
        service::install_crypto();
        let sim = Simulator::start(config).await.expect("simulator starts");
        let client = sim.api().client().await.expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &testcluster_resources::crd::crd())
            .await
            .expect("CRD created");
        within(
            "CRD established",
            await_condition(
                crds,
                "testclustersgke.clusters.ci.cilium.io",
                conditions::is_crd_established(),
            ),
        )
        .await
        .expect("CRD watch");
        Env { sim, client }
    }

    pub async fn namespace(&self, name: &str) {
        Api::<Namespace>::all(self.client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace"),
            )
            .await
            .expect("namespace created");
    }

    pub fn settings(&self) -> Settings {
        Settings {
            default_project: "sim-project".into(),
            default_location: "europe-west2-b".into(),
            metadata_host: Some(self.sim.gke().metadata_host()),
            token_expiration: Duration::from_secs(600),
            provision_timeout: Duration::from_secs(600),
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
        let task = tokio::spawn(provisioner::run(
            client,
            listener,
            settings,
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

/// Runs `future` with the per-wait time limit.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
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
