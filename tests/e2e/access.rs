//! Access to a test cluster for people (issue 10, done-when 4): `tcctl kubeconfig` on a cluster
//! without a job writes a kubeconfig (0600) with which kubectl lists that cluster's nodes, and whose
//! token another test cluster refuses.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use clap::Parser as _;
use testcluster_api::v1 as api;
use tokio::process::Command;

use crate::support::{Env, NAMESPACE, start, until_phase};

/// `kubectl` from `$KUBECTL` (CI sets Debian's), else from `PATH`, with `kubeconfig`: its exit
/// status, stdout and stderr.
pub(crate) async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let program = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let output = Command::new(&program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .await
        .unwrap_or_else(|error| panic!("running {program}: {error}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A Ready cluster without a job, of `nodes` nodes; its cloud cluster's name.
async fn jobless(env: &Env, name: &str, nodes: i32) -> String {
    let created = env
        .create(api::CreateTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: name.to_owned(),
            spec: Some(api::TestClusterSpec {
                nodes: Some(nodes),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    let mut stream = env.watch(name, &created.resource_version).await;
    let ready = until_phase(&mut stream, api::Phase::Ready).await;
    ready.status.unwrap_or_default().cluster_name
}

/// `tcctl kubeconfig NAME -o PATH` against the suite's broker; tcctl's exit code.
async fn tcctl_kubeconfig(env: &Env, name: &str, path: &Path) -> i32 {
    let path = path.display().to_string();
    let endpoint = env.suite.broker_endpoint();
    let cli = tcctl::args::Cli::try_parse_from([
        "tcctl",
        "--endpoint",
        &endpoint,
        "--token",
        env.suite.token(),
        "-n",
        NAMESPACE,
        "kubeconfig",
        name,
        "-o",
        &path,
    ])
    .expect("tcctl's arguments");
    tcctl::commands::execute(cli).await
}

/// The bearer token of a kubeconfig as the provisioner writes it (one user, `token: ...`).
fn token_of(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .find_map(|line| line.trim().strip_prefix("token: "))
        .expect("a token line")
        .to_owned()
}

#[tokio::test]
async fn a_kubeconfig_reaches_its_own_cluster_and_no_other() {
    let env = start().await;
    let first = jobless(&env, "access-first", 2).await;
    jobless(&env, "access-second", 1).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let first_path = dir.path().join("first.kubeconfig");
    let second_path = dir.path().join("second.kubeconfig");
    assert_eq!(tcctl_kubeconfig(&env, "access-first", &first_path).await, 0);
    assert_eq!(
        tcctl_kubeconfig(&env, "access-second", &second_path).await,
        0
    );
    let mode = std::fs::metadata(&first_path)
        .expect("written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "a kubeconfig holds a token");

    // Its own cluster: both nodes, by GKE's names for that cluster.
    let (ok, nodes, errors) = kubectl(&first_path, &["get", "nodes", "-o", "name"]).await;
    assert!(ok, "{errors}");
    let prefix: String = format!("gke-{first}").chars().take(40).collect();
    let nodes: Vec<&str> = nodes.lines().collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    for node in &nodes {
        assert!(
            node.starts_with(&format!("node/{}", prefix.trim_end_matches('-'))),
            "{node}"
        );
    }

    // The same token at the other cluster's API server: refused.
    let first_text = std::fs::read_to_string(&first_path).expect("read");
    let second_text = std::fs::read_to_string(&second_path).expect("read");
    let crossed = second_text.replace(&token_of(&second_text), &token_of(&first_text));
    let crossed_path = dir.path().join("crossed.kubeconfig");
    tcctl::private_file::write(&crossed_path, crossed.as_bytes()).expect("write");
    let (ok, _, errors) = kubectl(&crossed_path, &["get", "nodes", "-o", "name"]).await;
    assert!(!ok, "another cluster accepted the token");
    // Debian's kubectl 1.20 adds "(Unauthorized)", newer ones "(the server has asked for the
    // client to provide credentials)": both are the API server's 401.
    assert!(
        errors.contains("error: You must be logged in to the server"),
        "{errors}"
    );
}

#[tokio::test]
async fn credentials_are_refused_once_the_cluster_is_gone() {
    let env = start().await;
    jobless(&env, "access-gone", 1).await;
    env.broker()
        .delete_test_cluster(api::DeleteTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: "access-gone".to_owned(),
        })
        .await
        .expect("deleted");
    let mut stream = env.watch("access-gone", "").await;
    while let Some(message) = stream.message().await.expect("watch") {
        if message.deleted {
            break;
        }
    }
    let refused = env
        .broker()
        .get_test_cluster_credentials(api::GetTestClusterCredentialsRequest {
            namespace: NAMESPACE.to_owned(),
            name: "access-gone".to_owned(),
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::NotFound);
    assert_eq!(
        refused.message(),
        format!("TestClusterGKE {NAMESPACE}/access-gone not found"),
        "the same NOT_FOUND as every other RPC gives for a cluster that is not there"
    );
}
