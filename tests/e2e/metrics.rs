//! Every service's `/metrics` after a lifecycle, read over HTTP as Prometheus would scrape it: the
//! families of issue #7 are there with the series a run produces, and `promtool check metrics`
//! accepts each exposition. (A family appears once it has a series: the runner's reconcile
//! errors, say, only after a runner reconcile failed.)

use std::process::Stdio;
use std::time::Duration;

use tcctl::suite::Component;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

use crate::support::{HELLO, job_request, start};

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn every_service_serves_its_metrics_after_a_lifecycle() {
    let env = start().await;
    let created = env.create(job_request("metrics", 1, HELLO)).await;
    // Every request to the API server fails for a moment: the provisioner's first reconcile of
    // the new object fails, and is counted by its error's kind. The run then goes on.
    let faults = env.suite.simulator().api().faults();
    faults.set_error_rate(1000);
    // Which write fails first (adding the finalizer, a status patch) is a race: any kind will do.
    let failed = r#"testcluster_reconcile_errors_total{controller="provisioner",error=""#;
    let waited = tokio::time::timeout(SCRAPE_TIMEOUT, async {
        loop {
            let exposition = scrape(&env, Component::Provisioner).await;
            if exposition.counted(failed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if waited.is_err() {
        let exposition = scrape(&env, Component::Provisioner).await;
        panic!("no failed reconcile counted:\n{}", exposition.text);
    }
    faults.clear();
    let run = env.follow(&created.name, &created.resource_version).await;
    assert_eq!(run.exit_code(), Some(0));
    // Once the cloud cluster is gone, the provisioner has reconciled the finished run, so it has
    // seen every phase the run left.
    env.wait_cloud_cluster_deleted(&run.status().cluster_name)
        .await;
    let missing = env
        .broker()
        .get_test_cluster(testcluster_api::v1::GetTestClusterRequest {
            namespace: crate::support::NAMESPACE.to_owned(),
            name: "no-such-cluster".to_owned(),
        })
        .await
        .expect_err("no such cluster");
    assert_eq!(missing.code(), Code::NotFound);

    let clusters = r#"grpc_service="testcluster.v1.TestClusterService""#;
    let broker = scrape(&env, Component::Broker).await;
    broker.has(&format!(
        r#"grpc_server_handled_total{{{clusters},grpc_method="CreateTestCluster",grpc_type="unary",grpc_code="OK"}}"#
    ));
    broker.has(&format!(
        r#"grpc_server_handled_total{{{clusters},grpc_method="GetTestCluster",grpc_type="unary",grpc_code="NOT_FOUND"}}"#
    ));
    broker.has(&format!(
        r#"grpc_server_handled_total{{{clusters},grpc_method="WatchTestCluster",grpc_type="server_stream",grpc_code="OK"}}"#
    ));
    broker.has(&format!(
        r#"grpc_server_handling_seconds_count{{{clusters},grpc_method="CreateTestCluster",grpc_type="unary"}}"#
    ));
    // The run's watch has ended: nothing is open any more.
    assert_eq!(
        broker.value(&format!(
            r#"grpc_server_open_streams{{{clusters},grpc_method="WatchTestCluster",grpc_type="server_stream"}}"#
        )),
        Some(0.0),
        "{}",
        broker.text
    );

    let logview = scrape(&env, Component::Logview).await;
    logview.has(r#"grpc_server_handled_total{grpc_service="testcluster.v1.LogService",grpc_method="StreamLogs",grpc_type="server_stream",grpc_code="OK"}"#);

    let provisioner = scrape(&env, Component::Provisioner).await;
    provisioner.has(r#"testcluster_reconcile_total{controller="provisioner"}"#);
    provisioner.has(r#"testcluster_reconcile_duration_seconds_count{controller="provisioner"}"#);
    assert!(provisioner.counted(failed), "{}", provisioner.text);
    for phase in ["Pending", "Provisioning", "Ready", "Running"] {
        provisioner.has(&format!(
            r#"testcluster_phase_duration_seconds_count{{phase="{phase}"}}"#
        ));
    }
    provisioner.declares("grpc_server_handled_total", "counter");

    let runner = scrape(&env, Component::Runner).await;
    runner.has(r#"testcluster_reconcile_total{controller="runner"}"#);
    runner.has(r#"testcluster_reconcile_duration_seconds_count{controller="runner"}"#);

    // The runner serves no gRPC; the other three have the whole gRPC stack.
    for exposition in [&broker, &logview, &provisioner] {
        exposition.declares("grpc_server_handled_total", "counter");
        exposition.declares("grpc_server_handling_seconds", "histogram");
        exposition.declares("grpc_server_open_streams", "gauge");
    }
    for exposition in [&broker, &logview, &provisioner, &runner] {
        promtool_check(exposition).await;
    }
}

/// One scrape of a service's `/metrics`.
struct Exposition {
    component: Component,
    text: String,
}

impl Exposition {
    /// The value of the series `series` (name and labels exactly as exposed).
    fn value(&self, series: &str) -> Option<f64> {
        self.text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Whether a series starting with `prefix` is exposed with a value above zero.
    fn counted(&self, prefix: &str) -> bool {
        self.text.lines().any(|line| {
            line.starts_with(prefix)
                && line
                    .rsplit_once(' ')
                    .and_then(|(_, value)| value.parse::<f64>().ok())
                    .is_some_and(|value| value > 0.0)
        })
    }

    /// Asserts that `series` is exposed with a value above zero.
    fn has(&self, series: &str) {
        let value = self.value(series);
        assert!(
            value.is_some_and(|value| value > 0.0),
            "{:?}: {series} is {value:?} in\n{}",
            self.component,
            self.text
        );
    }

    /// Asserts that the family `name` is declared with type `kind`.
    fn declares(&self, name: &str, kind: &str) {
        let family = name.strip_suffix("_total").unwrap_or(name);
        let declared = [
            format!("# TYPE {name} {kind}"),
            format!("# TYPE {family} {kind}"),
        ];
        assert!(
            self.text
                .lines()
                .any(|line| declared.iter().any(|d| d == line)),
            "{:?}: no {kind} {name} in\n{}",
            self.component,
            self.text
        );
    }
}

/// GETs `path` from `address` over HTTP/1.1; returns the status line, the headers and the body.
async fn get(address: &str, path: &str) -> (String, String, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(SCRAPE_TIMEOUT, exchange)
        .await
        .expect("answered in time")
        .expect("HTTP exchange");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_lowercase(), body.to_owned())
}

/// The `host:port` of `component`'s metrics server.
fn metrics_address(env: &crate::support::Env, component: Component) -> String {
    let url = env.suite.metrics_url(component);
    url.strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .expect("an http URL ending in /metrics")
        .to_owned()
}

/// `component`'s metrics as Prometheus text.
pub(crate) async fn metrics_text(env: &crate::support::Env, component: Component) -> String {
    get(&metrics_address(env, component), "/metrics").await.2
}

async fn scrape(env: &crate::support::Env, component: Component) -> Exposition {
    let address = &metrics_address(env, component);
    let (status, _, body) = get(address, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{component:?} /healthz");
    assert_eq!(body, "ok\n");
    let (status, headers, text) = get(address, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{component:?} /metrics");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{component:?}: {headers}"
    );
    Exposition { component, text }
}

/// Pipes `text` through `promtool check metrics` (Debian's `prometheus` package), which must find
/// nothing to complain about. Skipped, saying so, where promtool is not installed; CI installs it.
async fn promtool_check(exposition: &Exposition) {
    let Exposition { component, text } = exposition;
    let spawned = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED: promtool check metrics ({component:?}): promtool is not on PATH \
                 (apt-get install prometheus)"
            );
            return;
        }
        Err(error) => panic!("running promtool: {error}"),
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).await.expect("write");
    drop(stdin);
    let output = tokio::time::timeout(SCRAPE_TIMEOUT, child.wait_with_output())
        .await
        .expect("promtool in time")
        .expect("promtool ran");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics on {component:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
