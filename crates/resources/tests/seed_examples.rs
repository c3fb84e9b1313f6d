//! The seed operator's example manifests (copied unchanged into testdata/)
//! deserialize into `TestClusterGKE`, and serialize back to the same spec and
//! status: existing manifests keep working.

use serde_json::Value;
use testcluster_resources::metadata::{
    REASON_ALL_DEPENDENCIES_READY, REASON_DEPENDENCIES_NOT_READY, dependency_key,
};
use testcluster_resources::{Phase, TestClusterGKE};

const EXAMPLE_1: &str = include_str!("../testdata/seed-example-1.yaml");
const EXAMPLE_2: &str = include_str!("../testdata/seed-example-2.yaml");
const ISSUE_11: &str = include_str!("../testdata/seed-issue-11.yaml");

fn parse(yaml: &str) -> TestClusterGKE {
    yaml_serde::from_str(yaml).expect("seed manifest deserializes")
}

/// Spec and status of the manifest as generic JSON, and as the type writes them.
fn written_and_reserialized(yaml: &str) -> (Value, Value) {
    let written: Value = yaml_serde::from_str(yaml).expect("YAML");
    let reserialized = serde_json::to_value(parse(yaml)).expect("serializes");
    let pick = |value: &Value| {
        serde_json::json!({
            "apiVersion": value["apiVersion"],
            "kind": value["kind"],
            "spec": value["spec"],
            "status": value["status"],
        })
    };
    (pick(&written), pick(&reserialized))
}

#[test]
fn example_1_deserializes() {
    let resource = parse(EXAMPLE_1);
    assert_eq!(resource.metadata.name.as_deref(), Some("testme-1"));
    assert_eq!(
        resource.metadata.namespace.as_deref(),
        Some("test-clusters")
    );
    let spec = &resource.spec;
    assert_eq!(spec.config_template.as_deref(), Some("basic"));
    assert_eq!(spec.machine_type.as_deref(), Some("n1-standard-4"));
    assert_eq!(spec.nodes, Some(2));
    assert_eq!(spec.project.as_deref(), Some("cilium-ci"));
    assert_eq!(spec.location.as_deref(), Some("europe-west2-b"));
    assert_eq!(spec.region.as_deref(), Some("europe-west2"));
    let runner = spec
        .job_spec
        .as_ref()
        .and_then(|job| job.runner.as_ref())
        .expect("runner");
    assert_eq!(runner.image.as_deref(), Some("cilium/cilium-test:8cfdbfe"));
    assert_eq!(runner.command, ["/usr/local/bin/test-gke.sh"]);
    assert_eq!(runner.init_image, None);
    assert!(resource.status.is_none());
}

#[test]
fn example_2_deserializes_with_status() {
    let resource = parse(EXAMPLE_2);
    let runner = resource
        .spec
        .job_spec
        .as_ref()
        .and_then(|job| job.runner.as_ref())
        .expect("runner");
    assert_eq!(runner.config_map.as_deref(), Some("test-c6v87-user"));
    assert_eq!(runner.command.len(), 4);
    assert!(runner.init_image.is_some());

    let status = resource.status.expect("status");
    assert_eq!(status.cluster_name.as_deref(), Some("test-c6v87-fn86p"));
    assert_eq!(status.phase, None::<Phase>);
    let ready = &status.conditions[0];
    assert_eq!(ready.type_, "Ready");
    assert_eq!(ready.status, "True");
    assert_eq!(ready.reason, REASON_ALL_DEPENDENCIES_READY);
    assert_eq!(ready.message, "All 2 dependencies are ready");
    let key = dependency_key("ContainerNodePool", "test-clusters", "test-c6v87-fn86p");
    assert_eq!(status.dependency_conditions[&key][0].reason, "UpToDate");
    assert_eq!(status.dependency_conditions.len(), 2);
}

#[test]
fn issue_11_object_deserializes() {
    let resource = parse(ISSUE_11);
    assert_eq!(
        resource.metadata.uid.as_deref(),
        Some("acd5f665-2fd6-4bc2-b401-417227e5ce91")
    );
    let status = resource.status.expect("status");
    assert_eq!(status.conditions[0].reason, REASON_DEPENDENCIES_NOT_READY);
    let key = dependency_key("ContainerNodePool", "test-clusters", "test-66gx7-c5lsf");
    let pool = &status.dependency_conditions[&key][0];
    assert_eq!(pool.status, "False");
    assert_eq!(pool.reason, "UpdateFailed");
    assert!(pool.message.starts_with("Update call failed"));
}

#[test]
fn examples_serialize_back_unchanged() {
    for yaml in [EXAMPLE_1, EXAMPLE_2, ISSUE_11] {
        let (written, reserialized) = written_and_reserialized(yaml);
        assert_eq!(reserialized, written);
    }
}
