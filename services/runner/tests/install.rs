//! What the runner installs into a test cluster before its job: the metrics stack from a directory
//! of manifests and the user's init manifest, server-side applied, recorded as
//! `installConditions` and Events; a manifest the test cluster refuses fails the run.

mod common;

use std::collections::BTreeSet;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use testcluster_resources::lifecycle::job_outcome;
use testcluster_resources::{Condition, TestClusterGKE};
use testcluster_runner::install::{
    CONDITION_INIT_MANIFEST, CONDITION_METRICS_STACK, REASON_APPLIED, REASON_INIT_MANIFEST_FAILED,
};

const STACK: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: monitoring}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: stack-config, namespace: monitoring}
data: {from: stack}
";

/// A metrics-stack directory holding [`STACK`].
fn stack_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("00-stack.yaml"), STACK).expect("manifest");
    dir
}

/// Gives the test cluster `name` the job ConfigMap `init` with `init_manifest`.
async fn with_init_manifest(world: &World, name: &str, init_manifest: &str) {
    let config_map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "init"},
        "data": {"init-manifest": init_manifest},
    }))
    .expect("ConfigMap");
    world
        .api::<ConfigMap>()
        .create(&PostParams::default(), &config_map)
        .await
        .expect("create the ConfigMap");
    world
        .api::<TestClusterGKE>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"jobSpec": {"runner": {"configMap": "init"}}}}),
            ),
        )
        .await
        .expect("configMap in the spec");
}

fn condition<'a>(resource: &'a TestClusterGKE, type_: &str) -> Option<&'a Condition> {
    resource
        .status
        .as_ref()?
        .install_conditions
        .iter()
        .find(|c| c.type_ == type_)
}

async fn event_reasons(world: &World, name: &str) -> BTreeSet<String> {
    let events = world
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events");
    events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason.clone())
        .collect()
}

#[tokio::test]
async fn the_stack_and_the_init_manifest_are_installed_before_the_job() {
    let world = World::start("installs").await;
    let cluster = world.cloud_cluster("i1-abcde", 1).await;
    world.ready_test_cluster("i1", &cluster, &["true"]).await;
    with_init_manifest(
        &world,
        "i1",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-user}\ndata: {from: user}\n",
    )
    .await;
    let stack = stack_dir();
    let runner = start_runner_with(
        &world,
        testcluster_runner::Settings {
            metrics_stack: Some(stack.path().to_owned()),
            ..settings(&world)
        },
    );

    let done = wait_for(&world.api(), "i1", |resource: Option<&TestClusterGKE>| {
        resource
            .and_then(|r| r.status.as_ref())
            .is_some_and(|s| job_outcome(&s.job_conditions).is_some())
    })
    .await;
    for type_ in [CONDITION_METRICS_STACK, CONDITION_INIT_MANIFEST] {
        let found = condition(&done, type_).unwrap_or_else(|| panic!("{type_}"));
        assert_eq!(
            (found.status.as_str(), found.reason.as_str()),
            ("True", REASON_APPLIED),
            "{found:?}"
        );
    }
    assert_eq!(
        condition(&done, CONDITION_METRICS_STACK).map(|c| c.message.as_str()),
        Some("Applied 2 objects of the metrics stack")
    );
    assert_eq!(
        job_outcome(&done.status.clone().unwrap_or_default().job_conditions),
        Some(true)
    );

    // In the test cluster, under the runner's field manager; the user's object in `default`.
    let test_cluster = cluster.api().client().await.expect("test cluster client");
    let namespace = Api::<Namespace>::all(test_cluster.clone())
        .get("monitoring")
        .await
        .expect("the stack's namespace");
    let managers: Vec<_> = namespace
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["testcluster-runner"]);
    let stack_config = Api::<ConfigMap>::namespaced(test_cluster.clone(), "monitoring")
        .get("stack-config")
        .await
        .expect("the stack's ConfigMap");
    assert_eq!(stack_config.data.unwrap_or_default()["from"], "stack");
    let user = Api::<ConfigMap>::namespaced(test_cluster, "default")
        .get("from-user")
        .await
        .expect("the init manifest's ConfigMap");
    assert_eq!(user.data.unwrap_or_default()["from"], "user");

    let reasons = event_reasons(&world, "i1").await;
    for reason in [
        CONDITION_METRICS_STACK,
        CONDITION_INIT_MANIFEST,
        "JobCreated",
    ] {
        assert!(reasons.contains(reason), "{reason} in {reasons:?}");
    }
    runner.stop("the runner to stop").await;
}

#[tokio::test]
async fn an_init_manifest_the_cluster_refuses_fails_the_run() {
    let world = World::start("refused").await;
    let cluster = world.cloud_cluster("i2-abcde", 1).await;
    world.ready_test_cluster("i2", &cluster, &["true"]).await;
    with_init_manifest(
        &world,
        "i2",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    )
    .await;
    let runner = start_runner(&world);

    let done = wait_for(&world.api(), "i2", |resource: Option<&TestClusterGKE>| {
        resource
            .and_then(|r| r.status.as_ref())
            .is_some_and(|s| job_outcome(&s.job_conditions).is_some())
    })
    .await;
    let status = done.status.clone().unwrap_or_default();
    let job = status.job.clone().unwrap_or_default();
    assert_eq!(job.reason.as_deref(), Some(REASON_INIT_MANIFEST_FAILED));
    assert_eq!(job.name, None, "no Job was created");
    let failed = condition(&done, CONDITION_INIT_MANIFEST).expect("condition");
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_str()),
        ("False", REASON_INIT_MANIFEST_FAILED)
    );
    assert!(
        failed
            .message
            .starts_with("applying the init manifest: Widget w: "),
        "{}",
        failed.message
    );
    assert_eq!(job.message.as_deref(), Some(failed.message.as_str()));
    assert!(
        condition(&done, CONDITION_METRICS_STACK).is_none(),
        "no stack configured"
    );
    let reasons = event_reasons(&world, "i2").await;
    assert!(reasons.contains(REASON_INIT_MANIFEST_FAILED), "{reasons:?}");
    assert!(!reasons.contains("JobCreated"), "{reasons:?}");
    runner.stop("the runner to stop").await;
}
