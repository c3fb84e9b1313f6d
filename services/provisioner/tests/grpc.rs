//! `ProvisionerService` over real gRPC: templates, spec validation, and what every server carries
//! (health).

mod common;

use std::time::Duration;

use common::*;
use testcluster_api::internal::v1::provisioner_service_client::ProvisionerServiceClient;
use testcluster_api::internal::v1::{ListTemplatesRequest, ValidateSpecRequest};
use testcluster_api::v1::TestClusterSpec;

#[tokio::test]
async fn templates_and_validation_over_grpc() {
    let env = Env::start(Duration::from_millis(200)).await;
    let provisioner = env.provisioner().await;
    let channel = tonic::transport::Endpoint::from_shared(provisioner.grpc_endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connects");
    let mut grpc = ProvisionerServiceClient::new(channel.clone());

    let templates = grpc
        .list_templates(ListTemplatesRequest {})
        .await
        .expect("ListTemplates")
        .into_inner()
        .templates;
    let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["basic"]);
    assert!(!templates[0].description.is_empty());

    // A seed manifest's spec, as proto3 JSON, is valid.
    let seed: TestClusterSpec = serde_json::from_value(serde_json::json!({
        "configTemplate": "basic",
        "jobSpec": {"runner": {"image": "cilium/cilium-test:8cfdbfe", "command": ["/usr/local/bin/test-gke.sh"]}},
        "machineType": "n1-standard-4",
        "nodes": 2,
        "project": "cilium-ci",
        "location": "europe-west2-b",
        "region": "europe-west2",
    }))
    .expect("seed spec as proto3 JSON");
    let valid = grpc
        .validate_spec(ValidateSpecRequest {
            namespace: "test-clusters".into(),
            name: "testme-1".into(),
            spec: Some(seed.clone()),
        })
        .await
        .expect("ValidateSpec")
        .into_inner();
    assert_eq!(valid.violations, []);

    let mut bad = seed;
    bad.nodes = Some(0);
    bad.config_template = Some("nope".into());
    let invalid = grpc
        .validate_spec(ValidateSpecRequest {
            namespace: "test-clusters".into(),
            name: "a-name-that-is-far-too-long-for-gke-x".into(),
            spec: Some(bad),
        })
        .await
        .expect("ValidateSpec answers, violations are not an error")
        .into_inner();
    let found: Vec<(&str, &str)> = invalid
        .violations
        .iter()
        .map(|v| (v.field.as_str(), v.reason.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("metadata.name", "TOO_LONG"),
            ("spec.configTemplate", "UNKNOWN_TEMPLATE"),
            ("spec.nodes", "OUT_OF_RANGE"),
        ]
    );

    // The shared server plumbing reports the service as serving.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "testcluster.internal.v1.ProvisionerService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    provisioner.stop().await;
}

#[tokio::test]
async fn run_refuses_to_start_without_the_crd() {
    testcluster_testkit::init();
    let sim = testcluster_sim::Simulator::start(testcluster_sim::SimConfig::default())
        .await
        .expect("simulator");
    let client = sim.api().client().await.expect("client");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let error = testcluster_provisioner::run(
        client,
        listener,
        testcluster_provisioner::Settings::default(),
        testcluster_service::metrics::Metrics::new(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect_err("no CRD, no provisioner");
    let message = error.to_string();
    assert!(message.contains("is the CRD installed?"), "{message}");
}
