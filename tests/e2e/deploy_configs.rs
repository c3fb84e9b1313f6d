//! The Prometheus configurations shipped in `deploy/k8s` pass Prometheus's own checker
//! (`promtool check config` / `check rules`, from Debian's `prometheus`): the central scrape job of
//! `deploy/k8s/federation/prometheus.yml`, and the metrics stack's configuration and recording
//! rules, taken out of its ConfigMap as the stack's Prometheus reads them.

use std::path::{Path, PathBuf};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

async fn promtool(args: &[&str], file: &Path) {
    let output = tokio::process::Command::new("promtool")
        .args(args)
        .arg(file)
        .output()
        .await
        .expect("promtool is not on PATH: apt-get install prometheus (.ci/run does)");
    assert!(
        output.status.success(),
        "promtool {args:?} {}:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_central_scrape_configuration_is_valid() {
    promtool(
        &["check", "config"],
        &repo_path("deploy/k8s/federation/prometheus.yml"),
    )
    .await;
}

#[tokio::test]
async fn the_metrics_stack_configuration_and_rules_are_valid() {
    let text = std::fs::read_to_string(repo_path("deploy/k8s/metrics-stack/20-config.yaml"))
        .expect("20-config.yaml");
    let config_map: serde_json::Value = yaml_serde::from_str(&text).expect("YAML");
    let dir = tempfile::tempdir().expect("temporary directory");
    for key in ["prometheus.yml", "rules.yml"] {
        let data = config_map["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("data.{key}"));
        std::fs::write(dir.path().join(key), data).expect("write");
    }
    // `check config` also checks the rule files it names, relative to the configuration.
    promtool(&["check", "config"], &dir.path().join("prometheus.yml")).await;
    promtool(&["check", "rules"], &dir.path().join("rules.yml")).await;
}
