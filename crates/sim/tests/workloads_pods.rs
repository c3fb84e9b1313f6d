//! The kubelet: pods run as local processes, with the states, messages and logs Kubernetes shows.

mod common;

use std::time::{Duration, Instant};

use common::{create_namespace, start_workloads};
use futures::{AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Pod, Secret};
use kube::api::{DeleteParams, LogParams, PostParams};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use testcluster_sim::apiserver::{ApiServer, ApiServerConfig};
use testcluster_sim::workloads::Workloads;

const WAIT: Duration = Duration::from_secs(30);

struct Cluster {
    _api: ApiServer,
    _workloads: Workloads,
    client: Client,
    namespace: String,
}

impl Cluster {
    async fn start(namespace: &str) -> Cluster {
        let api = ApiServer::start(ApiServerConfig {
            name: "workloads".into(),
            ..ApiServerConfig::default()
        })
        .await
        .expect("api server");
        let workloads = start_workloads(&api, Duration::from_millis(300));
        let client = api.internal_client();
        create_namespace(&client, namespace).await;
        Cluster {
            _api: api,
            _workloads: workloads,
            client,
            namespace: namespace.to_owned(),
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create<K>(&self, object: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let object: K = serde_json::from_value(object).expect("object");
        Api::<K>::namespaced(self.client.clone(), &self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create")
    }

    async fn create_pod(&self, name: &str, spec: serde_json::Value) -> Pod {
        self.create(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}),
        )
        .await
    }

    /// Creates a pod, waits until it runs, and follows the log of its (only) container.
    async fn follow_running_pod(
        &self,
        name: &str,
        spec: serde_json::Value,
    ) -> impl Stream<Item = std::io::Result<String>> + Unpin {
        self.create_pod(name, spec).await;
        self.wait_pod(name, conditions::is_pod_running()).await;
        let params = LogParams {
            follow: true,
            ..LogParams::default()
        };
        self.pods()
            .log_stream(name, &params)
            .await
            .expect("log stream")
            .lines()
    }

    async fn wait_pod(&self, name: &str, condition: impl Condition<Pod>) -> Pod {
        tokio::time::timeout(WAIT, await_condition(self.pods(), name, condition))
            .await
            .unwrap_or_else(|_| panic!("pod {name} did not reach the state in time"))
            .expect("watch")
            .expect("pod exists")
    }
}

/// The next line of a followed log, or `None` where the log ends; panics after the time limit.
async fn next_line(
    lines: &mut (impl Stream<Item = std::io::Result<String>> + Unpin),
    what: &str,
) -> Option<String> {
    tokio::time::timeout(WAIT, lines.next())
        .await
        .unwrap_or_else(|_| panic!("{what} did not arrive in time"))
        .map(|line| line.expect("line"))
}

fn phase_is(phase: &'static str) -> impl Condition<Pod> {
    move |pod: Option<&Pod>| {
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some(phase)
    }
}

/// The first main container is waiting with this reason.
fn waiting_with(reason: &'static str) -> impl Condition<Pod> {
    move |pod: Option<&Pod>| {
        pod.and_then(main_status)
            .and_then(|c| c.state.and_then(|s| s.waiting))
            .and_then(|w| w.reason)
            .as_deref()
            == Some(reason)
    }
}

fn main_status(pod: &Pod) -> Option<ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

fn waiting(status: &ContainerStatus) -> (String, String) {
    let w = status
        .state
        .clone()
        .and_then(|s| s.waiting)
        .expect("waiting");
    (w.reason.unwrap_or_default(), w.message.unwrap_or_default())
}

fn container(name: &str, command: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "image": "busybox:1.36", "command": command})
}

#[tokio::test]
async fn a_failing_init_container_blocks_the_main_container() {
    let cluster = Cluster::start("init-fails").await;
    cluster
        .create_pod(
            "blocked",
            json!({
                "restartPolicy": "Never",
                "initContainers": [container("setup", json!(["sh", "-c", "echo preparing; echo broken >&2; exit 2"]))],
                "containers": [container("main", json!(["echo", "never runs"]))],
            }),
        )
        .await;
    let pod = cluster.wait_pod("blocked", phase_is("Failed")).await;
    let status = pod.status.expect("status");

    let init = &status.init_container_statuses.expect("init statuses")[0];
    let terminated = init
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (2, Some("Error"))
    );
    let main = &status.container_statuses.expect("statuses")[0];
    assert_eq!(waiting(main).0, "PodInitializing");
    let initialized = status
        .conditions
        .expect("conditions")
        .into_iter()
        .find(|c| c.type_ == "Initialized")
        .expect("Initialized");
    assert_eq!(initialized.status, "False");
    assert_eq!(
        initialized.reason.as_deref(),
        Some("ContainersNotInitialized")
    );
    assert_eq!(
        initialized.message.as_deref(),
        Some("containers with incomplete status: [setup]")
    );

    // The init container's log, followed to its end through the pods/log API.
    let params = LogParams {
        container: Some("setup".into()),
        follow: true,
        ..LogParams::default()
    };
    let stream = cluster
        .pods()
        .log_stream("blocked", &params)
        .await
        .expect("log stream");
    let lines: Vec<String> =
        tokio::time::timeout(WAIT, stream.lines().map(|l| l.expect("line")).collect())
            .await
            .expect("the follow ends with the container");
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["broken", "preparing"],
        "stdout and stderr: {lines:?}"
    );

    let main_log = cluster
        .pods()
        .logs(
            "blocked",
            &LogParams {
                container: Some("main".into()),
                ..LogParams::default()
            },
        )
        .await
        .expect_err("the main container never started");
    assert!(
        main_log
            .to_string()
            .contains("container \"main\" in pod \"blocked\" is waiting to start: PodInitializing"),
        "{main_log}"
    );
}

#[tokio::test]
async fn an_unpullable_image_goes_from_err_image_pull_to_image_pull_backoff() {
    let cluster = Cluster::start("image-pull").await;
    cluster
        .create_pod(
            "unpullable",
            json!({"containers": [{"name": "app", "image": "registry.invalid/team/app:1.0", "command": ["true"]}]}),
        )
        .await;
    let not_found = "rpc error: code = NotFound desc = failed to pull and unpack image \
                     \"registry.invalid/team/app:1.0\": failed to resolve reference \
                     \"registry.invalid/team/app:1.0\": registry.invalid/team/app:1.0: not found";

    let pod = cluster
        .wait_pod("unpullable", waiting_with("ErrImagePull"))
        .await;
    assert_eq!(
        waiting(&main_status(&pod).expect("status")),
        ("ErrImagePull".to_owned(), not_found.to_owned())
    );
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));

    let pod = cluster
        .wait_pod("unpullable", waiting_with("ImagePullBackOff"))
        .await;
    assert_eq!(
        waiting(&main_status(&pod).expect("status")),
        (
            "ImagePullBackOff".to_owned(),
            format!(
                "Back-off pulling image \"registry.invalid/team/app:1.0\": ErrImagePull: {not_found}"
            )
        )
    );
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
}

#[tokio::test]
async fn a_missing_executable_is_a_start_error() {
    let cluster = Cluster::start("start-error").await;
    cluster
        .create_pod(
            "no-binary",
            json!({"restartPolicy": "Never", "containers": [container("app", json!(["no-such-tool", "--flag"]))]}),
        )
        .await;
    let pod = cluster.wait_pod("no-binary", phase_is("Failed")).await;
    let terminated = main_status(&pod)
        .and_then(|c| c.state)
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(terminated.reason.as_deref(), Some("StartError"));
    assert_eq!(terminated.exit_code, 128);
    assert_eq!(
        terminated.message.as_deref(),
        Some(
            "failed to create containerd task: failed to create shim task: OCI runtime create failed: \
             runc create failed: unable to start container process: exec: \"no-such-tool\": \
             executable file not found in $PATH: unknown"
        )
    );
}

#[tokio::test]
async fn a_missing_config_map_or_secret_is_a_config_error() {
    let cluster = Cluster::start("config-error").await;
    let env_from = |kind: &str, name: &str| {
        json!({"containers": [{
            "name": "app", "image": "busybox:1.36", "command": ["true"],
            "env": [{"name": "X", "valueFrom": {kind: {"name": name, "key": "k"}}}],
        }]})
    };
    cluster
        .create_pod("no-cm", env_from("configMapKeyRef", "missing-cm"))
        .await;
    cluster
        .create_pod("no-secret", env_from("secretKeyRef", "missing-secret"))
        .await;
    for (pod, message) in [
        ("no-cm", "configmap \"missing-cm\" not found"),
        ("no-secret", "secret \"missing-secret\" not found"),
    ] {
        let pod = cluster
            .wait_pod(pod, waiting_with("CreateContainerConfigError"))
            .await;
        assert_eq!(
            waiting(&main_status(&pod).expect("status")),
            ("CreateContainerConfigError".to_owned(), message.to_owned())
        );
        assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    }

    // Once the ConfigMap exists, the container starts.
    cluster
        .create::<ConfigMap>(json!({"metadata": {"name": "missing-cm"}, "data": {"k": "v"}}))
        .await;
    cluster
        .wait_pod("no-cm", conditions::is_pod_running())
        .await;
}

#[tokio::test]
async fn follow_streams_the_log_live() {
    let cluster = Cluster::start("follow").await;
    let mut lines = cluster
        .follow_running_pod(
            "talker",
            json!({"restartPolicy": "Never", "containers": [container("app", json!(["sh", "-c", "echo a; sleep 1; echo b"]))]}),
        )
        .await;
    assert_eq!(next_line(&mut lines, "a").await.as_deref(), Some("a"));
    let got_a = Instant::now();
    assert_eq!(next_line(&mut lines, "b").await.as_deref(), Some("b"));
    assert!(
        got_a.elapsed() >= Duration::from_millis(200),
        "b arrived with a, not live"
    );
    assert_eq!(
        next_line(&mut lines, "the end").await,
        None,
        "the stream ends when the container exits"
    );
}

#[tokio::test]
async fn env_and_volumes_reach_the_process() {
    let cluster = Cluster::start("env-volumes").await;
    cluster
        .create::<ConfigMap>(json!({"metadata": {"name": "settings"}, "data": {"greeting": "hello", "level": "debug"}}))
        .await;
    cluster
        .create::<Secret>(json!({"metadata": {"name": "creds"}, "data": {"token": "czNjcmV0"}}))
        .await;
    let script = r#"echo "env: $GREETING $POD_NAME $NS $COMBINED $S_token"
cat /etc/settings/greeting; echo
cat /credentials/auth/token; echo
stat -c %a /credentials/auth/token
echo "kubeconfig: $KUBECONFIG" | sed "s|$SIM_POD_DIR|<pod>|"
pwd | sed "s|$SIM_POD_DIR|<pod>|"
test -e /credentials/auth/token || echo "the host has no /credentials""#;
    cluster
        .create_pod(
            "configured",
            json!({
                "restartPolicy": "Never",
                "volumes": [
                    {"name": "settings", "configMap": {"name": "settings"}},
                    {"name": "creds", "secret": {"secretName": "creds", "items": [{"key": "token", "path": "auth/token", "mode": 0o400}]}},
                    {"name": "scratch", "emptyDir": {}},
                ],
                "containers": [{
                    "name": "app", "image": "busybox:1.36",
                    "command": ["sh", "-c"], "args": [script],
                    "workingDir": "/scratch/work",
                    "env": [
                        {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "COMBINED", "value": "$(GREETING)-world"},
                        {"name": "KUBECONFIG", "value": "/credentials/kubeconfig"},
                    ],
                    "envFrom": [{"prefix": "S_", "secretRef": {"name": "creds"}}],
                    "volumeMounts": [
                        {"name": "settings", "mountPath": "/etc/settings"},
                        {"name": "creds", "mountPath": "/credentials", "readOnly": true},
                        {"name": "scratch", "mountPath": "/scratch"},
                    ],
                }],
            }),
        )
        .await;
    let pod = cluster.wait_pod("configured", phase_is("Succeeded")).await;
    let log = cluster
        .pods()
        .logs(&pod.name_any(), &LogParams::default())
        .await
        .expect("log");
    assert_eq!(
        log,
        "env: hello configured env-volumes hello-world s3cret\n\
         hello\n\
         s3cret\n\
         400\n\
         kubeconfig: <pod>/credentials/kubeconfig\n\
         <pod>/scratch/work\n"
    );
}

#[tokio::test]
async fn deleting_a_pod_stops_its_process() {
    let cluster = Cluster::start("delete").await;
    let mut lines = cluster
        .follow_running_pod(
            "sleeper",
            json!({"terminationGracePeriodSeconds": 1, "containers": [container("app", json!(["sh", "-c", "echo up; sleep 30"]))]}),
        )
        .await;
    assert_eq!(next_line(&mut lines, "up").await.as_deref(), Some("up"));
    let pod = cluster.pods().get("sleeper").await.expect("pod");
    cluster
        .pods()
        .delete("sleeper", &DeleteParams::default())
        .await
        .expect("delete");
    let followed: Vec<String> = tokio::time::timeout(
        Duration::from_secs(10),
        lines.map(|l| l.unwrap_or_default()).collect(),
    )
    .await
    .expect("the follow ends when the pod is deleted");
    assert!(followed.is_empty(), "{followed:?}");
    tokio::time::timeout(
        WAIT,
        await_condition(
            cluster.pods(),
            "sleeper",
            conditions::is_deleted(&pod.uid().expect("uid")),
        ),
    )
    .await
    .expect("gone in time")
    .expect("watch");
}

#[tokio::test]
async fn a_crashing_container_backs_off_and_keeps_its_previous_log() {
    let cluster = Cluster::start("crashloop").await;
    cluster
        .create_pod(
            "crasher",
            json!({"restartPolicy": "OnFailure", "containers": [container("app", json!(["sh", "-c", "echo attempt; exit 1"]))]}),
        )
        .await;
    let backing_off = |pod: Option<&Pod>| {
        pod.and_then(main_status).is_some_and(|c| {
            c.restart_count >= 2 && waiting_with("CrashLoopBackOff").matches_object(pod)
        })
    };
    let pod = cluster.wait_pod("crasher", backing_off).await;
    let status = main_status(&pod).expect("status");
    let (_, message) = waiting(&status);
    let uid = pod.uid().expect("uid");
    assert!(
        message.starts_with("back-off ")
            && message.ends_with(&format!(
                "restarting failed container=app pod=crasher_crashloop({uid})"
            )),
        "{message}"
    );
    let last = status
        .last_state
        .and_then(|s| s.terminated)
        .expect("last state");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    let previous = cluster
        .pods()
        .logs(
            "crasher",
            &LogParams {
                previous: true,
                ..LogParams::default()
            },
        )
        .await
        .expect("previous log");
    assert_eq!(previous, "attempt\n");
}
