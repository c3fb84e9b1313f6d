//! Clients no one here wrote: `buf curl` lists every server's services through reflection (v1 and
//! v1alpha), each server's health check answers SERVING, and reflection serves the
//! `google.rpc.BadRequest` that an INVALID_ARGUMENT carries. The internal APIs speak mutual TLS:
//! a client with the suite's certificate is served, one without is refused.

use tcctl::suite::Component;
use tokio::process::Command;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::start;

/// `buf curl` with `args`, `buf` from `$BUF`, else from `PATH` (`npm install -g @bufbuild/buf`).
async fn run_buf_curl(args: &[&str]) -> std::process::Output {
    let program = std::env::var("BUF").unwrap_or_else(|_| "buf".to_owned());
    // HTTP/2 without TLS needs saying so; over TLS, ALPN says it.
    let plaintext = !args.iter().any(|arg| arg.starts_with("https://"));
    Command::new(&program)
        .arg("curl")
        .args(["--protocol", "grpc"])
        .args(plaintext.then_some("--http2-prior-knowledge"))
        .args(args)
        .output()
        .await
        .unwrap_or_else(|error| panic!("running {program} (npm install -g @bufbuild/buf): {error}"))
}

/// The standard output of a `buf curl` that must succeed.
async fn buf_curl(args: &[&str]) -> String {
    let output = run_buf_curl(args).await;
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
    let certs = env.suite.certs();
    let path = |path: &std::path::Path| path.display().to_string();
    let (ca, cert, key) = (
        path(&certs.ca),
        path(&certs.broker.0),
        path(&certs.broker.1),
    );
    for (component, methods) in servers {
        let endpoint = env.suite.endpoint(component).expect("a gRPC server");
        let tls: Vec<&str> = if endpoint.starts_with("https://") {
            vec!["--cacert", &ca, "--cert", &cert, "--key", &key]
        } else {
            Vec::new()
        };
        for reflection in ["grpc-v1", "grpc-v1alpha"] {
            let mut args = tls.clone();
            args.extend([
                "--reflect-protocol",
                reflection,
                "--list-methods",
                &endpoint,
            ]);
            let listed = buf_curl(&args).await;
            for method in methods.iter().chain(&["grpc.health.v1.Health/Check"]) {
                assert!(
                    listed.lines().any(|line| line.trim() == *method),
                    "{component:?} ({reflection}) does not list {method}:\n{listed}"
                );
            }
        }
        let check = format!("{endpoint}/grpc.health.v1.Health/Check");
        let mut args = tls.clone();
        args.push(&check);
        let health = buf_curl(&args).await;
        assert!(health.contains("SERVING"), "{component:?}: {health}");

        let mut client =
            tonic::transport::Endpoint::from_shared(endpoint.clone()).expect("endpoint");
        if !tls.is_empty() {
            client = client
                .tls_config(suite_tls(&ca, Some((&cert, &key))))
                .expect("TLS");
        }
        let channel = client.connect().await.expect("connect");
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .expect("health")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{component:?}");

        if !tls.is_empty() {
            // Issue 12's "Done when" 3: no suite certificate, no internal API.
            let refused = tonic::transport::Endpoint::from_shared(endpoint)
                .expect("endpoint")
                .tls_config(suite_tls(&ca, None))
                .expect("TLS")
                .connect()
                .await;
            let answer = match refused {
                Ok(channel) => HealthClient::new(channel)
                    .check(HealthCheckRequest::default())
                    .await
                    .map(drop)
                    .map_err(|status| status.to_string()),
                Err(error) => Err(error.to_string()),
            };
            assert!(
                answer.is_err(),
                "{component:?} served a client without a certificate"
            );
        }
    }
}

/// A client's TLS trusting the suite's CA (files), with a client certificate when given.
fn suite_tls(ca: &str, identity: Option<(&str, &str)>) -> tonic::transport::ClientTlsConfig {
    let read = |path: &str| std::fs::read(path).expect("suite TLS file");
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)));
    match identity {
        Some((cert, key)) => {
            config.identity(tonic::transport::Identity::from_pem(read(cert), read(key)))
        }
        None => config,
    }
}

/// Decodes `google.rpc.BadRequest` bytes with the descriptor a server's reflection serves.
fn decode_bad_request(descriptor: &[u8], value: &[u8]) -> serde_json::Value {
    use prost::Message as _;
    let file = prost_types::FileDescriptorProto::decode(descriptor).expect("a file descriptor");
    let set = prost_types::FileDescriptorSet { file: vec![file] };
    let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(set).expect("a pool");
    let bad_request = pool
        .get_message_by_name("google.rpc.BadRequest")
        .expect("served google.rpc.BadRequest");
    let message = prost_reflect::DynamicMessage::decode(bad_request, value).expect("decodes");
    serde_json::to_value(&message).expect("JSON")
}

/// A client that knows nothing but the server's address can read a refusal's field violations:
/// reflection serves `google.rpc.BadRequest`. (grpcurl decodes details through reflection by
/// itself; buf curl prints them as base64, since its error printer only knows the types built into
/// it, so here the test takes buf curl's base64 and the descriptor reflection served.)
#[tokio::test]
async fn reflection_serves_the_error_details_of_a_refused_request() {
    let env = start().await;
    let endpoint = env.suite.endpoint(Component::Broker).expect("the broker");
    let request = serde_json::json!({
        "namespace": crate::support::NAMESPACE,
        "name": "Not_A_Name",
        "spec": {"nodes": 1},
    })
    .to_string();
    let authorization = format!("authorization: Bearer {}", env.suite.token());
    let output = run_buf_curl(&[
        "-H",
        &authorization,
        "--data",
        &request,
        &format!("{endpoint}/testcluster.v1.TestClusterService/CreateTestCluster"),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {stderr}");
    let error: serde_json::Value = serde_json::from_str(&stderr).expect("buf curl's JSON error");
    assert_eq!(error["code"], "invalid_argument", "{error:#}");
    let detail = &error["details"][0];
    assert_eq!(detail["type"], "google.rpc.BadRequest", "{error:#}");
    let value = detail["value"].as_str().expect("the detail's bytes");

    let lookup = serde_json::json!({"fileContainingSymbol": "google.rpc.BadRequest"}).to_string();
    let reflected = buf_curl(&[
        "--data",
        &lookup,
        &format!("{endpoint}/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
    ])
    .await;
    let reflected: serde_json::Value = serde_json::from_str(&reflected).expect("JSON");
    let files = &reflected["fileDescriptorResponse"]["fileDescriptorProto"];
    let descriptor = files[0]
        .as_str()
        .unwrap_or_else(|| panic!("no file: {reflected:#}"));

    use base64::Engine as _;
    let decode = |text: &str| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text.trim_end_matches('='))
            .expect("base64")
    };
    let bad_request = decode_bad_request(&decode(descriptor), &decode(value));
    let violations = bad_request["fieldViolations"]
        .as_array()
        .expect("violations");
    assert_eq!(violations.len(), 1, "{bad_request:#}");
    assert_eq!(violations[0]["field"], "name", "{bad_request:#}");
    assert_eq!(violations[0]["reason"], "INVALID_NAME", "{bad_request:#}");
}
