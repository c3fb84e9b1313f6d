//! `testcluster-logview`: serves `testcluster.v1.LogService`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use service::telemetry::{self, LogFormat};

#[derive(Debug, Parser)]
#[command(version, about = "Streams test jobs' logs (testcluster.v1.LogService)")]
struct Args {
    /// Kubeconfig of the management cluster; default: KUBECONFIG, ~/.kube/config or in-cluster.
    #[arg(long, env = "TESTCLUSTER_LOGVIEW_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
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
    /// Log format.
    #[arg(
        long,
        env = "TESTCLUSTER_LOGVIEW_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_format);
    service::install_crypto();
    let client = service::kube_client(args.kubeconfig.as_deref()).await?;
    let listener = service::grpc::bind(args.listen).await?;
    let settings = logview::Settings {
        outcome_wait: std::time::Duration::from_secs(args.outcome_wait_seconds),
        max_streams: args.max_streams,
    };
    logview::run(client, listener, settings, service::shutdown::on_signal()).await
}
