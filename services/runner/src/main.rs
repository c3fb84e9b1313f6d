//! `testcluster-runner`: runs the test job of every ready test cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

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
    /// A directory of manifests (*.yaml, *.yml, *.json; at most 256 objects, 1 MiB) installed
    /// into every test cluster once it is Ready, before its job: the metrics stack, such as
    /// deploy/k8s/metrics-stack. None unless given.
    #[arg(long, env = "TESTCLUSTER_RUNNER_METRICS_STACK")]
    metrics_stack: Option<PathBuf>,
    /// Where to serve Prometheus service discovery (GET /federation/targets) and each live test
    /// cluster's /federate proxy.
    #[arg(long, env = "TESTCLUSTER_RUNNER_FEDERATION_LISTEN", default_value = testcluster_runner::federation::DEFAULT_LISTEN)]
    federation_listen: SocketAddr,
    /// HOST:PORT at which the central Prometheus reaches this runner, written into the targets
    /// (default: the listen address), such as testcluster-runner.testcluster-system.svc:9105.
    #[arg(long, env = "TESTCLUSTER_RUNNER_FEDERATION_ADVERTISE")]
    federation_advertise: Option<String>,
    /// The metrics stack's Prometheus Service in each test cluster, NAMESPACE/NAME:PORT.
    #[arg(
        long,
        env = "TESTCLUSTER_RUNNER_FEDERATION_PROMETHEUS",
        default_value = "testcluster-monitoring/prometheus:9090"
    )]
    federation_prometheus: testcluster_runner::federation::ServiceRef,
    /// Federation requests forwarded at once (answers included); more get 503.
    #[arg(
        long,
        env = "TESTCLUSTER_RUNNER_FEDERATION_MAX_IN_FLIGHT",
        default_value_t = 64
    )]
    federation_max_in_flight: usize,
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
        metrics_stack: args.metrics_stack,
        federation: testcluster_runner::federation::FederationSettings {
            advertise: args.federation_advertise,
            prometheus: args.federation_prometheus,
            max_in_flight: args.federation_max_in_flight,
            ..Default::default()
        },
    };
    let federation = tokio::net::TcpListener::bind(args.federation_listen)
        .await
        .with_context(|| format!("binding --federation-listen {}", args.federation_listen))?;
    testcluster_runner::run(client, Some(federation), settings, metrics, shutdown).await
}
