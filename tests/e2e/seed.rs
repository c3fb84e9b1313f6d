//! The seed's first example manifest, applied with a real kubectl, is handled as the seed did it.

use std::collections::BTreeSet;

use testcluster_api::v1 as api;
use testcluster_resources::metadata;
use tokio::process::Command;

use crate::support::{Env, NAMESPACE, start};

const SEED_EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/resources/testdata/seed-example-1.yaml"
);

/// `kubectl` from `$KUBECTL` (CI sets Debian's), else from `PATH`.
async fn kubectl(env: &Env, args: &[&str]) -> String {
    let program = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let output = Command::new(&program)
        .args(args)
        .env("KUBECONFIG", env.suite.kubeconfig_path())
        .output()
        .await
        .unwrap_or_else(|error| panic!("running {program}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn seed_example_applied_with_kubectl_runs_like_the_seed() {
    let env = start().await;
    let applied = kubectl(&env, &["apply", "-f", SEED_EXAMPLE, "-o", "json"]).await;
    let applied: serde_json::Value = serde_json::from_str(&applied).expect("kubectl prints JSON");
    let version = applied["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion");
    let run = env.follow("testme-1", version).await;

    // clusterName: the name, '-' and 5 random characters.
    let status = run.status();
    let suffix = status
        .cluster_name
        .strip_prefix("testme-1-")
        .unwrap_or_else(|| panic!("clusterName {:?}", status.cluster_name));
    assert_eq!(suffix.len(), 5);
    assert!(
        suffix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );

    // While provisioning: the seed's "not ready" reason and message.
    let not_ready = run.snapshots.iter().flat_map(ready_conditions).any(|c| {
        c.status == "False"
            && c.reason == metadata::REASON_DEPENDENCIES_NOT_READY
            && c.message == metadata::MESSAGE_DEPENDENCIES_NOT_READY
    });
    assert!(not_ready, "no DependenciesNotReady condition seen");

    // Once Ready: every dependency keyed <Kind>:<namespace>/<name>, and the seed's ready message.
    let ready = run
        .snapshot_in(api::Phase::Ready)
        .expect("a Ready snapshot");
    let ready_status = ready.status.clone().unwrap_or_default();
    let keys: BTreeSet<&String> = ready_status.dependency_conditions.keys().collect();
    for kind in ["ContainerCluster", "ContainerNodePool"] {
        let key = metadata::dependency_key(kind, NAMESPACE, &status.cluster_name);
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(
        keys.iter()
            .all(|key| key.contains(&format!(":{NAMESPACE}/"))),
        "{keys:?}"
    );
    let condition = ready_conditions(ready).next().expect("Ready condition");
    assert_eq!(condition.status, "True");
    assert_eq!(condition.reason, metadata::REASON_ALL_DEPENDENCIES_READY);
    assert_eq!(
        condition.message,
        metadata::all_dependencies_ready_message(keys.len())
    );

    // /usr/local/bin/test-gke.sh does not exist here: the job fails and says why.
    assert_eq!(
        run.phases().last(),
        Some(&api::Phase::Failed),
        "{:?}",
        run.phases()
    );
    let final_status = run.final_status.clone().expect("final status");
    let said = format!(
        "{} {} {}",
        final_status.reason,
        final_status.message,
        run.text().join("\n")
    );
    assert!(
        said.contains("test-gke.sh"),
        "the reason is not in the logs: {said}"
    );

    // kubectl's printer columns show the outcome.
    let table = kubectl(&env, &["get", "tcg", "testme-1", "-n", NAMESPACE]).await;
    assert!(table.contains("Failed"), "{table}");
    env.wait_cloud_cluster_deleted(&status.cluster_name).await;
}

fn ready_conditions(cluster: &api::TestCluster) -> impl Iterator<Item = api::Condition> + '_ {
    cluster
        .status
        .iter()
        .flat_map(|status| status.conditions.iter())
        .filter(|condition| condition.r#type == metadata::CONDITION_READY)
        .cloned()
}
