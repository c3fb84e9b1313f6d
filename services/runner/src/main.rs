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
    /// How long a test job may run, such as 90m or 2h.
    #[arg(long, env = "TESTCLUSTER_RUNNER_JOB_DEADLINE", default_value = "1h", value_parser = humantime::parse_duration)]
    job_deadline: Duration,
    /// How long a job's container may fail to start (image pull errors, a missing ConfigMap)
    /// before the run is failed, such as 5m or 1h.
    #[arg(long, env = "TESTCLUSTER_RUNNER_START_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    start_timeout: Duration,
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
        job_deadline: args.job_deadline,
        namespace: args.namespace,
        start_timeout: args.start_timeout,
    };
    testcluster_runner::run(client, settings, metrics, shutdown).await
}
