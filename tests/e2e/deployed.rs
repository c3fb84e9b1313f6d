//! A service deployed from `deploy/k8s` as a cluster runs it: logview's manifests applied with a
//! real kubectl to the simulated management cluster, its image mapped to the `testcluster-logview`
//! binary built beside this test. The pod is Ready through its gRPC health probe, runs under its
//! ServiceAccount with only the RBAC the manifests grant, and another pod reaches it by the
//! Service's name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{LogParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Client};
use testcluster_sim::workloads::WorkloadConfig;
use testcluster_sim::{SimConfig, Simulator};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/k8s");
const NAMESPACE: &str = "testcluster-system";
/// The image in `deploy/k8s/logview`, without its tag.
const LOGVIEW_IMAGE: &str = "ghcr.io/testcluster/logview";
const LOGVIEW_USER: &str = "system:serviceaccount:testcluster-system:logview";
const WAIT: Duration = Duration::from_secs(60);

/// A workspace binary: tests run from `<target>/<profile>/deps/`, binaries sit one level up
/// (`cargo nextest run --workspace` builds them all).
fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build --bins --workspace)",
        path.display()
    );
    path
}

/// `kubectl` with `args` against `kubeconfig`, which must succeed; its standard output.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let (succeeded, stdout, stderr) = crate::access::kubectl(kubeconfig, args).await;
    assert!(succeeded, "kubectl {args:?}: {stderr}\n{stdout}");
    stdout
}

async fn wait<K>(api: &Api<K>, name: &str, what: &str, condition: impl Condition<K>) -> K
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + k8s_openapi::serde::de::DeserializeOwned
        + Send
        + 'static,
{
    tokio::time::timeout(WAIT, await_condition(api.clone(), name, condition))
        .await
        .unwrap_or_else(|_| panic!("{name}: timed out waiting for {what}"))
        .expect("watch")
        .unwrap_or_else(|| panic!("{name} is gone while waiting for {what}"))
}

/// A pod running `buf curl` (the real one, from `$BUF` or `PATH`) against logview's Service.
fn grpc_client_pod(name: &str, method: &str, body: &str) -> Pod {
    let buf = std::env::var("BUF").unwrap_or_else(|_| "buf".to_owned());
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "curl",
                "image": "docker.io/bufbuild/buf:1.50.0",
                "command": [buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge",
                            "--data", body,
                            format!("http://logview.{NAMESPACE}.svc:50053/{method}")],
            }],
        },
    }))
    .expect("pod")
}

/// Runs `pod` to completion; its phase and log.
async fn run_to_end(client: &Client, pod: Pod) -> (String, String) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let name = pod.metadata.name.clone().expect("name");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create client pod");
    let done = wait(&pods, &name, "the pod to finish", |p: Option<&Pod>| {
        matches!(
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    })
    .await;
    let log = pods
        .logs(&name, &LogParams::default())
        .await
        .expect("client log");
    (done.status.and_then(|s| s.phase).unwrap_or_default(), log)
}

#[tokio::test]
async fn logview_deployed_from_its_manifests_is_ready_and_reached_by_its_service_name() {
    let mut workloads = WorkloadConfig::default();
    workloads
        .image_binaries
        .insert(LOGVIEW_IMAGE, workspace_binary("testcluster-logview"));
    let sim = Simulator::start(SimConfig {
        workloads,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let client = sim.api().client().await.expect("client");

    kubectl(&kubeconfig, &["apply", "-f", &format!("{DEPLOY}/crds")]).await;
    kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "crd/testclustersgke.clusters.ci.cilium.io",
        ],
    )
    .await;
    kubectl(&kubeconfig, &["apply", "-f", &format!("{DEPLOY}/logview")]).await;

    // Available once the pod's gRPC health check answers SERVING.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let deployment = wait(
        &deployments,
        "logview",
        "an available replica",
        |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.available_replicas)
                == Some(1)
        },
    )
    .await;
    let status = deployment.status.expect("status");
    assert_eq!(
        (status.ready_replicas, status.updated_replicas),
        (Some(1), Some(1))
    );
    let rollout = kubectl(
        &kubeconfig,
        &["rollout", "status", "-n", NAMESPACE, "deployment/logview"],
    )
    .await;
    assert!(
        rollout.contains("successfully rolled out"),
        "rollout status: {rollout}"
    );

    // Another pod reaches it by the Service's name: the health check, and a LogService call that
    // logview answers by reading the API server with its ServiceAccount.
    let (phase, log) = run_to_end(
        &client,
        grpc_client_pod("health", "grpc.health.v1.Health/Check", "{}"),
    )
    .await;
    assert_eq!(phase, "Succeeded", "{log}");
    assert!(log.contains(r#""status": "SERVING""#), "{log}");
    let (phase, log) = run_to_end(
        &client,
        grpc_client_pod(
            "missing-run",
            "testcluster.v1.LogService/StreamLogs",
            r#"{"namespace": "test-clusters", "name": "nope"}"#,
        ),
    )
    .await;
    assert_eq!(phase, "Failed", "{log}");
    assert!(log.contains(r#""code": "not_found""#), "{log}");
    assert!(
        log.contains("test cluster test-clusters/nope not found"),
        "{log}"
    );

    // Everything logview asked the API server was allowed by its manifests' RBAC.
    let requests = sim.api().counters().of_user(LOGVIEW_USER);
    assert!(
        requests.keys().any(|(verb, resource, code)| verb == "watch"
            && resource == "testclustersgke"
            && *code == 200),
        "{requests:?}"
    );
    assert!(
        requests
            .keys()
            .any(|(verb, resource, _)| verb == "get" && resource == "testclustersgke"),
        "{requests:?}"
    );
    let denied: Vec<_> = requests
        .keys()
        .filter(|(_, _, code)| *code == 403)
        .collect();
    assert!(denied.is_empty(), "denied to logview: {denied:?}");
}
