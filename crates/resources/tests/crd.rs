//! The committed CRD YAML matches the Rust type, and the CRD has the names,
//! columns and defaults `kubectl` users rely on.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};
use testcluster_resources::crd::{CRD_PATH, crd, crd_yaml};

fn committed_crd_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(CRD_PATH)
}

#[test]
fn committed_crd_matches_the_type() {
    let path = committed_crd_path();
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let generated = crd_yaml().expect("CRD serializes");
    assert!(
        committed == generated,
        "{CRD_PATH} is out of date with the TestClusterGKE type; regenerate it with\n\n    \
         cargo run -p testcluster-resources --bin crdgen > {CRD_PATH}\n"
    );
}

#[test]
fn committed_crd_parses_as_a_crd() {
    let committed = std::fs::read_to_string(committed_crd_path()).expect("committed CRD");
    let parsed: CustomResourceDefinition = yaml_serde::from_str(&committed).expect("a CRD");
    // Not assert_eq: the Debug form of a CRD is pages long.
    assert!(
        parsed == crd(),
        "{CRD_PATH} parses to a different CRD than the type's; regenerate it with\n\n    \
         cargo run -p testcluster-resources --bin crdgen > {CRD_PATH}\n"
    );
}

#[test]
fn names_are_the_seeds() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("testclustersgke.clusters.ci.cilium.io")
    );
    assert_eq!(crd.spec.group, "clusters.ci.cilium.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "TestClusterGKE");
    assert_eq!(crd.spec.names.plural, "testclustersgke");
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec!["tcg".to_owned(), "tcgke".to_owned()])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha2");
    assert!(version.served && version.storage);
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|subresources| subresources.status.as_ref())
            .is_some(),
        "status subresource"
    );
}

#[test]
fn printer_columns_show_phase_zone_and_age() {
    let crd = crd();
    let columns: Vec<(String, String, String)> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|column| column.priority.unwrap_or(0) == 0)
        .map(|column| {
            (
                column.name.clone(),
                column.type_.clone(),
                column.json_path.clone(),
            )
        })
        .collect();
    let expected = [
        ("Phase", "string", ".status.phase"),
        ("Zone", "string", ".status.location"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    .map(|(name, type_, path)| (name.to_owned(), type_.to_owned(), path.to_owned()));
    assert_eq!(columns, expected);
}

#[test]
fn schema_defaults_are_the_seeds() {
    let crd = serde_json::to_value(crd()).expect("CRD as JSON");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["configTemplate"]["default"], json!("basic"));
    assert_eq!(spec["nodes"]["default"], json!(2));
    assert_eq!(spec["machineType"]["default"], json!("n1-standard-4"));
    // Project and location come from the provisioner's configuration.
    assert_eq!(spec["project"]["default"], Value::Null);
    assert_eq!(spec["location"]["default"], Value::Null);
}
