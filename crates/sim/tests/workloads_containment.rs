//! Jobs are processes on the user's machine: they die with the `testcluster-sim` process however it
//! dies, and the next simulator removes the pod directories a killed one left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{init, wait_for, within};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::conditions;
use kube::{Api, Client};
use serde_json::json;
use testcluster_sim::workloads::WorkloadConfig;
use testcluster_sim::{SimConfig, Simulator};
use tokio::process::Command;

/// Starts `testcluster-sim` with its pods under `pods_dir`; returns it and a client once it serves.
async fn start_binary(dir: &Path, pods_dir: &Path) -> (tokio::process::Child, Client) {
    let kubeconfig = dir.join("sim.kubeconfig");
    let child = Command::new(env!("CARGO_BIN_EXE_testcluster-sim"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--pods-dir")
        .arg(pods_dir)
        .env("TESTCLUSTER_SIM_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning testcluster-sim");
    within("the kubeconfig", async {
        while !kubeconfig.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    (child, Client::try_from(config).expect("client"))
}

/// The `testcluster-pods-*` roots under `pods_dir`.
fn roots(pods_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(pods_dir)
        .expect("pods dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("testcluster-pods-"))
        })
        .collect()
}

#[tokio::test]
async fn container_processes_die_with_the_simulator_and_its_pods_are_cleaned_up_after() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let pods_dir = dir.path().join("pods");
    let (mut sim, client) = start_binary(dir.path(), &pods_dir).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // `$$` is Kubernetes' escape for `$`: the shell sees `echo $$`.
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "job"},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36",
            "command": ["sh", "-c", "echo $$$$; exec sleep 600"]}]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    wait_for(&pods, "job", conditions::is_pod_running()).await;
    let pid = within("the pid in the log", async {
        loop {
            if let Ok(log) = pods.logs("job", &LogParams::default()).await
                && log.ends_with('\n')
            {
                return log.trim().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let process = PathBuf::from(format!("/proc/{pid}"));
    assert!(process.exists());
    let left_behind = roots(&pods_dir);
    assert_eq!(left_behind.len(), 1, "{left_behind:?}");
    let pod_dirs: Vec<_> = std::fs::read_dir(&left_behind[0])
        .expect("root")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("default_job_"))
        .collect();
    assert_eq!(pod_dirs.len(), 1);

    // SIGKILL: the simulator cannot clean up after itself.
    sim.start_kill().expect("kill");
    sim.wait().await.expect("wait");
    within("the container process to die", async {
        while process.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(left_behind[0].exists(), "nothing removed it yet");

    let next = Simulator::start(SimConfig {
        workloads: WorkloadConfig {
            pods_parent: Some(pods_dir.clone()),
            ..WorkloadConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("second simulator");
    assert!(!left_behind[0].exists(), "the dead simulator's pods remain");
    assert_eq!(
        roots(&pods_dir),
        vec![next.workloads().pods_root().to_owned()]
    );
}
