//! logview against an in-process simulator over real HTTP, called over real gRPC. The tests play
//! the runner's part themselves (the Job `<name>-runner` as docs/lifecycle.md describes it, and
//! the outcome in status), since services never depend on each other.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::conditions;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use testcluster_api::v1::log_service_client::LogServiceClient;
use testcluster_api::v1::stream_logs_response::Event;
use testcluster_api::v1::{Container, FinalStatus, Phase, StreamLogsRequest, StreamLogsResponse};
use testcluster_resources::{TestClusterGKE, outcome};
use testcluster_sim::{SimConfig, Simulator};
use testcluster_testkit::{wait_deleted, wait_for, within};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// A TCP proxy in front of the simulator's API server whose connections the test can cut, as
/// an API server restart or a load balancer reset would.
struct CuttableProxy {
    url: String,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(target: std::net::SocketAddr) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let open = connections.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().expect("lock").push(task.abort_handle());
            }
        });
        CuttableProxy {
            url,
            connections,
            accepting,
        }
    }

    /// Closes every connection open now; new ones are served as before.
    fn cut(&self) -> usize {
        let open: Vec<_> = self.connections.lock().expect("lock").drain(..).collect();
        for connection in &open {
            connection.abort();
        }
        open.len()
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

/// A simulator with the CRD, a namespace, and logview serving on a free port.
struct World {
    sim: Simulator,
    /// Between logview and the API server, when the test asked for one.
    proxy: Option<CuttableProxy>,
    client: Client,
    namespace: String,
    /// logview's gRPC address.
    url: String,
    logs: LogServiceClient<Channel>,
    stop: CancellationToken,
}

impl World {
    async fn start(namespace: &str) -> World {
        World::start_with(namespace, false, testcluster_logview::Settings::default()).await
    }

    /// With `proxied`, logview reaches the API server through a [`CuttableProxy`].
    async fn start_with(
        namespace: &str,
        proxied: bool,
        settings: testcluster_logview::Settings,
    ) -> World {
        testcluster_testkit::init();
        // The proxied client reaches the API server's plain HTTP port through a cuttable proxy.
        let sim = Simulator::start(SimConfig {
            plain_http: proxied,
            ..SimConfig::default()
        })
        .await
        .expect("simulator");
        let client = sim.api().client().await.expect("client");
        testcluster_testkit::install_crd(&client, &testcluster_resources::crd::crd()).await;
        testcluster_testkit::create_namespace(&client, namespace).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let stop = CancellationToken::new();
        let (logview_client, proxy) = if proxied {
            let target = sim
                .api()
                .http_url()
                .expect("plain HTTP is on")
                .trim_start_matches("http://")
                .parse()
                .expect("address");
            let proxy = CuttableProxy::start(target).await;
            let config = kube::Config::new(proxy.url.parse().expect("url"));
            (Client::try_from(config).expect("client"), Some(proxy))
        } else {
            (client.clone(), None)
        };
        tokio::spawn(testcluster_logview::run(
            logview_client,
            listener,
            settings,
            testcluster_service::metrics::Metrics::new(),
            stop.clone(),
        ));
        let logs = LogServiceClient::connect(url.clone())
            .await
            .expect("connect");
        World {
            sim,
            proxy,
            client,
            namespace: namespace.to_owned(),
            url,
            logs,
            stop,
        }
    }

    fn resources(&self) -> Api<TestClusterGKE> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A TestClusterGKE in phase Running, as after the runner started its job.
    async fn running_test_cluster(&self, name: &str) {
        let resource: TestClusterGKE = serde_json::from_value(json!({
            "apiVersion": "clusters.ci.cilium.io/v1alpha2",
            "kind": "TestClusterGKE",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"jobSpec": {"runner": {"image": "busybox", "command": ["true"]}}},
        }))
        .expect("resource");
        self.resources()
            .create(&PostParams::default(), &resource)
            .await
            .expect("create");
        self.apply_status(
            name,
            "testcluster-runner",
            json!({"phase": "Running", "job": {"name": format!("{name}-runner")}}),
        )
        .await;
    }

    async fn apply_status(&self, name: &str, manager: &str, status: serde_json::Value) {
        let patch = json!({
            "apiVersion": "clusters.ci.cilium.io/v1alpha2",
            "kind": "TestClusterGKE",
            "metadata": {"name": name},
            "status": status,
        });
        self.resources()
            .patch_status(
                name,
                &PatchParams::apply(manager).force(),
                &Patch::Apply(&patch),
            )
            .await
            .expect("status");
    }

    /// The Job `<name>-runner` as the runner creates it: `init` (when given), then `runner`.
    async fn create_job(
        &self,
        name: &str,
        init: Option<serde_json::Value>,
        image: &str,
        command: serde_json::Value,
    ) {
        self.create_job_with_deadline(name, init, image, command, 120)
            .await;
    }

    async fn create_job_with_deadline(
        &self,
        name: &str,
        init: Option<serde_json::Value>,
        image: &str,
        command: serde_json::Value,
        deadline_seconds: i64,
    ) {
        let mut pod_spec = json!({
            "restartPolicy": "Never",
            "containers": [{"name": "runner", "image": image, "command": command}],
        });
        if let Some(init) = init {
            pod_spec["initContainers"] =
                json!([{"name": "init", "image": "busybox", "command": init}]);
        }
        self.create_job_with_pod_spec(name, pod_spec, deadline_seconds)
            .await;
    }

    async fn create_job_with_pod_spec(
        &self,
        name: &str,
        pod_spec: serde_json::Value,
        deadline_seconds: i64,
    ) {
        let labels = json!({"clusters.ci.cilium.io/test-cluster": name});
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-runner"), "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": deadline_seconds,
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        }))
        .expect("job");
        self.jobs()
            .create(&PostParams::default(), &job)
            .await
            .expect("create job");
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Follows the logs of `name` in a task: its lines and final status.
    fn follow(
        &self,
        name: &str,
    ) -> tokio::task::JoinHandle<(Vec<(Container, String)>, FinalStatus)> {
        let (logs, request) = (self.logs.clone(), self.request(name, true));
        tokio::spawn(async move { collect(logs, request).await })
    }

    /// Plays the runner once the Job of `name` has ended: records in status what
    /// `testcluster_resources::outcome` says of the Job and its pod, as the runner does.
    async fn play_runner(&self, name: &str) -> outcome::Outcome {
        let job_name = format!("{name}-runner");
        let ended = |job: Option<&Job>| job.is_some_and(|job| outcome::of(job, None).is_some());
        let job = wait_for(&self.jobs(), &job_name, ended).await;
        let pods = self
            .pods()
            .list(&ListParams::default().labels(&format!("job-name={job_name}")))
            .await
            .expect("pods");
        let recorded = outcome::of(&job, pods.items.first()).expect("an outcome");
        let phase = if recorded.succeeded {
            "Succeeded"
        } else {
            "Failed"
        };
        self.apply_status(
            name,
            "testcluster-runner",
            json!({"phase": phase, "job": {"name": job_name, "exitCode": recorded.exit_code,
                   "reason": recorded.reason, "message": recorded.message}}),
        )
        .await;
        recorded
    }

    fn request(&self, name: &str, follow: bool) -> StreamLogsRequest {
        StreamLogsRequest {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            follow,
        }
    }

    /// Every line (container, text) and the final status of one call.
    async fn collect(&self, request: StreamLogsRequest) -> (Vec<(Container, String)>, FinalStatus) {
        collect(self.logs.clone(), request).await
    }
}

/// Every line (container, text) and the final status of one call.
async fn collect(
    logs: LogServiceClient<Channel>,
    request: StreamLogsRequest,
) -> (Vec<(Container, String)>, FinalStatus) {
    collect_telling(logs, request, |_| {}).await
}

/// [`collect`], telling `seen` each line's text as it comes.
async fn collect_telling(
    mut logs: LogServiceClient<Channel>,
    request: StreamLogsRequest,
    seen: impl FnMut(&str),
) -> (Vec<(Container, String)>, FinalStatus) {
    let stream = logs.stream_logs(request).await.expect("call").into_inner();
    read_to_end(stream, seen).await
}

/// Every line (container, text) of an open stream and its final status.
async fn read_to_end(
    mut stream: tonic::Streaming<StreamLogsResponse>,
    mut seen: impl FnMut(&str),
) -> (Vec<(Container, String)>, FinalStatus) {
    let mut lines = Vec::new();
    let final_status = within("the stream to end", async {
        let mut final_status = None;
        while let Some(message) = stream.message().await.expect("message") {
            match message.event.expect("event") {
                Event::Line(line) => {
                    assert!(final_status.is_none(), "a line after the final status");
                    assert!(line.time.is_some(), "line without time: {line:?}");
                    seen(&line.text);
                    lines.push((line.container(), line.text));
                }
                Event::FinalStatus(status) => {
                    assert!(final_status.replace(status).is_none(), "two final statuses");
                }
            }
        }
        final_status.expect("a final status")
    })
    .await;
    (lines, final_status)
}

/// A file whose creation lets a test job go on (`while [ ! -e FILE ]; do sleep 0.05; done`).
struct Marker(std::path::PathBuf);

impl Marker {
    fn new(name: &str) -> Marker {
        let path = std::env::temp_dir().join(format!("logview-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Marker(path)
    }

    /// Shell that waits for the marker.
    fn wait(&self) -> String {
        format!("while [ ! -e {} ]; do sleep 0.05; done", self.0.display())
    }

    fn set(&self) {
        std::fs::write(&self.0, b"go").expect("marker");
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn lines(expected: &[(Container, &str)]) -> Vec<(Container, String)> {
    expected.iter().map(|(c, t)| (*c, t.to_string())).collect()
}

#[tokio::test]
async fn init_then_runner_lines_stream_live_and_end_with_the_outcome() {
    let world = World::start("streams").await;
    world.running_test_cluster("t1").await;
    // The call starts before the Job exists: logview waits for the pod.
    let call = {
        let logs = world.logs.clone();
        let request = world.request("t1", true);
        tokio::spawn(async move { logs.clone().stream_logs(request).await })
    };
    world
        .create_job(
            "t1",
            Some(json!(["sh", "-c", "echo init-one; echo init-two"])),
            "busybox",
            json!(["sh", "-c", "echo run-one; echo run-two"]),
        )
        .await;
    // Play the runner: record the outcome once the Job is complete.
    wait_for(&world.jobs(), "t1-runner", conditions::is_job_completed()).await;
    world
        .apply_status(
            "t1",
            "testcluster-runner",
            json!({"phase": "Succeeded", "job": {"name": "t1-runner", "exitCode": 0, "reason": "Completed",
                   "message": "container \"runner\" exited with code 0"}}),
        )
        .await;

    let mut stream = within("the call", call)
        .await
        .expect("join")
        .expect("call")
        .into_inner();
    let mut got = Vec::new();
    let mut final_status = None;
    while let Some(message) = within("a message", stream.message())
        .await
        .expect("message")
    {
        match message.event.expect("event") {
            Event::Line(line) => got.push((line.container(), line.text)),
            Event::FinalStatus(status) => final_status = Some(status),
        }
    }
    let expected = lines(&[
        (Container::Init, "init-one"),
        (Container::Init, "init-two"),
        (Container::Runner, "run-one"),
        (Container::Runner, "run-two"),
    ]);
    assert_eq!(got, expected);
    let final_status = final_status.expect("final status");
    assert_eq!(final_status.phase(), Phase::Succeeded);
    assert_eq!(final_status.exit_code, Some(0));
    assert_eq!(final_status.reason, "Completed");

    // Without follow, the same, at once.
    let (got, final_status) = world.collect(world.request("t1", false)).await;
    assert_eq!(got, expected);
    assert_eq!(
        (final_status.phase(), final_status.exit_code),
        (Phase::Succeeded, Some(0))
    );
}

#[tokio::test]
async fn an_init_container_failure_streams_its_log_and_ends_with_the_runners_words() {
    let world = World::start("init-fails").await;
    world.running_test_cluster("t2").await;
    world
        .create_job(
            "t2",
            Some(json!(["sh", "-c", "echo init-broke; exit 1"])),
            "busybox",
            json!(["sh", "-c", "echo never"]),
        )
        .await;
    let collected = world.follow("t2");
    let recorded = world.play_runner("t2").await;
    let (got, final_status) = within("the stream", collected).await.expect("join");
    assert_eq!(got, lines(&[(Container::Init, "init-broke")]));
    assert_eq!(final_status.phase(), Phase::Failed);
    assert_eq!(final_status.exit_code, None);
    assert_eq!(final_status.reason, "Error");
    assert_eq!(
        final_status.message,
        "init container \"init\" failed with exit code 1"
    );
    // What the runner recorded, word for word.
    assert_eq!(
        (
            final_status.exit_code,
            final_status.reason,
            final_status.message
        ),
        (recorded.exit_code, recorded.reason, recorded.message)
    );
}

/// Waits until the job's pod shows its `runner` container waiting with one of `reasons`.
async fn until_runner_waits(world: &World, name: &str, reasons: &[&str]) -> String {
    let pods: Api<Pod> = Api::namespaced(world.client.clone(), &world.namespace);
    let config = watcher::Config::default().labels(&format!("job-name={name}-runner"));
    let mut events = watcher::watcher(pods, config).applied_objects().boxed();
    within("the runner container to be blocked", async {
        while let Some(pod) = events.try_next().await.expect("watch") {
            let waiting = pod
                .status
                .and_then(|s| s.container_statuses)
                .into_iter()
                .flatten()
                .filter(|c| c.name == "runner")
                .find_map(|c| c.state.and_then(|s| s.waiting).and_then(|w| w.reason));
            if let Some(reason) = waiting.filter(|r| reasons.contains(&r.as_str())) {
                return reason;
            }
        }
        panic!("the pod watch ended");
    })
    .await
}

#[tokio::test]
async fn an_unpullable_image_waits_for_the_run_to_end_then_reports_the_runners_record() {
    let world = World::start("pull-fails").await;
    world.running_test_cluster("t3").await;
    let collected = {
        let request = world.request("t3", true);
        let logs = world.logs.clone();
        tokio::spawn(async move { collect(logs, request).await })
    };
    world
        .create_job("t3", None, "registry.invalid/x", json!(["true"]))
        .await;
    until_runner_waits(&world, "t3", &["ErrImagePull", "ImagePullBackOff"]).await;
    // The kubelet keeps retrying and the runner waits its start timeout: the stream goes on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !collected.is_finished(),
        "the stream ended while the run was still Running"
    );

    // Play the runner giving up after its start timeout.
    let message = "container \"runner\" never started: ErrImagePull: pull access denied for \
                   registry.invalid/x (gave up after 300s)";
    world
        .apply_status(
            "t3",
            "testcluster-runner",
            json!({"phase": "Failed", "job": {"name": "t3-runner", "reason": "ErrImagePull",
                   "message": message}}),
        )
        .await;
    let (got, final_status) = within("the stream", collected).await.expect("join");
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(final_status.phase(), Phase::Failed);
    assert_eq!(final_status.reason, "ErrImagePull");
    assert_eq!(final_status.message, message);
    assert_eq!(final_status.exit_code, None);
}

#[tokio::test]
async fn a_container_that_starts_late_is_streamed() {
    let world = World::start("starts-late").await;
    world.running_test_cluster("t6").await;
    let collected = {
        let request = world.request("t6", true);
        let logs = world.logs.clone();
        tokio::spawn(async move { collect(logs, request).await })
    };
    // The runner needs a ConfigMap that does not exist yet: CreateContainerConfigError, retried.
    let pod_spec = json!({
        "restartPolicy": "Never",
        "containers": [{
            "name": "runner", "image": "busybox",
            "command": ["sh", "-c", "echo \"got $GREETING\""],
            "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "t6-config", "key": "greeting"}}}],
        }],
    });
    world.create_job_with_pod_spec("t6", pod_spec, 120).await;
    until_runner_waits(&world, "t6", &["CreateContainerConfigError"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !collected.is_finished(),
        "the stream ended on a retried error"
    );
    Api::<ConfigMap>::namespaced(world.client.clone(), &world.namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "t6-config"},
                "data": {"greeting": "hello"},
            }))
            .expect("config map"),
        )
        .await
        .expect("create config map");
    wait_for(&world.jobs(), "t6-runner", conditions::is_job_completed()).await;
    world
        .apply_status(
            "t6",
            "testcluster-runner",
            json!({"phase": "Succeeded", "job": {"name": "t6-runner", "exitCode": 0, "reason": "Completed"}}),
        )
        .await;
    let (got, final_status) = within("the stream", collected).await.expect("join");
    assert_eq!(got, lines(&[(Container::Runner, "got hello")]));
    assert_eq!(
        (final_status.phase(), final_status.exit_code),
        (Phase::Succeeded, Some(0))
    );
}

#[tokio::test]
async fn a_log_stream_cut_while_the_container_runs_is_resumed_without_loss_or_repeats() {
    let world = World::start_with("cut", true, testcluster_logview::Settings::default()).await;
    world.running_test_cluster("t7").await;
    let mut stream = world
        .logs
        .clone()
        .stream_logs(world.request("t7", true))
        .await
        .expect("call")
        .into_inner();
    // The marker file lets the test decide when the job goes on writing.
    let marker = std::env::temp_dir().join(format!("logview-cut-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let script = format!(
        "echo one; echo two; while [ ! -e {m} ]; do sleep 0.05; done; echo three; echo four",
        m = marker.display()
    );
    world
        .create_job("t7", None, "busybox", json!(["sh", "-c", script]))
        .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let message = within("a line", stream.message())
            .await
            .expect("message")
            .expect("not the end yet");
        if let Some(Event::Line(line)) = message.event {
            got.push(line.text);
        }
    }
    let opened = world.sim.api().counters().get("get", "pods/log");
    let proxy = world.proxy.as_ref().expect("proxy");
    assert!(proxy.cut() > 0, "connections to cut");
    // Lines written while the stream is down must come through the reopened one.
    std::fs::write(&marker, b"go").expect("marker");
    wait_for(&world.jobs(), "t7-runner", conditions::is_job_completed()).await;
    world
        .apply_status(
            "t7",
            "testcluster-runner",
            json!({"phase": "Succeeded", "job": {"name": "t7-runner", "exitCode": 0, "reason": "Completed"}}),
        )
        .await;
    let mut final_status = None;
    while let Some(message) = within("a message", stream.message())
        .await
        .expect("message")
    {
        match message.event.expect("event") {
            Event::Line(line) => got.push(line.text),
            Event::FinalStatus(status) => final_status = Some(status),
        }
    }
    let _ = std::fs::remove_file(&marker);
    assert_eq!(got, ["one", "two", "three", "four"]);
    assert!(
        world.sim.api().counters().get("get", "pods/log") > opened,
        "the log was reopened"
    );
    let final_status = final_status.expect("final status");
    assert_eq!(final_status.phase(), Phase::Succeeded);
}

#[tokio::test]
async fn a_start_error_is_reported_with_its_exit_code() {
    let world = World::start("start-fails").await;
    world.running_test_cluster("t4").await;
    world
        .create_job("t4", None, "busybox", json!(["/no/such/test-gke.sh"]))
        .await;
    let collected = world.follow("t4");
    world.play_runner("t4").await;
    let (got, final_status) = within("the stream", collected).await.expect("join");
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(final_status.reason, "StartError");
    assert_eq!(final_status.exit_code, Some(128));
    assert!(
        final_status.message.contains("/no/such/test-gke.sh"),
        "{}",
        final_status.message
    );
}

#[tokio::test]
async fn bad_requests_and_missing_clusters_are_refused_plainly() {
    let world = World::start("refusals").await;
    let missing = world
        .logs
        .clone()
        .stream_logs(world.request("nope", true))
        .await;
    let status = missing.expect_err("not found");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "test cluster refusals/nope not found");

    let empty = StreamLogsRequest {
        namespace: String::new(),
        name: String::new(),
        follow: false,
    };
    let status = world
        .logs
        .clone()
        .stream_logs(empty)
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = testcluster_api::errors::field_violations(&status)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["namespace", "name"]);

    // Names the API server would refuse are refused here, naming the field.
    let malformed = StreamLogsRequest {
        namespace: "refusals".to_owned(),
        name: "T1/../x".to_owned(),
        follow: true,
    };
    let status = world
        .logs
        .clone()
        .stream_logs(malformed)
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let violations = testcluster_api::errors::field_violations(&status);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].field, "name");
    assert!(
        violations[0].description.contains("DNS-1123"),
        "{}",
        violations[0].description
    );

    // A test cluster without a job has nothing to stream, and says so.
    let resource: TestClusterGKE = serde_json::from_value(json!({
        "apiVersion": "clusters.ci.cilium.io/v1alpha2",
        "kind": "TestClusterGKE",
        "metadata": {"name": "nojob", "namespace": "refusals"},
        "spec": {},
    }))
    .expect("resource");
    world
        .resources()
        .create(&PostParams::default(), &resource)
        .await
        .expect("create");
    let (got, final_status) = world.collect(world.request("nojob", true)).await;
    assert!(got.is_empty());
    assert_eq!(final_status.reason, "NoJob");
}

#[tokio::test]
async fn a_pod_deleted_at_the_deadline_ends_the_stream_plainly_when_no_outcome_comes() {
    let world = World::start("deadline").await;
    world.running_test_cluster("t5").await;
    // Follow from before the pod exists, so its log is read before the deadline deletes it.
    let collected = world.follow("t5");
    world
        .create_job_with_deadline(
            "t5",
            None,
            "busybox",
            json!(["sh", "-c", "echo waiting; sleep 60"]),
            3,
        )
        .await;
    // The Job controller deletes the pod at the deadline.
    let ended = |job: Option<&Job>| job.is_some_and(|job| outcome::of(job, None).is_some());
    wait_for(&world.jobs(), "t5-runner", ended).await;
    let pods = world
        .pods()
        .list(&ListParams::default().labels("job-name=t5-runner"))
        .await
        .expect("pods");
    for pod in &pods.items {
        wait_deleted(&world.pods(), pod.metadata.name.as_deref().expect("name")).await;
    }
    assert!(!collected.is_finished(), "ended before the run did");
    // No runner records an outcome here: the run ends with the test cluster's deletion.
    world
        .resources()
        .delete("t5", &DeleteParams::default())
        .await
        .expect("delete");
    let (got, final_status) = within("the stream", collected).await.expect("join");
    assert_eq!(got, lines(&[(Container::Runner, "waiting")]));
    assert_eq!(final_status.reason, "PodDeleted", "{final_status:?}");
    assert!(
        final_status.message.contains("t5-runner-"),
        "{}",
        final_status.message
    );
}

#[tokio::test]
async fn fifty_followers_share_one_log_request_per_container_and_the_informers() {
    const FOLLOWERS: usize = 50;
    let world = World::start("fifty").await;
    world.running_test_cluster("t8").await;
    // Each container waits until every follower has its first lines, so that all follow it
    // live, together.
    let (init_go, runner_go) = (Marker::new("fifty-init"), Marker::new("fifty-runner"));
    let (ready, mut readies) = mpsc::channel(2 * FOLLOWERS);
    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|_| {
            let (logs, request, ready) =
                (world.logs.clone(), world.request("t8", true), ready.clone());
            tokio::spawn(async move {
                collect_telling(logs, request, |text| {
                    if text.ends_with("-ready") {
                        let _ = ready.try_send(text.to_owned());
                    }
                })
                .await
            })
        })
        .collect();
    world
        .create_job(
            "t8",
            Some(json!([
                "sh",
                "-c",
                format!("echo init-ready; {}; echo init-two", init_go.wait())
            ])),
            "busybox",
            json!([
                "sh",
                "-c",
                format!("echo run-ready; {}; echo run-two", runner_go.wait())
            ]),
        )
        .await;
    for marker in [&init_go, &runner_go] {
        within("every follower to be following", async {
            for _ in 0..FOLLOWERS {
                readies.recv().await.expect("a follower");
            }
        })
        .await;
        marker.set();
    }
    world.play_runner("t8").await;
    let expected = lines(&[
        (Container::Init, "init-ready"),
        (Container::Init, "init-two"),
        (Container::Runner, "run-ready"),
        (Container::Runner, "run-two"),
    ]);
    let mut statuses = Vec::new();
    for follower in followers {
        let (got, final_status) = within("a follower", follower).await.expect("join");
        assert_eq!(got, expected);
        statuses.push(final_status);
    }
    assert_eq!(statuses[0].phase(), Phase::Succeeded);
    assert_eq!(statuses[0].exit_code, Some(0));
    assert!(statuses.iter().all(|s| *s == statuses[0]), "{statuses:?}");

    let counters = world.sim.api().counters();
    let counts = counters.snapshot();
    let count = |verb: &str, resource: &str| counters.get(verb, resource);
    assert_eq!(count("get", "pods/log"), 2, "one per container: {counts:?}");
    assert_eq!(count("get", "testclustersgke"), 0, "{counts:?}");
    assert_eq!(count("watch", "testclustersgke"), 1, "{counts:?}");
    assert_eq!(count("watch", "pods"), 1, "{counts:?}");
}

#[tokio::test]
async fn a_slow_follower_stalls_no_one_and_still_gets_every_line_once_in_order() {
    const LINES: usize = 2000;
    let settings = testcluster_logview::Settings {
        log_buffer_bytes: 16 * 1024,
        ..testcluster_logview::Settings::default()
    };
    let world = World::start_with("slow", false, settings).await;
    world.running_test_cluster("t9").await;
    // A small HTTP/2 window, so that what the slow follower leaves unread waits in logview.
    let channel = Endpoint::from_shared(world.url.clone())
        .expect("url")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    let slow = LogServiceClient::new(channel)
        .stream_logs(world.request("t9", true))
        .await
        .expect("call")
        .into_inner();
    let fast = world.follow("t9");
    // About 200 bytes a line: the log is many times the buffer and the slow follower's window.
    // Written in bursts well under the buffer, so that a follower that reads keeps up.
    let pad = "x".repeat(190);
    let script = format!(
        "i=0; while [ $i -lt {LINES} ]; do echo \"line-$i {pad}\"; i=$((i+1)); \
         if [ $((i % 20)) -eq 0 ]; then sleep 0.01; fi; done"
    );
    world
        .create_job("t9", None, "busybox", json!(["sh", "-c", script]))
        .await;
    world.play_runner("t9").await;
    let expected: Vec<(Container, String)> = (0..LINES)
        .map(|i| (Container::Runner, format!("line-{i} {pad}")))
        .collect();
    // The fast follower gets to the end while the slow one has read nothing.
    let (got, final_status) = within("the fast follower", fast).await.expect("join");
    assert_eq!(got.len(), LINES);
    assert!(got == expected, "the fast follower's lines differ");
    assert_eq!(final_status.phase(), Phase::Succeeded);

    let (slow_got, slow_status) = read_to_end(slow, |_| {}).await;
    let first_difference = slow_got.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        (slow_got.len(), first_difference),
        (LINES, None),
        "the slow follower's lines, in order, without duplicates"
    );
    assert_eq!(slow_status, final_status);
    // The shared stream, and the slow follower's own once it fell behind.
    assert_eq!(world.sim.api().counters().get("get", "pods/log"), 2);
}
