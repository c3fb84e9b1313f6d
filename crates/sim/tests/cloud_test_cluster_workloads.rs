//! With `test_cluster_workloads`, a test cluster runs what is applied to it (images mapped to local
//! binaries as in the management cluster), and its API server's service proxy reaches it: how a
//! test cluster's Prometheus is reached without an ingress.

mod common;

use common::{create_namespace, init, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{ListParams, PostParams};
use testcluster_sim::cloud::{ClusterKey, Provider};
use testcluster_sim::workloads::WorkloadConfig;
use testcluster_sim::{SimConfig, Simulator};

const NAMESPACE: &str = "monitoring";

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: monitoring}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: registry.example.com/demo-app:1.0
        args: [serve, "--grpc-listen=$(POD_IP):9090", "--http-listen=$(POD_IP):8080"]
        env:
        - name: POD_IP
          valueFrom:
            fieldRef: {fieldPath: status.podIP}
        readinessProbe:
          grpc: {port: 9090}
          periodSeconds: 1
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: monitoring}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 8080, targetPort: 8080}
"#;

#[tokio::test]
async fn a_test_cluster_runs_workloads_reached_through_its_service_proxy() {
    init();
    let mut workloads = WorkloadConfig::default();
    workloads.image_binaries.insert(
        "registry.example.com/demo-app",
        env!("CARGO_BIN_EXE_testcluster-sim-demo-app"),
    );
    let sim = Simulator::start(SimConfig {
        workloads,
        test_cluster_workloads: true,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let key = ClusterKey {
        project: "cilium-ci".to_owned(),
        location: "europe-west2-b".to_owned(),
        name: "workloads-abcde".to_owned(),
    };
    let cluster = sim
        .cloud()
        .create_cluster(&key, Provider::ConfigConnector)
        .await
        .expect("test cluster");
    assert!(cluster.workloads().is_some());
    let client = cluster.api().client().await.expect("test cluster client");
    create_namespace(&client, NAMESPACE).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    deployments
        .create(
            &PostParams::default(),
            &yaml_serde::from_str(DEPLOYMENT).expect("Deployment"),
        )
        .await
        .expect("create the Deployment");
    Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .create(
            &PostParams::default(),
            &yaml_serde::from_str(SERVICE).expect("Service"),
        )
        .await
        .expect("create the Service");
    wait_for(&deployments, "web", |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            == Some(1)
    })
    .await;
    let pod = Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items
        .remove(0);
    let pod_name = pod.metadata.name.expect("name");

    let path = format!("/api/v1/namespaces/{NAMESPACE}/services/web:8080/proxy/");
    let answer = client
        .request_text(http::Request::get(&path).body(Vec::new()).expect("request"))
        .await
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    assert_eq!(answer, format!("hello from {pod_name}\n"));
    // The management cluster's own workloads know nothing of it.
    assert!(
        sim.api()
            .client()
            .await
            .expect("management client")
            .request_text(http::Request::get(&path).body(Vec::new()).expect("request"))
            .await
            .is_err()
    );
}
