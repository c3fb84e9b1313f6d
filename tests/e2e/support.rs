//! What every scenario needs: the suite, a gRPC client to the broker, and following a run the way a
//! CI job does (watch from the version create returned, logs once the job runs).

use std::time::Duration;

use kube::api::{DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, ResourceExt as _};
use tcctl::suite::{Suite, SuiteConfig};
use testcluster_api::v1 as api;
use testcluster_api::v1::log_service_client::LogServiceClient;
use testcluster_api::v1::stream_logs_response::Event;
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;
use testcluster_auth::client::{AuthorizedChannel, Bearer};
use testcluster_sim::SimConfig;
use testcluster_sim::cloud::connector::ConnectorConfig;
use tonic::Streaming;
use tonic::transport::Channel;

/// Bound on one whole lifecycle in the simulator (seconds in practice).
pub const TIMEOUT: Duration = Duration::from_secs(120);
pub const NAMESPACE: &str = tcctl::suite::NAMESPACE;
/// An image with `sh` and `kubectl`; the simulated kubelet runs the command on this machine.
pub const IMAGE: &str = "bitnami/kubectl:latest";
/// The job of issue #3's first scenario.
pub const HELLO: &[&str] = &["sh", "-c", "echo hello-from-job; kubectl get nodes -o name"];

/// The running suite and a channel to its broker.
pub struct Env {
    pub suite: Suite,
    /// To the broker, with the suite's token on every call.
    pub channel: AuthorizedChannel,
}

pub async fn start() -> Env {
    start_with(SuiteConfig::default()).await
}

pub async fn start_with(config: SuiteConfig) -> Env {
    let suite = Suite::start(config).await.expect("suite starts");
    let channel = Channel::from_shared(suite.broker_endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("broker reachable");
    let channel = Bearer::new(Some(suite.token())).expect("token").on(channel);
    Env { suite, channel }
}

/// The suite with a slow cloud, whose clusters take `cluster_create` to come up, so that a
/// component can be stopped while one is being created.
pub async fn start_with_cluster_create(cluster_create: Duration) -> Env {
    start_with(SuiteConfig {
        sim: SimConfig {
            connector: ConnectorConfig {
                cluster_create,
                ..ConnectorConfig::default()
            },
            ..SimConfig::default()
        },
        ..SuiteConfig::default()
    })
    .await
}

/// A create request for a job on a `basic` cluster.
pub fn job_request(name: &str, nodes: i32, command: &[&str]) -> api::CreateTestClusterRequest {
    api::CreateTestClusterRequest {
        namespace: NAMESPACE.to_owned(),
        name: name.to_owned(),
        spec: Some(api::TestClusterSpec {
            config_template: Some("basic".to_owned()),
            nodes: Some(nodes),
            job_spec: Some(api::JobSpec {
                runner: Some(api::JobRunnerSpec {
                    image: Some(IMAGE.to_owned()),
                    command: command.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Everything a CI job sees of one run.
#[derive(Debug, Default)]
pub struct Run {
    pub snapshots: Vec<api::TestCluster>,
    pub lines: Vec<api::LogLine>,
    pub final_status: Option<api::FinalStatus>,
}

impl Run {
    /// The phases seen, in order, each once.
    pub fn phases(&self) -> Vec<api::Phase> {
        let mut phases: Vec<api::Phase> = Vec::new();
        for phase in self.snapshots.iter().map(phase_of) {
            if phase != api::Phase::Unspecified && phases.last() != Some(&phase) {
                phases.push(phase);
            }
        }
        phases
    }

    pub fn last(&self) -> &api::TestCluster {
        self.snapshots.last().expect("at least one snapshot")
    }

    pub fn status(&self) -> api::TestClusterStatus {
        self.last().status.clone().unwrap_or_default()
    }

    pub fn exit_code(&self) -> Option<i32> {
        self.status().job.and_then(|job| job.exit_code)
    }

    pub fn text(&self) -> Vec<&str> {
        self.lines.iter().map(|line| line.text.as_str()).collect()
    }

    /// The first snapshot in `phase`.
    pub fn snapshot_in(&self, phase: api::Phase) -> Option<&api::TestCluster> {
        self.snapshots.iter().find(|s| phase_of(s) == phase)
    }
}

/// Reads snapshots from `stream` until one is in `phase` (or later) and returns it.
pub async fn until_phase(
    stream: &mut tonic::Streaming<api::WatchTestClusterResponse>,
    phase: api::Phase,
) -> api::TestCluster {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let message = stream
                .message()
                .await
                .expect("watch")
                .expect("stream ended early");
            let cluster = message.test_cluster.expect("snapshot");
            if phase_of(&cluster) as i32 >= phase as i32 {
                return cluster;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never reached {phase:?}"))
}

pub fn phase_of(cluster: &api::TestCluster) -> api::Phase {
    cluster
        .status
        .as_ref()
        .map_or(api::Phase::Unspecified, |status| status.phase())
}

impl Env {
    pub fn broker(&self) -> TestClusterServiceClient<AuthorizedChannel> {
        TestClusterServiceClient::new(self.channel.clone())
    }

    pub async fn create(&self, request: api::CreateTestClusterRequest) -> api::TestCluster {
        self.broker()
            .create_test_cluster(request)
            .await
            .expect("created")
            .into_inner()
            .test_cluster
            .expect("test cluster in the response")
    }

    /// Follows a run from `resource_version` (empty: the current state) to its end.
    pub async fn follow(&self, name: &str, resource_version: &str) -> Run {
        tokio::time::timeout(TIMEOUT, self.follow_unbounded(name, resource_version))
            .await
            .unwrap_or_else(|_| panic!("run {name} did not finish within {TIMEOUT:?}"))
    }

    /// Watches `name` from `resource_version` (empty: the current state) through the broker.
    pub async fn watch(
        &self,
        name: &str,
        resource_version: &str,
    ) -> Streaming<api::WatchTestClusterResponse> {
        self.broker()
            .watch_test_cluster(api::WatchTestClusterRequest {
                namespace: NAMESPACE.to_owned(),
                name: name.to_owned(),
                resource_version: resource_version.to_owned(),
            })
            .await
            .expect("watch")
            .into_inner()
    }

    async fn follow_unbounded(&self, name: &str, resource_version: &str) -> Run {
        let mut stream = self.watch(name, resource_version).await;
        let mut run = Run::default();
        let mut logs = None;
        while let Some(message) = stream.message().await.expect("watch stream") {
            assert!(!message.deleted, "{name} deleted during its run");
            let cluster = message.test_cluster.expect("snapshot");
            if logs.is_none()
                && matches!(
                    phase_of(&cluster),
                    api::Phase::Running | api::Phase::Succeeded | api::Phase::Failed
                )
            {
                logs = Some(tokio::spawn(stream_logs(
                    self.channel.clone(),
                    name.to_owned(),
                )));
            }
            run.snapshots.push(cluster);
        }
        if let Some(logs) = logs {
            let (lines, final_status) = logs.await.expect("log task");
            run.lines = lines;
            run.final_status = final_status;
        }
        run
    }

    /// Waits until the simulator's inventory shows the cloud cluster `cluster_name` created and
    /// deleted, and no cloud cluster live at all.
    pub async fn wait_cloud_cluster_deleted(&self, cluster_name: &str) {
        let inventory = self.suite.simulator().inventory();
        let gone = inventory
            .wait_until(TIMEOUT, |inventory| {
                let all = inventory.all();
                all.iter().any(|c| c.name == cluster_name) && inventory.live().is_empty()
            })
            .await;
        assert!(
            gone.is_ok(),
            "cloud cluster {cluster_name} not deleted: {:?}",
            inventory.all()
        );
    }

    /// Waits until no Config Connector object is left in the namespace.
    pub async fn wait_no_config_connector_objects(&self) {
        let client = self.suite.client().await.expect("client");
        let discovery = Discovery::new(client.clone())
            .run()
            .await
            .expect("discovery");
        for group in discovery.groups() {
            if !group.name().ends_with("cnrm.cloud.google.com") {
                continue;
            }
            for (resource, capabilities) in group.recommended_resources() {
                if capabilities.scope != Scope::Namespaced {
                    continue;
                }
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), NAMESPACE, &resource);
                let left = api.list(&ListParams::default()).await.expect("list");
                for object in left.items {
                    let uid = object.uid().unwrap_or_default();
                    let name = object.name_any();
                    tokio::time::timeout(
                        TIMEOUT,
                        await_condition(api.clone(), &name, conditions::is_deleted(&uid)),
                    )
                    .await
                    .unwrap_or_else(|_| panic!("{} {name} was not deleted", resource.kind))
                    .expect("watch");
                }
            }
        }
    }
}

/// The job's log lines and logview's final status, following until logview ends the stream.
async fn stream_logs(
    channel: AuthorizedChannel,
    name: String,
) -> (Vec<api::LogLine>, Option<api::FinalStatus>) {
    let mut stream = LogServiceClient::new(channel)
        .stream_logs(api::StreamLogsRequest {
            namespace: NAMESPACE.to_owned(),
            name,
            follow: true,
        })
        .await
        .expect("logs through the broker")
        .into_inner();
    let mut lines = Vec::new();
    let mut final_status = None;
    while let Some(message) = stream.message().await.expect("log stream") {
        match message.event {
            Some(Event::Line(line)) => lines.push(line),
            Some(Event::FinalStatus(status)) => final_status = Some(status),
            None => {}
        }
    }
    (lines, final_status)
}
