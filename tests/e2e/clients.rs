//! Clients no one here wrote: `buf curl` lists every server's services through reflection (v1 and
//! v1alpha), and each server's health check answers SERVING.

use tcctl::suite::Component;
use tokio::process::Command;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::start;

/// `buf` from `$BUF`, else from `PATH` (`npm install -g @bufbuild/buf`).
async fn buf_curl(args: &[&str]) -> String {
    let program = std::env::var("BUF").unwrap_or_else(|_| "buf".to_owned());
    let output = Command::new(&program)
        .arg("curl")
        .args(["--protocol", "grpc", "--http2-prior-knowledge"])
        .args(args)
        .output()
        .await
        .unwrap_or_else(|error| {
            panic!("running {program} (npm install -g @bufbuild/buf): {error}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "buf curl {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn buf_curl_lists_each_servers_services_and_health_is_serving() {
    let env = start().await;
    let servers = [
        (
            Component::Broker,
            &[
                "testcluster.v1.TestClusterService/CreateTestCluster",
                "testcluster.v1.TestClusterService/WatchTestCluster",
                "testcluster.v1.LogService/StreamLogs",
            ][..],
        ),
        (
            Component::Provisioner,
            &[
                "testcluster.internal.v1.ProvisionerService/ValidateSpec",
                "testcluster.internal.v1.ProvisionerService/GetClusterAccess",
            ][..],
        ),
        (
            Component::Logview,
            &["testcluster.v1.LogService/StreamLogs"][..],
        ),
    ];
    for (component, methods) in servers {
        let endpoint = env.suite.endpoint(component).expect("a gRPC server");
        for reflection in ["grpc-v1", "grpc-v1alpha"] {
            let listed = buf_curl(&[
                "--reflect-protocol",
                reflection,
                "--list-methods",
                &endpoint,
            ])
            .await;
            for method in methods.iter().chain(&["grpc.health.v1.Health/Check"]) {
                assert!(
                    listed.lines().any(|line| line.trim() == *method),
                    "{component:?} ({reflection}) does not list {method}:\n{listed}"
                );
            }
        }
        let health = buf_curl(&[&format!("{endpoint}/grpc.health.v1.Health/Check")]).await;
        assert!(health.contains("SERVING"), "{component:?}: {health}");

        let channel = tonic::transport::Channel::from_shared(endpoint)
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .expect("health")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{component:?}");
    }
}
