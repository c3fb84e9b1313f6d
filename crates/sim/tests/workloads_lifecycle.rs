//! How pods end: graceful deletion (SIGTERM, then SIGKILL after the grace period), memory limits
//! (OOMKilled), eviction through the API (PodDisruptionBudgets) and by the kubelet (node pressure),
//! liveness probes; and what a pod's files look like on disk.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{create_namespace, init, start_workloads, wait_deleted, wait_for};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, EvictParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::conditions;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use testcluster_sim::apiserver::{ApiServer, ApiServerConfig};
use testcluster_sim::workloads::Workloads;

struct Cluster {
    api: ApiServer,
    workloads: Workloads,
    client: Client,
    namespace: String,
}

impl Cluster {
    async fn start(namespace: &str) -> Cluster {
        init();
        let api = ApiServer::start(ApiServerConfig {
            name: "lifecycle".into(),
            ..ApiServerConfig::default()
        })
        .await
        .expect("api server");
        let workloads = start_workloads(&api, Duration::from_millis(300));
        let client = api.client().await.expect("client");
        create_namespace(&client, namespace).await;
        Cluster {
            api,
            workloads,
            client,
            namespace: namespace.to_owned(),
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create<K>(&self, object: serde_json::Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
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

    /// A pod running `script` under `sh -c`, with `extra` merged into its spec; waits until it runs.
    async fn running_pod(&self, name: &str, script: &str, extra: serde_json::Value) -> Pod {
        let mut spec = json!({
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}],
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        self.create::<Pod>(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "db"}},
            "spec": spec,
        }))
        .await;
        wait_for(&self.pods(), name, conditions::is_pod_running()).await
    }

    async fn wait_phase(&self, name: &str, phase: &'static str) -> Pod {
        wait_for(&self.pods(), name, move |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some(phase)
        })
        .await
    }
}

/// Waits until `path` holds some text; returns it.
async fn read_when_written(path: &Path) -> String {
    common::within(&format!("{} to be written", path.display()), async {
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.ends_with('\n')
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

fn is_ready(pod: Option<&Pod>) -> bool {
    pod.and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_alive(pid: &str) -> bool {
    assert!(pid.trim().parse::<u32>().is_ok(), "not a pid: {pid:?}");
    Path::new(&format!("/proc/{}", pid.trim())).exists()
}

#[tokio::test]
async fn a_deleted_pod_gets_sigterm_and_is_terminating_meanwhile() {
    let cluster = Cluster::start("graceful").await;
    let marks = tempfile::tempdir().expect("tempdir");
    let mark = marks.path().join("term");
    let script = format!(
        "trap 'echo TERM > {}; exit 0' TERM; echo up; while true; do sleep 0.1; done",
        mark.display()
    );
    cluster
        .running_pod(
            "trapper",
            &script,
            json!({"terminationGracePeriodSeconds": 30}),
        )
        .await;
    cluster
        .pods()
        .delete("trapper", &DeleteParams::default())
        .await
        .expect("delete");
    let terminating = cluster.pods().get("trapper").await;
    if let Ok(pod) = terminating {
        assert!(pod.metadata.deletion_timestamp.is_some());
        assert_eq!(pod.metadata.deletion_grace_period_seconds, Some(30));
    }
    assert_eq!(read_when_written(&mark).await, "TERM\n");
    wait_deleted(&cluster.pods(), "trapper").await;
}

#[tokio::test]
async fn a_pod_ignoring_sigterm_is_killed_after_its_grace_period() {
    let cluster = Cluster::start("stubborn").await;
    let marks = tempfile::tempdir().expect("tempdir");
    let pid_file = marks.path().join("pid");
    // `$$` is Kubernetes' escape for `$`: the shell sees `echo $$`.
    let script = format!(
        "trap '' TERM; echo $$$$ > {}; while true; do sleep 0.1; done",
        pid_file.display()
    );
    cluster
        .running_pod(
            "stubborn",
            &script,
            json!({"terminationGracePeriodSeconds": 1}),
        )
        .await;
    let pid = read_when_written(&pid_file).await;
    let started = Instant::now();
    cluster
        .pods()
        .delete("stubborn", &DeleteParams::default())
        .await
        .expect("delete");
    let pod = cluster.pods().get("stubborn").await.expect("still there");
    assert_eq!(pod.metadata.deletion_grace_period_seconds, Some(1));
    wait_deleted(&cluster.pods(), "stubborn").await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "gone after {:?}, before its grace period",
        started.elapsed()
    );
    assert!(!is_alive(&pid), "process {pid} survived");
}

#[tokio::test]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    let cluster = Cluster::start("oom").await;
    cluster
        .create::<Pod>(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hungry"},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "eater", "image": "busybox:1.36",
                "command": ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 30"],
                "resources": {"limits": {"memory": "32Mi"}},
            }]},
        }))
        .await;
    let pod = cluster.wait_phase("hungry", "Failed").await;
    let status = &pod
        .status
        .expect("status")
        .container_statuses
        .expect("statuses")[0];
    let terminated = status
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(
        (terminated.reason.as_deref(), terminated.exit_code),
        (Some("OOMKilled"), 137)
    );
}

#[tokio::test]
async fn the_eviction_api_honours_the_disruption_budget() {
    let cluster = Cluster::start("evict").await;
    for name in ["db-0", "db-1"] {
        cluster
            .running_pod(name, "while true; do sleep 0.1; done", json!({}))
            .await;
    }
    for name in ["db-0", "db-1"] {
        wait_for(&cluster.pods(), name, is_ready).await;
    }
    cluster
        .create::<PodDisruptionBudget>(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}},
        }))
        .await;
    // A 429 answer is the verdict here, not a reason to retry.
    let no_retries: Api<Pod> = Api::namespaced(
        common::client_without_retries(&cluster.api).await,
        &cluster.namespace,
    );
    let refused = no_retries.evict("db-0", &EvictParams::default()).await;
    let status = common::status_of(refused);
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget."
        )
    );
    let cause = &status.details.expect("details").causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.message.as_str()),
        (
            "DisruptionBudget",
            "The disruption budget db needs 2 healthy pods and has 2 currently"
        )
    );

    let pdbs: Api<PodDisruptionBudget> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let patch = json!({"spec": {"minAvailable": 1}});
    pdbs.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("relax the budget");
    // Watched from before the eviction: the pod's shell dies at SIGTERM, so it may be gone before
    // a GET could see it terminating.
    let mut changes = watcher(
        cluster.pods(),
        watcher::Config::default().fields("metadata.name=db-0"),
    )
    .applied_objects()
    .boxed();
    common::within("the watch to start", changes.try_next())
        .await
        .expect("watch")
        .expect("db-0");
    cluster
        .pods()
        .evict("db-0", &EvictParams::default())
        .await
        .expect("evicted");
    let pod = common::within("db-0 to be terminating", async {
        loop {
            let pod = changes.try_next().await.expect("watch").expect("db-0");
            if pod.metadata.deletion_timestamp.is_some() {
                return pod;
            }
        }
    })
    .await;
    assert!(pod.metadata.deletion_timestamp.is_some());
    let target = pod
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("DisruptionTarget");
    assert_eq!(target.reason.as_deref(), Some("EvictionByEvictionAPI"));
    wait_deleted(&cluster.pods(), "db-0").await;
}

#[tokio::test]
async fn the_kubelet_evicts_under_memory_pressure() {
    let cluster = Cluster::start("pressure").await;
    cluster
        .running_pod("victim", "while true; do sleep 0.1; done", json!({}))
        .await;
    assert!(
        cluster
            .workloads
            .evict_for_memory_pressure(&cluster.namespace, "victim")
            .await
    );
    let pod = cluster.wait_phase("victim", "Failed").await;
    let status = pod.status.expect("status");
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    assert_eq!(
        status.message.as_deref(),
        Some(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 0Ki. \
             Container main was using 0Ki, request is 0, has larger consumption of memory. "
        )
    );
    assert!(
        !cluster
            .workloads
            .evict_for_memory_pressure(&cluster.namespace, "absent")
            .await
    );
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let cluster = Cluster::start("liveness").await;
    cluster
        .running_pod(
            "sick",
            "while true; do sleep 0.1; done",
            json!({"containers": [{
                "name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c", "while true; do sleep 0.1; done"],
                "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1},
            }]}),
        )
        .await;
    let pod = wait_for(&cluster.pods(), "sick", |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| c[0].restart_count >= 1)
    })
    .await;
    let status = &pod
        .status
        .expect("status")
        .container_statuses
        .expect("statuses")[0];
    let last = status
        .last_state
        .clone()
        .and_then(|s| s.terminated)
        .expect("last terminated");
    assert_eq!(last.exit_code, 143);
    let events =
        common::list_in::<k8s_openapi::api::core::v1::Event>(&cluster.client, &cluster.namespace)
            .await;
    assert!(
        events.iter().any(|e| e.reason.as_deref() == Some("Killing")
            && e.message.as_deref()
                == Some("Container main failed liveness probe, will be restarted")),
        "{events:?}"
    );
}

#[tokio::test]
async fn pod_files_are_private_unless_the_pod_says_otherwise() {
    let cluster = Cluster::start("modes").await;
    cluster
        .create::<Secret>(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
            "stringData": {"token": "s3cret"},
        }))
        .await;
    cluster
        .create::<ConfigMap>(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
            "data": {"color": "blue"},
        }))
        .await;
    let pod = cluster
        .running_pod(
            "files",
            "while true; do sleep 0.1; done",
            json!({
                "volumes": [
                    {"name": "creds", "secret": {"secretName": "creds"}},
                    {"name": "settings", "configMap": {"name": "settings", "defaultMode": 0o644}},
                ],
                "containers": [{
                    "name": "main", "image": "busybox:1.36",
                    "command": ["sh", "-c", "while true; do sleep 0.1; done"],
                    "volumeMounts": [
                        {"name": "creds", "mountPath": "/creds"},
                        {"name": "settings", "mountPath": "/etc/settings"},
                    ],
                }],
            }),
        )
        .await;
    let root = cluster.workloads.pods_root();
    let dir = root.join(format!(
        "{}_files_{}",
        cluster.namespace,
        pod.uid().expect("uid")
    ));
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(root), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(".volumes")), 0o700);
    assert_eq!(mode(&dir.join(".volumes/creds")), 0o700);
    assert_eq!(mode(&dir.join(".volumes/creds/token")), 0o600);
    assert_eq!(mode(&dir.join(".volumes/settings/color")), 0o644);
    assert_eq!(
        std::fs::read_to_string(dir.join("creds/token")).expect("token"),
        "s3cret"
    );
}
