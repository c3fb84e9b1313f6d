//! Issue #10's first "Done when": a series that exists only in a test cluster's Prometheus becomes
//! queryable in a central, real Prometheus (Debian's `prometheus`, started here with the scrape
//! configuration of `deploy/k8s/federation/prometheus.yml`), carrying `test_cluster_name` and
//! `test_cluster_namespace`.
//!
//! The test cluster's Prometheus is a real process too: the runner installs
//! `deploy/k8s/metrics-stack` into the test cluster, whose kubelet runs the Prometheus image as
//! `/usr/bin/prometheus`, and the runner's `/federate` proxy reaches it through the test cluster's
//! API server service proxy. When the run ends, its target leaves the service discovery list and
//! the central Prometheus's targets; a `/federate` request with two `match[]` selectors gets the
//! union of both.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tcctl::suite::SuiteConfig;
use testcluster_api::v1 as api;

use crate::support::{self, NAMESPACE, TIMEOUT};

/// The image of `deploy/k8s/metrics-stack/30-prometheus.yaml`, any tag.
const PROMETHEUS_IMAGE: &str = "quay.io/prometheus/prometheus";
/// Recording rules of the metrics stack: series that exist only in the test cluster.
const STACK_UP: &str = "testcluster:metrics_stack_up";
const STACK_INFO: &str = "testcluster:metrics_stack_info";
/// How often the central Prometheus here refreshes its targets and scrapes (the shipped
/// configuration's 15s/30s would only make the test slower).
const CENTRAL_INTERVAL: &str = "1s";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// Debian's `prometheus`, which `.ci/run` installs.
fn prometheus_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
    });
    found.expect("`prometheus` is not on PATH: apt-get install prometheus (.ci/run does)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_test_cluster_metric_reaches_the_central_prometheus() {
    let prometheus = prometheus_binary();
    let mut config = SuiteConfig::default();
    config
        .sim
        .workloads
        .image_binaries
        .insert(PROMETHEUS_IMAGE, &prometheus);
    config.runner.metrics_stack = Some(repo_path("deploy/k8s/metrics-stack"));
    let env = support::start_with(config).await;
    let http = reqwest::Client::new();

    // A job that runs until the test lets it end.
    let scratch = tempfile::tempdir().expect("temporary directory");
    let release = scratch.path().join("release");
    let script = format!("while [ ! -e '{}' ]; do sleep 0.1; done", release.display());
    let name = "federated";
    let mut request = support::job_request(name, 1, &["sh", "-c", &script]);
    request.github = Some(api::GitHubInfo {
        commit_hash: "8cfdbfe".to_owned(),
        repo_owner: "cilium".to_owned(),
        repo_name: "cilium".to_owned(),
        ..Default::default()
    });
    let created = env.create(request).await;
    let version = created.resource_version.clone();
    let mut watch = env.watch(name, &version).await;
    support::until_phase(&mut watch, api::Phase::Running).await;

    // The runner lists the cluster once its stack is installed, which is before the job starts.
    let targets_url = env.suite.federation_targets_url();
    let targets = get_json(&http, &targets_url).await;
    let runner_address = targets_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    assert_eq!(
        targets,
        serde_json::json!([{
            "targets": [runner_address],
            "labels": {
                "__metrics_path__": format!("/federation/{NAMESPACE}/{name}/federate"),
                "test_cluster_name": name,
                "test_cluster_namespace": NAMESPACE,
                "template": "basic",
                "commit": "8cfdbfe",
                "repository": "cilium/cilium",
            }
        }])
    );

    // Through the proxy: every match[] goes to the test cluster's Prometheus.
    let federate = format!("http://{runner_address}/federation/{NAMESPACE}/{name}/federate");
    let one = format!("{federate}?match[]={STACK_UP}");
    let only_up = wait_for_body(&http, &one, |body| body.contains(STACK_UP)).await;
    assert!(!only_up.contains(STACK_INFO), "{only_up}");
    let both = format!("{federate}?match[]={STACK_UP}&match[]={STACK_INFO}");
    let union = wait_for_body(&http, &both, |body| {
        body.contains(STACK_UP) && body.contains(STACK_INFO)
    })
    .await;
    assert!(
        union
            .lines()
            .any(|line| line.starts_with(STACK_INFO) && line.contains(r#"stack="prometheus""#)),
        "{union}"
    );

    // The central Prometheus, with the shipped scrape configuration pointed at this runner.
    let central = CentralPrometheus::start(&prometheus, &targets_url, scratch.path()).await;
    let query = format!("{}/api/v1/query?query={STACK_UP}", central.url);
    let result = wait_for_json(&http, &query, |answer| {
        answer["data"]["result"]
            .as_array()
            .is_some_and(|result| !result.is_empty())
    })
    .await;
    let series = &result["data"]["result"][0]["metric"];
    assert_eq!(series["__name__"], STACK_UP, "{result}");
    assert_eq!(series["test_cluster_name"], name, "{result}");
    assert_eq!(series["test_cluster_namespace"], NAMESPACE, "{result}");
    assert_eq!(series["template"], "basic", "{result}");
    assert_eq!(series["commit"], "8cfdbfe", "{result}");
    assert_eq!(series["repository"], "cilium/cilium", "{result}");
    assert_eq!(series["job"], "testcluster-federation", "{result}");

    // The run ends: the target leaves the list, and the central Prometheus drops it.
    std::fs::write(&release, b"").expect("release the job");
    let ended = support::until_phase(&mut watch, api::Phase::Succeeded).await;
    assert_eq!(support::phase_of(&ended), api::Phase::Succeeded);
    let targets = wait_for_json(&http, &targets_url, |targets| {
        targets.as_array().is_some_and(|t| t.is_empty())
    })
    .await;
    assert_eq!(targets, serde_json::json!([]));
    let gone = format!("{}/api/v1/targets?state=active", central.url);
    wait_for_json(&http, &gone, |answer| {
        answer["data"]["activeTargets"]
            .as_array()
            .is_some_and(|targets| {
                !targets
                    .iter()
                    .any(|t| t["labels"]["test_cluster_name"] == name)
            })
    })
    .await;
    let refused = http.get(&one).send().await.expect("federate after the run");
    assert_eq!(refused.status(), reqwest::StatusCode::NOT_FOUND);
}

/// Debian's Prometheus with `deploy/k8s/federation/prometheus.yml`, its discovery URL replaced by
/// this suite's runner. Killed when dropped.
struct CentralPrometheus {
    url: String,
    _process: tokio::process::Child,
}

impl CentralPrometheus {
    async fn start(binary: &Path, targets_url: &str, dir: &Path) -> CentralPrometheus {
        let shipped = std::fs::read_to_string(repo_path("deploy/k8s/federation/prometheus.yml"))
            .expect("deploy/k8s/federation/prometheus.yml");
        let mut config: serde_json::Value = yaml_serde::from_str(&shipped).expect("YAML");
        let job = &mut config["scrape_configs"][0];
        assert_eq!(job["honor_labels"], true, "the shipped job honours labels");
        job["scrape_interval"] = CENTRAL_INTERVAL.into();
        job["scrape_timeout"] = CENTRAL_INTERVAL.into();
        job["http_sd_configs"][0]["url"] = targets_url.into();
        job["http_sd_configs"][0]["refresh_interval"] = CENTRAL_INTERVAL.into();
        let path = dir.join("central.yml");
        std::fs::write(&path, yaml_serde::to_string(&config).expect("YAML")).expect("config");
        // A port free now; Prometheus binds it a moment later.
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let process = tokio::process::Command::new(binary)
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("central-data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting prometheus");
        let url = format!("http://{address}");
        let http = reqwest::Client::new();
        wait_for_body(&http, &format!("{url}/-/ready"), |_| true).await;
        CentralPrometheus {
            url,
            _process: process,
        }
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
        .json()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

/// Prometheus has no watch: ask `url` again (every 200 ms, within [`TIMEOUT`]) until it answers
/// 200 with a body `done` accepts.
async fn wait_for_body(http: &reqwest::Client, url: &str, done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let waited = tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Ok(response) = http.get(url).send().await {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if status.is_success() && done(&body) {
                    return body;
                }
                last = format!("{status}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("GET {url} never gave what was awaited; last: {last}"))
}

async fn wait_for_json(
    http: &reqwest::Client,
    url: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let body = wait_for_body(http, url, |body| {
        serde_json::from_str(body).is_ok_and(|value| done(&value))
    })
    .await;
    serde_json::from_str(&body).expect("JSON")
}
