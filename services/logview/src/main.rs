//! `testcluster-logview`: serves `testcluster.v1.LogService`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use service::cli::{CommonArgs, CommonEnv, Started};

#[derive(Debug, Parser)]
#[command(version, about = "Streams test jobs' logs (testcluster.v1.LogService)")]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Address of the gRPC server.
    #[arg(
        long,
        env = "TESTCLUSTER_LOGVIEW_LISTEN",
        default_value = "127.0.0.1:50053"
    )]
    listen: SocketAddr,
    /// Seconds to wait, once a job's pod is done, for the runner to record the outcome.
    #[arg(long, env = "TESTCLUSTER_LOGVIEW_OUTCOME_WAIT", default_value_t = 10)]
    outcome_wait_seconds: u64,
    /// Most log streams open at once.
    #[arg(long, env = "TESTCLUSTER_LOGVIEW_MAX_STREAMS", default_value_t = 1024)]
    max_streams: usize,
}

const ENV: CommonEnv = CommonEnv {
    kubeconfig: "TESTCLUSTER_LOGVIEW_KUBECONFIG",
    log_format: "TESTCLUSTER_LOGVIEW_LOG_FORMAT",
    metrics_listen: "TESTCLUSTER_LOGVIEW_METRICS_LISTEN",
    default_metrics_listen: logview::DEFAULT_METRICS_LISTEN,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = service::cli::parse(ENV);
    let Started {
        client,
        shutdown,
        metrics,
    } = args.common.start().await?;
    let listener = service::grpc::bind(args.listen).await?;
    let settings = logview::Settings {
        outcome_wait: Duration::from_secs(args.outcome_wait_seconds),
        max_streams: args.max_streams,
    };
    logview::run(client, listener, settings, metrics, shutdown).await
}
