//! `testcluster-runner`: runs the test job of every ready test cluster.

use std::time::Duration;

use clap::Parser;
use testcluster_service::cli::{CommonArgs, CommonEnv, Started};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Runs the test job of every ready TestClusterGKE and records its outcome"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    lifetimes: testcluster_service::cli::LifetimeArgs,
    /// How long a job's container may fail to start (image pull errors, a missing ConfigMap)
    /// before the run is failed, such as 5m or 1h.
    #[arg(long, env = "TESTCLUSTER_RUNNER_START_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    start_timeout: Duration,
    /// GitHub's API for commit statuses (a GitHub Enterprise server's ends in /api/v3).
    #[arg(long, env = "TESTCLUSTER_GITHUB_API_URL", default_value = testcluster_runner::github::client::DEFAULT_API_URL)]
    github_api_url: String,
    /// Secret holding the GitHub token (key `token`) or a GitHub App's `app-id`,
    /// `installation-id` and `private-key`; without it no commit statuses are sent.
    #[arg(long, env = "TESTCLUSTER_GITHUB_TOKEN_SECRET")]
    github_token_secret: Option<String>,
    /// Namespace of the GitHub token Secret.
    #[arg(
        long,
        env = "TESTCLUSTER_GITHUB_SECRET_NAMESPACE",
        default_value = "testcluster-system"
    )]
    github_secret_namespace: String,
    /// Base URL of the runs' log pages (logview's): a commit status links to BASE/NAMESPACE/NAME.
    #[arg(
        long,
        env = "TESTCLUSTER_LOGS_BASE_URL",
        default_value = "http://127.0.0.1:9103/runs"
    )]
    logs_base_url: String,
    /// Only run jobs of test clusters in this namespace (default: all namespaces).
    #[arg(long, env = "TESTCLUSTER_RUNNER_NAMESPACE")]
    namespace: Option<String>,
}

const ENV: CommonEnv = CommonEnv {
    kubeconfig: "TESTCLUSTER_RUNNER_KUBECONFIG",
    log_format: "TESTCLUSTER_RUNNER_LOG_FORMAT",
    metrics_listen: "TESTCLUSTER_RUNNER_METRICS_LISTEN",
    default_metrics_listen: testcluster_runner::DEFAULT_METRICS_LISTEN,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = testcluster_service::cli::parse(ENV);
    let Started {
        client,
        shutdown,
        metrics,
    } = args.common.start().await?;
    let settings = testcluster_runner::Settings {
        lifetimes: args.lifetimes.lifetimes(),
        namespace: args.namespace,
        start_timeout: args.start_timeout,
        github: testcluster_runner::github::GitHubSettings {
            api_url: args.github_api_url,
            token_secret: args.github_token_secret,
            secret_namespace: args.github_secret_namespace,
            logs_base_url: args.logs_base_url,
            ..Default::default()
        },
    };
    testcluster_runner::run(client, settings, metrics, shutdown).await
}
