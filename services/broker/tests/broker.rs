//! The broker against an in-process simulator over real HTTPS, reached by a real tonic client.
//!
//! The provisioner is played by a small `ProvisionerService` served over loopback gRPC (services do
//! not depend on each other's crates); it knows one template, `basic`, which is all the broker
//! asks it (`ListTemplates`): every other rule the broker checks itself. Status changes that the
//! provisioner and runner would make are written here with `/status` patches.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt as _};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;
use testcluster_api::errors::field_violations;
use testcluster_api::internal::v1::provisioner_service_server::ProvisionerServiceServer;
use testcluster_api::v1 as api;
use testcluster_api::v1::log_service_client::LogServiceClient;
use testcluster_api::v1::log_service_server::{LogService, LogServiceServer};
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;
use testcluster_resources::TestClusterGKE;
use testcluster_service::metrics::Metrics;
use testcluster_sim::{SimConfig, Simulator};
use testcluster_testkit as testkit;

mod fakes;
use fakes::FakeProvisioner;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

const NAMESPACE: &str = "test-clusters";
const TIMEOUT: Duration = Duration::from_secs(20);

/// Plays logview: one line, then a stream that stays open, as a followed job's logs do.
struct EndlessLogview;

#[tonic::async_trait]
impl LogService for EndlessLogview {
    type StreamLogsStream =
        Pin<Box<dyn Stream<Item = Result<api::StreamLogsResponse, Status>> + Send>>;

    async fn stream_logs(
        &self,
        _: Request<api::StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let line = api::StreamLogsResponse {
            event: Some(api::stream_logs_response::Event::Line(api::LogLine {
                container: api::Container::Runner.into(),
                time: None,
                text: "still running".to_owned(),
            })),
        };
        let stream = futures::stream::iter([Ok(line)]).chain(futures::stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }
}

struct Env {
    sim: Simulator,
    _dir: tempfile::TempDir,
    client: kube::Client,
    broker: TestClusterServiceClient<Channel>,
    channel: Channel,
    /// The broker's address, for tests that need connections of their own.
    endpoint: String,
    stop: CancellationToken,
    /// The broker's `run`, to see it return after `stop`.
    served: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A free loopback port nothing listens on (bound, then released).
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address")
}

async fn start(with_provisioner: bool) -> Env {
    start_with(with_provisioner, false).await
}

/// Starts the simulator and the broker, with the fake provisioner and [`EndlessLogview`] when asked
/// (a closed port otherwise).
async fn start_with(with_provisioner: bool, with_logview: bool) -> Env {
    start_full(
        with_provisioner,
        with_logview,
        testcluster_broker::Settings::default().watch_window,
    )
    .await
}

/// As [`start_with`], with the broker keeping `watch_window` recent changes to replay.
async fn start_full(with_provisioner: bool, with_logview: bool, watch_window: usize) -> Env {
    testkit::init();
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let client = testcluster_service::kube_client(Some(&kubeconfig))
        .await
        .expect("client");
    testkit::install_crd(&client, &testcluster_resources::crd::crd()).await;
    testkit::create_namespace(&client, NAMESPACE).await;
    let stop = CancellationToken::new();
    let provisioner = if with_provisioner {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = testcluster_service::grpc::GrpcServer::new(&Metrics::new())
            .add_service(ProvisionerServiceServer::new(FakeProvisioner));
        tokio::spawn(server.serve(listener, stop.clone()));
        address
    } else {
        closed_port().await
    };
    let logview = if with_logview {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        // Its own token: it outlives the broker's shutdown, as a separate service would.
        let server = testcluster_service::grpc::GrpcServer::new(&Metrics::new())
            .add_service(LogServiceServer::new(EndlessLogview));
        tokio::spawn(server.serve(listener, CancellationToken::new()));
        address
    } else {
        closed_port().await
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let settings = testcluster_broker::Settings {
        provisioner_endpoint: format!("http://{provisioner}"),
        logview_endpoint: format!("http://{logview}"),
        provisioner_timeout: Duration::from_secs(2),
        watch_window,
        // Authentication, tenancy and per-caller rates have their own tests (`auth.rs`, the
        // service crate's `stack.rs`); these test the rest, as one anonymous caller.
        auth: testcluster_auth::AuthArgs {
            allow_unauthenticated: true,
            ..Default::default()
        },
        rate_per_caller: 0.0,
        ..testcluster_broker::Settings::default()
    };
    let served = tokio::spawn(testcluster_broker::run(
        client.clone(),
        listener,
        settings,
        Metrics::new(),
        stop.clone(),
    ));
    let endpoint = format!("http://{address}");
    let channel = Channel::from_shared(endpoint.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    Env {
        sim,
        _dir: dir,
        client,
        broker: TestClusterServiceClient::new(channel.clone()),
        channel,
        endpoint,
        stop,
        served: Some(served),
    }
}

fn job(image: Option<&str>, command: &[&str]) -> api::TestClusterSpec {
    api::TestClusterSpec {
        nodes: Some(1),
        job_spec: Some(api::JobSpec {
            runner: Some(api::JobRunnerSpec {
                image: image.map(str::to_owned),
                command: command.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn create_request(name: &str, spec: api::TestClusterSpec) -> api::CreateTestClusterRequest {
    api::CreateTestClusterRequest {
        namespace: NAMESPACE.to_owned(),
        name: name.to_owned(),
        spec: Some(spec),
        ..Default::default()
    }
}

impl Env {
    fn clusters(&self) -> Api<TestClusterGKE> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    async fn count(&self) -> (usize, usize) {
        let clusters = self
            .clusters()
            .list(&ListParams::default())
            .await
            .expect("list");
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), NAMESPACE);
        let config_maps = config_maps
            .list(&ListParams::default())
            .await
            .expect("list");
        let user = config_maps
            .items
            .iter()
            .filter(|cm| {
                cm.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.ends_with("-user"))
            })
            .count();
        (clusters.items.len(), user)
    }

    /// Creates through the broker; the test cluster it answers with.
    async fn create(
        &mut self,
        request: api::CreateTestClusterRequest,
    ) -> Result<api::TestCluster, Status> {
        let response = self.broker.create_test_cluster(request).await?;
        Ok(response.into_inner().test_cluster.expect("test cluster"))
    }

    /// Reads `name` in [`NAMESPACE`] through the broker.
    async fn get(&mut self, name: &str) -> Result<api::TestCluster, Status> {
        let request = api::GetTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: name.to_owned(),
        };
        let response = self.broker.get_test_cluster(request).await?;
        Ok(response.into_inner().test_cluster.expect("test cluster"))
    }

    /// Deletes `name` in [`NAMESPACE`] through the broker; the test cluster it answers with.
    async fn delete(&mut self, name: &str) -> Result<api::TestCluster, Status> {
        let request = api::DeleteTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: name.to_owned(),
        };
        let response = self.broker.delete_test_cluster(request).await?;
        Ok(response.into_inner().test_cluster.expect("test cluster"))
    }

    /// Watches `name` in [`NAMESPACE`] from `resource_version` (empty: the current state).
    async fn watch(
        &mut self,
        name: &str,
        resource_version: String,
    ) -> Result<tonic::Streaming<api::WatchTestClusterResponse>, Status> {
        let request = api::WatchTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: name.to_owned(),
            resource_version,
        };
        Ok(self.broker.watch_test_cluster(request).await?.into_inner())
    }

    async fn set_phase(&self, name: &str, phase: &str) {
        self.clusters()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": phase}})),
            )
            .await
            .expect("status patch");
    }
}

#[tokio::test]
async fn create_defaults_writes_config_map_and_reads_back() {
    let mut env = start(true).await;
    let mut request = create_request("alpha", job(Some("busybox"), &["sh", "-c", "true"]));
    request.init_manifest =
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n".to_owned());
    request.labels.insert("team".to_owned(), "net".to_owned());
    request.github = Some(api::GitHubInfo {
        commit_hash: "abc123".to_owned(),
        ..Default::default()
    });
    let created = env.create(request).await.expect("created");
    assert_eq!(created.name, "alpha");
    let spec = created.spec.clone().expect("spec");
    assert_eq!(spec.config_template.as_deref(), Some("basic"));
    assert_eq!(spec.machine_type.as_deref(), Some("n1-standard-4"));
    assert_eq!(spec.nodes, Some(1));
    let runner = spec.job_spec.and_then(|job| job.runner).expect("runner");
    assert_eq!(runner.config_map.as_deref(), Some("alpha-user"));

    let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), NAMESPACE);
    let config_map = config_maps.get("alpha-user").await.expect("ConfigMap");
    assert!(
        config_map
            .data
            .unwrap_or_default()
            .get("init-manifest")
            .is_some_and(|m| m.contains("kind: Namespace"))
    );
    let owners = config_map.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].uid, created.uid);
    assert_eq!(owners[0].kind, "TestClusterGKE");
    assert_eq!(owners[0].controller, Some(true));

    let got = env.get("alpha").await.expect("get");
    assert_eq!(got.uid, created.uid);
    assert_eq!(
        got.labels
            .get("ci.cilium.io/github-commit-hash")
            .map(String::as_str),
        Some("abc123")
    );

    // A duplicate is refused, and with a prefix a name is generated.
    let duplicate = env
        .create(create_request("alpha", job(Some("busybox"), &[])))
        .await
        .expect_err("duplicate");
    assert_eq!(duplicate.code(), Code::AlreadyExists, "{duplicate:?}");
    let mut prefixed = create_request("", api::TestClusterSpec::default());
    prefixed.name_prefix = "ci-".to_owned();
    let generated = env.create(prefixed).await.expect("prefixed");
    assert!(
        generated.name.starts_with("ci-") && generated.name.len() == 8,
        "{}",
        generated.name
    );

    let list = |selector: &str| api::ListTestClustersRequest {
        namespace: NAMESPACE.to_owned(),
        label_selector: selector.to_owned(),
        ..Default::default()
    };
    let all = env
        .broker
        .list_test_clusters(list(""))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(all.test_clusters.len(), 2);
    let team = env
        .broker
        .list_test_clusters(list("team=net"))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(team.test_clusters.len(), 1);
    assert_eq!(team.test_clusters[0].name, "alpha");
    let mut paged = list("");
    paged.page_size = 1;
    let page = env
        .broker
        .list_test_clusters(paged.clone())
        .await
        .expect("page")
        .into_inner();
    assert_eq!(page.test_clusters.len(), 1);
    assert!(!page.next_page_token.is_empty());
    paged.page_token = page.next_page_token;
    let rest = env
        .broker
        .list_test_clusters(paged)
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(rest.test_clusters.len(), 1);
    assert_ne!(rest.test_clusters[0].name, page.test_clusters[0].name);
    let bad = env
        .broker
        .list_test_clusters(list("a b c"))
        .await
        .expect_err("bad selector");
    assert_eq!(bad.code(), Code::InvalidArgument);

    let deleted = env.delete("alpha").await.expect("delete");
    assert_eq!(deleted.name, "alpha");
    for _ in 0..2 {
        let missing = env.get("alpha").await.expect_err("gone");
        assert_eq!(missing.code(), Code::NotFound);
    }
    let missing = env.delete("alpha").await.expect_err("gone");
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn invalid_requests_name_the_field_and_create_nothing() {
    let mut env = start(true).await;
    let unknown_template = api::TestClusterSpec {
        config_template: Some("nope".to_owned()),
        ..Default::default()
    };
    let nodes = api::TestClusterSpec {
        nodes: Some(0),
        ..Default::default()
    };
    let mut manifest_without_job = create_request("ok", api::TestClusterSpec::default());
    manifest_without_job.init_manifest = Some("x: y".to_owned());
    let cases = [
        (create_request("ok", nodes), "spec.nodes"),
        (
            create_request("ok", unknown_template),
            "spec.config_template",
        ),
        (
            create_request(&"a".repeat(35), api::TestClusterSpec::default()),
            "name",
        ),
        (
            create_request("Upper", api::TestClusterSpec::default()),
            "name",
        ),
        (
            create_request("ok", job(None, &["true"])),
            "spec.job_spec.runner.image",
        ),
        (manifest_without_job, "init_manifest"),
    ];
    for (request, field) in cases {
        let status = env.create(request.clone()).await.expect_err("invalid");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{request:?}: {status:?}"
        );
        let fields: Vec<String> = field_violations(&status)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, vec![field.to_owned()], "{request:?}");
    }
    // Several problems at once are all named, the provisioner's template check among them.
    let several = create_request(
        "Upper",
        api::TestClusterSpec {
            nodes: Some(0),
            config_template: Some("nope".to_owned()),
            ..Default::default()
        },
    );
    let status = env.create(several).await.expect_err("invalid");
    let fields: Vec<String> = field_violations(&status)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["name", "spec.nodes", "spec.config_template"]);
    let mut missing_namespace = create_request("ok", api::TestClusterSpec::default());
    missing_namespace.namespace = "nowhere".to_owned();
    let status = env
        .create(missing_namespace)
        .await
        .expect_err("no namespace");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&status)[0].field, "namespace");
    assert_eq!(env.count().await, (0, 0));
}

/// The bad inputs of issue 7, each refused with INVALID_ARGUMENT naming the field in the request's
/// own names before the broker writes anything, with nothing created.
#[tokio::test]
async fn bad_inputs_are_refused_at_once_naming_the_field_and_nothing_is_created() {
    let mut env = start(true).await;
    let with_runner = |edit: fn(&mut api::JobRunnerSpec)| {
        let mut spec = job(Some("busybox"), &["true"]);
        if let Some(runner) = spec.job_spec.as_mut().and_then(|j| j.runner.as_mut()) {
            edit(runner);
        }
        let mut request = create_request("bad", spec);
        // With a manifest, a request that got through would leave a ConfigMap too.
        request.init_manifest = Some("kind: Namespace".to_owned());
        request
    };
    let located = |location: &str, region: Option<&str>| {
        create_request(
            "bad",
            api::TestClusterSpec {
                location: Some(location.to_owned()),
                region: region.map(str::to_owned),
                ..Default::default()
            },
        )
    };
    let mut reserved_label = create_request("bad", api::TestClusterSpec::default());
    reserved_label.labels.insert(
        "clusters.ci.cilium.io/test-cluster".to_owned(),
        "other-run".to_owned(),
    );
    let mut oversize_description = create_request("bad", api::TestClusterSpec::default());
    oversize_description.description = "d".repeat(128 * 1024 + 1);
    let cases: Vec<(&str, api::CreateTestClusterRequest, &str, &str)> = vec![
        (
            "NUL byte in an env name",
            with_runner(|r| {
                r.env = vec![api::EnvVar {
                    name: "A\0B".to_owned(),
                    value: Some("x".to_owned()),
                    value_from: None,
                }]
            }),
            "spec.job_spec.runner.env[0].name",
            "INVALID_NAME",
        ),
        (
            "location mars-1",
            located("mars-1", None),
            "spec.location",
            "INVALID_VALUE",
        ),
        (
            "region of another location",
            located("europe-west2-b", Some("us-east1")),
            "spec.region",
            "MISMATCH",
        ),
        (
            "empty valueFrom",
            with_runner(|r| {
                r.env = vec![api::EnvVar {
                    name: "V".to_owned(),
                    value: None,
                    value_from: Some(api::EnvVarSource::default()),
                }]
            }),
            "spec.job_spec.runner.env[0].value_from",
            "REQUIRED",
        ),
        (
            "reserved label",
            reserved_label,
            "labels[clusters.ci.cilium.io/test-cluster]",
            "RESERVED",
        ),
        (
            "100,000 env entries",
            // Empty entries: each is also an invalid name, so a check that looked at items before
            // counting them would report 100,000 violations instead of one.
            with_runner(|r| r.env = vec![api::EnvVar::default(); 100_000]),
            "spec.job_spec.runner.env",
            "TOO_MANY",
        ),
        (
            "oversize description",
            oversize_description,
            "description",
            "TOO_LONG",
        ),
        (
            "secretKeyRef to another run's kubeconfig",
            with_runner(|r| {
                r.env = vec![api::EnvVar {
                    name: "STOLEN".to_owned(),
                    value: None,
                    value_from: Some(api::EnvVarSource {
                        secret_key_ref: Some(api::SecretKeySelector {
                            name: "victim-kubeconfig".to_owned(),
                            key: "kubeconfig".to_owned(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                }]
            }),
            "spec.job_spec.runner.env[0].value_from.secret_key_ref",
            "FORBIDDEN",
        ),
        (
            "configMapKeyRef to another run's ConfigMap",
            with_runner(|r| {
                r.env = vec![api::EnvVar {
                    name: "MANIFEST".to_owned(),
                    value: None,
                    value_from: Some(api::EnvVarSource {
                        config_map_key_ref: Some(api::ConfigMapKeySelector {
                            name: "victim-user".to_owned(),
                            key: "init-manifest".to_owned(),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                }]
            }),
            "spec.job_spec.runner.env[0].value_from.config_map_key_ref.name",
            "FORBIDDEN",
        ),
    ];
    // Writes to the API server, by anyone: the informers' lists and watches may still be starting.
    let writes = |env: &Env| -> u64 {
        env.sim
            .api()
            .counters()
            .snapshot()
            .iter()
            .filter(|((verb, _), _)| {
                matches!(
                    verb.as_str(),
                    "create" | "update" | "patch" | "apply" | "delete"
                )
            })
            .map(|(_, count)| count)
            .sum()
    };
    let written = writes(&env);
    for (what, request, field, reason) in cases {
        let status = env.create(request).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        let violations: Vec<(String, String)> = field_violations(&status)
            .into_iter()
            .map(|v| (v.field, v.reason))
            .collect();
        assert_eq!(
            violations,
            [(field.to_owned(), reason.to_owned())],
            "{what}"
        );
        assert_eq!(
            writes(&env),
            written,
            "{what}: refused before any write to the API server"
        );
    }
    assert_eq!(env.count().await, (0, 0));
    let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), NAMESPACE);
    let names: Vec<String> = config_maps
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|cm| cm.name_any())
        .filter(|name| name != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, Vec::<String>::new());
}

#[tokio::test]
async fn provisioner_down_is_unavailable_but_bad_input_is_still_named() {
    let mut env = start(false).await;
    let status = env
        .create(create_request("ok", api::TestClusterSpec::default()))
        .await
        .expect_err("no provisioner");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = env
        .create(create_request(
            "ok",
            api::TestClusterSpec {
                nodes: Some(0),
                ..Default::default()
            },
        ))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(env.count().await, (0, 0));

    // logview is down too: its proxy says so (for a cluster that exists: the broker answers
    // NOT_FOUND for others itself).
    env.clusters()
        .create(
            &PostParams::default(),
            &TestClusterGKE::new("ok", Default::default()),
        )
        .await
        .expect("created with kubectl's rights");
    let status = LogServiceClient::new(env.channel.clone())
        .stream_logs(api::StreamLogsRequest {
            namespace: NAMESPACE.to_owned(),
            name: "ok".to_owned(),
            follow: true,
        })
        .await
        .expect_err("no logview");
    assert_eq!(status.code(), Code::Unavailable);
}

async fn next_phase(
    stream: &mut tonic::Streaming<api::WatchTestClusterResponse>,
) -> Option<(api::Phase, bool)> {
    let message = tokio::time::timeout(TIMEOUT, stream.message())
        .await
        .expect("watch stalled")
        .expect("watch error")?;
    let phase = message
        .test_cluster
        .and_then(|tc| tc.status)
        .map_or(api::Phase::Unspecified, |status| status.phase());
    Some((phase, message.deleted))
}

/// Asserts that the next snapshots on `stream` are `expected`: (phase, deleted) each.
async fn expect_snapshots(
    stream: &mut tonic::Streaming<api::WatchTestClusterResponse>,
    expected: &[(api::Phase, bool)],
) {
    for (at, &snapshot) in expected.iter().enumerate() {
        assert_eq!(next_phase(stream).await, Some(snapshot), "snapshot {at}");
    }
}

#[tokio::test]
async fn watch_streams_every_change_and_ends_after_a_terminal_phase() {
    let mut env = start(true).await;
    let created = env
        .create(create_request("watched", api::TestClusterSpec::default()))
        .await
        .expect("created");
    // Changes made before the watch starts are replayed from the version create returned.
    env.set_phase("watched", "Pending").await;
    env.set_phase("watched", "Provisioning").await;
    let mut stream = env
        .watch("watched", created.resource_version)
        .await
        .expect("watch");
    expect_snapshots(
        &mut stream,
        &[
            (api::Phase::Pending, false),
            (api::Phase::Provisioning, false),
        ],
    )
    .await;
    for phase in ["Ready", "Running", "Failed"] {
        env.set_phase("watched", phase).await;
    }
    expect_snapshots(
        &mut stream,
        &[
            (api::Phase::Ready, false),
            (api::Phase::Running, false),
            (api::Phase::Failed, false),
        ],
    )
    .await;
    assert_eq!(
        next_phase(&mut stream).await,
        None,
        "ends after a terminal phase"
    );

    // Without a version: the current state first; a terminal one ends the stream at once.
    let mut stream = env.watch("watched", String::new()).await.expect("watch");
    expect_snapshots(&mut stream, &[(api::Phase::Failed, false)]).await;
    assert_eq!(next_phase(&mut stream).await, None);

    let missing = env
        .watch("nope", String::new())
        .await
        .expect_err("not found");
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn watch_ends_when_the_object_is_deleted() {
    let mut env = start(true).await;
    env.create(create_request("doomed", api::TestClusterSpec::default()))
        .await
        .expect("created");
    let mut stream = env.watch("doomed", String::new()).await.expect("watch");
    expect_snapshots(&mut stream, &[(api::Phase::Unspecified, false)]).await;
    env.delete("doomed").await.expect("delete");
    expect_snapshots(&mut stream, &[(api::Phase::Unspecified, true)]).await;
    assert_eq!(next_phase(&mut stream).await, None);
}

fn with_manifest(name: &str) -> api::CreateTestClusterRequest {
    let mut request = create_request(name, job(Some("busybox"), &["true"]));
    request.init_manifest = Some("kind: Namespace\n".to_owned());
    request
}

#[tokio::test]
async fn a_failed_create_leaves_no_config_map_and_takes_over_none() {
    let mut env = start(true).await;
    // The object's name is taken (by kubectl, say): the ConfigMap, created first, is removed again.
    env.clusters()
        .create(
            &PostParams::default(),
            &TestClusterGKE::new("taken", Default::default()),
        )
        .await
        .expect("object");
    let status = env.create(with_manifest("taken")).await.expect_err("taken");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(env.count().await, (1, 0), "no ConfigMap left behind");

    // Someone else's ConfigMap of that name is neither taken over nor deleted, and no object is
    // created.
    let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), NAMESPACE);
    let mut theirs = ConfigMap::default();
    theirs.metadata.name = Some("mine-user".to_owned());
    config_maps
        .create(&PostParams::default(), &theirs)
        .await
        .expect("ConfigMap");
    let status = env.create(with_manifest("mine")).await.expect_err("taken");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let theirs = config_maps.get("mine-user").await.expect("still there");
    assert_eq!(theirs.metadata.owner_references, None);
    assert_eq!(env.count().await, (1, 1));

    // With a free name, the ConfigMap ends up owned by the object.
    let created = env.create(with_manifest("free")).await.expect("created");
    let config_map = config_maps.get("free-user").await.expect("ConfigMap");
    let owners = config_map.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        (owners[0].uid.as_str(), owners[0].name.as_str()),
        (created.uid.as_str(), "free")
    );
}

/// The field violations of an INVALID_ARGUMENT answer.
fn invalid_fields<T: std::fmt::Debug>(result: Result<T, Status>) -> Vec<String> {
    let status = result.expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    field_violations(&status)
        .into_iter()
        .map(|violation| violation.field)
        .collect()
}

#[tokio::test]
async fn every_call_checks_the_names_it_puts_into_urls() {
    let mut env = start(true).await;
    env.create(create_request("x", api::TestClusterSpec::default()))
        .await
        .expect("created");
    let logs = LogServiceClient::new(env.channel.clone());
    let bad = [
        (NAMESPACE, "x?dryRun=All", "name"),
        (NAMESPACE, "x/status", "name"),
        (NAMESPACE, "X", "name"),
        (NAMESPACE, "", "name"),
        ("test-clusters/x", "x", "namespace"),
        ("a.b", "x", "namespace"),
    ];
    for (namespace, name, field) in bad {
        let expected = vec![field.to_owned()];
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        let get = api::GetTestClusterRequest {
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let fields = invalid_fields(env.broker.get_test_cluster(get).await);
        assert_eq!(fields, expected, "get {namespace}/{name}");
        let watch = api::WatchTestClusterRequest {
            namespace: namespace.clone(),
            name: name.clone(),
            resource_version: String::new(),
        };
        let fields = invalid_fields(env.broker.watch_test_cluster(watch).await);
        assert_eq!(fields, expected, "watch {namespace}/{name}");
        let delete = api::DeleteTestClusterRequest {
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let fields = invalid_fields(env.broker.delete_test_cluster(delete).await);
        assert_eq!(fields, expected, "delete {namespace}/{name}");
        let stream = api::StreamLogsRequest {
            namespace: namespace.clone(),
            name: name.clone(),
            follow: true,
        };
        // Refused before logview (down here) is asked.
        let fields = invalid_fields(logs.clone().stream_logs(stream).await);
        assert_eq!(fields, expected, "logs {namespace}/{name}");
    }
    let list = api::ListTestClustersRequest {
        namespace: "x?watch=true".to_owned(),
        ..Default::default()
    };
    let fields = invalid_fields(env.broker.list_test_clusters(list).await);
    assert_eq!(fields, vec!["namespace".to_owned()]);
    // None of it touched the object.
    let object = env.get("x").await.expect("still there");
    assert_eq!(object.name, "x");
    assert_eq!(env.count().await, (1, 0));
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_unavailable_and_returns() {
    let mut env = start_with(true, true).await;
    env.create(create_request("idle", api::TestClusterSpec::default()))
        .await
        .expect("created");
    // A cluster without a job stays Ready until deleted: its watch would never end by itself.
    env.set_phase("idle", "Ready").await;
    let mut watch = env.watch("idle", String::new()).await.expect("watch");
    expect_snapshots(&mut watch, &[(api::Phase::Ready, false)]).await;
    let mut logs = LogServiceClient::new(env.channel.clone())
        .stream_logs(api::StreamLogsRequest {
            namespace: NAMESPACE.to_owned(),
            name: "idle".to_owned(),
            follow: true,
        })
        .await
        .expect("logs through the broker")
        .into_inner();
    let line = tokio::time::timeout(TIMEOUT, logs.message())
        .await
        .expect("a line")
        .expect("log stream")
        .expect("not ended");
    assert!(matches!(
        line.event,
        Some(api::stream_logs_response::Event::Line(_))
    ));

    env.stop.cancel();
    let bound = Duration::from_secs(10);
    for (what, result) in [
        (
            "watch",
            tokio::time::timeout(bound, watch.message())
                .await
                .map(|r| r.map(|_| ())),
        ),
        (
            "logs",
            tokio::time::timeout(bound, logs.message())
                .await
                .map(|r| r.map(|_| ())),
        ),
    ] {
        let status = result
            .unwrap_or_else(|_| panic!("{what} still open after shutdown"))
            .expect_err("ends with an error");
        assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
        assert_eq!(
            status.message(),
            testcluster_service::grpc::SHUTTING_DOWN,
            "{what}"
        );
    }
    let served = env.served.take().expect("running");
    tokio::time::timeout(bound, served)
        .await
        .expect("run returns once its streams ended")
        .expect("task")
        .expect("served");
}

#[tokio::test]
async fn a_watch_from_a_version_older_than_the_window_starts_from_the_current_state() {
    // The broker keeps the last 2 changes: three after the create push it out of the window, as
    // etcd compaction pushes a version out of the API server's history.
    let mut env = start_full(true, false, 2).await;
    let created = env
        .create(create_request("old", api::TestClusterSpec::default()))
        .await
        .expect("created");
    for phase in ["Pending", "Provisioning", "Ready"] {
        env.set_phase("old", phase).await;
    }
    // Once the broker has seen Ready (its informer delivers changes a moment after the writes):
    let mut current = env.watch("old", String::new()).await.expect("watch");
    while next_phase(&mut current).await != Some((api::Phase::Ready, false)) {}
    drop(current);

    let mut stream = env
        .watch("old", created.resource_version)
        .await
        .expect("watch");
    // Pending and Provisioning are lost; the current state comes first, then changes as usual.
    expect_snapshots(&mut stream, &[(api::Phase::Ready, false)]).await;
    env.set_phase("old", "Running").await;
    env.set_phase("old", "Error").await;
    expect_snapshots(
        &mut stream,
        &[(api::Phase::Running, false), (api::Phase::Error, false)],
    )
    .await;
    assert_eq!(next_phase(&mut stream).await, None);
}

/// A `TestClusterGKE` created straight through the Kubernetes API (as with kubectl), with a
/// description of `description_bytes`.
async fn create_directly(env: &Env, name: &str, description_bytes: usize) -> TestClusterGKE {
    let mut object = TestClusterGKE::new(name, Default::default());
    if description_bytes > 0 {
        object.metadata.annotations = Some(
            [(
                "ci.cilium.io/cluster-description".to_owned(),
                "d".repeat(description_bytes),
            )]
            .into(),
        );
    }
    env.clusters()
        .create(&PostParams::default(), &object)
        .await
        .expect("created")
}

#[tokio::test]
async fn five_hundred_watches_on_fifty_clusters_cost_one_api_server_watch() {
    let env = start(true).await;
    let counters = env.sim.api().counters();
    let names: Vec<String> = (0..50).map(|i| format!("w{i:02}")).collect();
    let mut last = None;
    for name in &names {
        last = Some(create_directly(&env, name, 0).await);
    }
    let last = last.expect("created");
    // Once the broker's informer has delivered the last create (and so all before it), no stream
    // misses its cluster in the cache.
    let mut client = env.broker.clone();
    client
        .watch_test_cluster(api::WatchTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: last.name_any(),
            resource_version: last.metadata.resource_version.clone().expect("version"),
        })
        .await
        .expect("watch");
    // Ten connections: a server may cap the streams of one HTTP/2 connection (often at 200).
    let mut channels = Vec::new();
    for _ in 0..10 {
        let channel = Channel::from_shared(env.endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        channels.push(channel);
    }
    let mut streams = Vec::new();
    for (at, name) in names.iter().cycle().take(500).enumerate() {
        let mut client = TestClusterServiceClient::new(channels[at % channels.len()].clone());
        let request = api::WatchTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: name.clone(),
            resource_version: String::new(),
        };
        let stream = client
            .watch_test_cluster(request)
            .await
            .expect("watch")
            .into_inner();
        streams.push((name.clone(), stream));
    }
    // Every stream starts with its cluster's current state...
    for (_, stream) in &mut streams {
        expect_snapshots(stream, &[(api::Phase::Unspecified, false)]).await;
    }
    // ...and gets each change of its own cluster, and only those.
    for name in &names {
        env.set_phase(name, "Ready").await;
    }
    for (name, stream) in &mut streams {
        let message = tokio::time::timeout(TIMEOUT, stream.message())
            .await
            .expect("watch stalled")
            .expect("watch error")
            .expect("open");
        let cluster = message.test_cluster.expect("snapshot");
        assert_eq!(&cluster.name, name);
        assert_eq!(cluster.status.map(|s| s.phase()), Some(api::Phase::Ready));
    }
    for name in names.iter().take(10) {
        env.set_phase(name, "Succeeded").await;
    }
    for (name, stream) in streams.iter_mut().take(10) {
        expect_snapshots(stream, &[(api::Phase::Succeeded, false)]).await;
        assert_eq!(
            next_phase(stream).await,
            None,
            "{name} ends after Succeeded"
        );
    }

    // One watch and one list on the API server for all of it; the streams asked nothing else.
    assert_eq!(
        counters.get("watch", "testclustersgke"),
        1,
        "{:?}",
        counters.snapshot()
    );
    assert_eq!(
        counters.get("list", "testclustersgke"),
        1,
        "{:?}",
        counters.snapshot()
    );
    assert_eq!(
        counters.get("get", "testclustersgke"),
        0,
        "{:?}",
        counters.snapshot()
    );
}

#[tokio::test]
async fn a_list_of_large_objects_pages_under_the_message_limit() {
    let mut env = start(true).await;
    // 200 clusters with 100 KB descriptions: 20 MB in all, five times gRPC's 4 MiB limit.
    let mut last = None;
    for i in 0..200 {
        last = Some(create_directly(&env, &format!("big-{i:03}"), 100 * 1024).await);
    }
    let last = last.expect("created");
    // Watching the last one from its version returns once the broker's informer has delivered
    // it, and so every object created before it.
    env.watch(
        &last.name_any(),
        last.metadata.resource_version.clone().expect("version"),
    )
    .await
    .expect("watch");

    let mut names = std::collections::BTreeSet::new();
    let mut pages = 0;
    let mut request = api::ListTestClustersRequest {
        namespace: NAMESPACE.to_owned(),
        ..Default::default()
    };
    loop {
        let page = env
            .broker
            .list_test_clusters(request.clone())
            .await
            .expect("a page within the client's 4 MiB limit")
            .into_inner();
        pages += 1;
        let bytes = prost::Message::encoded_len(&page);
        assert!(bytes < 4 * 1024 * 1024, "page {pages}: {bytes} bytes");
        for cluster in &page.test_clusters {
            assert!(names.insert(cluster.name.clone()), "{} twice", cluster.name);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(names.len(), 200);
    assert!(pages >= 10, "{pages} pages of at most 2 MiB");
}

#[tokio::test]
async fn reads_right_after_a_write_see_it_and_bad_versions_are_refused() {
    let mut env = start(true).await;
    // Created behind the broker's back (kubectl, another replica): its informer may not have it
    // yet, but Get and Watch still find it rather than answering NOT_FOUND.
    let object = create_directly(&env, "fresh", 0).await;
    let got = env.get("fresh").await.expect("found");
    assert_eq!(Some(got.uid), object.metadata.uid.clone());
    let version = object.metadata.resource_version.clone().expect("version");
    let mut stream = env.watch("fresh", version.clone()).await.expect("watch");
    // The client has that version: the next message is the next change.
    env.set_phase("fresh", "Pending").await;
    expect_snapshots(&mut stream, &[(api::Phase::Pending, false)]).await;

    // A version the API server never issued is refused, naming the field, within a bound.
    let started = std::time::Instant::now();
    let future = (version.parse::<u64>().expect("integer") + 1_000_000).to_string();
    assert_eq!(
        invalid_fields(env.watch("fresh", future).await),
        ["resource_version"]
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        invalid_fields(env.watch("fresh", "not-a-version".to_owned()).await),
        ["resource_version"]
    );

    // Deleted through the broker: gone for the next read at once.
    let created = env
        .create(create_request("short", api::TestClusterSpec::default()))
        .await
        .expect("created");
    assert_eq!(env.get("short").await.expect("found").uid, created.uid);
    env.delete("short").await.expect("deleted");
    let missing = env.get("short").await.expect_err("gone");
    assert_eq!(missing.code(), Code::NotFound);
}
