//! The runner's integration-test world: a simulator (the management cluster, with the
//! TestClusterGKE CRD), a real test cluster in its cloud, and test clusters marked Ready with
//! that cluster's kubeconfig Secret, as the provisioner leaves them.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use testcluster_resources::TestClusterGKE;
use testcluster_sim::cloud::{ClusterKey, Provider, TestCluster};
use testcluster_sim::{SimConfig, Simulator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use testcluster_testkit::{WAIT, create_namespace, init, install_crd, wait_for, within};

pub const PROJECT: &str = "cilium-ci";
pub const LOCATION: &str = "europe-west2-b";

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
        install_crd(&client, &testcluster_resources::crd::crd()).await;
        create_namespace(&client, namespace).await;
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

    /// Creates a TestClusterGKE with a job running `command` on `cluster`, and leaves it as the
    /// provisioner would: its kubeconfig Secret written, then marked Ready (with the provisioner's
    /// field manager and fields).
    pub async fn ready_test_cluster(
        &self,
        name: &str,
        cluster: &TestCluster,
        command: &[&str],
    ) -> TestClusterGKE {
        self.ready_test_cluster_with_image(name, cluster, "busybox", command)
            .await
    }

    /// [`World::ready_test_cluster`] with the runner image `image`.
    pub async fn ready_test_cluster_with_image(
        &self,
        name: &str,
        cluster: &TestCluster,
        image: &str,
        command: &[&str],
    ) -> TestClusterGKE {
        let cluster_name = cluster.key().name.clone();
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
        let created = api
            .create(&PostParams::default(), &resource)
            .await
            .expect("create TestClusterGKE");
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {
                "name": format!("{name}-kubeconfig"),
                "namespace": self.namespace,
                "labels": {"clusters.ci.cilium.io/test-cluster": name},
                "ownerReferences": [created.controller_owner_ref(&())],
            },
            "stringData": {"kubeconfig": cluster.api().kubeconfig_yaml()},
        }))
        .expect("secret");
        self.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the kubeconfig Secret");
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
pub fn settings(world: &World) -> testcluster_runner::Settings {
    testcluster_runner::Settings {
        lifetimes: testcluster_resources::lifetime::Lifetimes {
            default_job_deadline: Duration::from_secs(120),
            ..Default::default()
        },
        namespace: Some(world.namespace.clone()),
        ..testcluster_runner::Settings::default()
    }
}

/// Starts the runner with [`settings`].
pub fn start_runner(world: &World) -> RunningRunner {
    start_runner_with(world, settings(world))
}

/// Starts the runner with `settings`.
pub fn start_runner_with(world: &World, settings: testcluster_runner::Settings) -> RunningRunner {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(testcluster_runner::run(
        world.client.clone(),
        None,
        settings,
        testcluster_service::metrics::Metrics::new(),
        shutdown.clone(),
    ));
    RunningRunner { shutdown, task }
}
