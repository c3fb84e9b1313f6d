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
        job_deadline: args.job_deadline,
        namespace: args.namespace,
        start_timeout: args.start_timeout,
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
