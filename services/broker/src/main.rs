//! `testcluster-broker`: the public gRPC API as a process. Everything is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use service::telemetry::LogFormat;

/// testcluster's public gRPC API: TestClusterService and the LogService proxy.
#[derive(Debug, Parser)]
#[command(name = "testcluster-broker", version, about)]
struct Args {
    /// Address to serve gRPC on.
    #[arg(
        long,
        env = "TESTCLUSTER_BROKER_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    listen: SocketAddr,

    /// Kubeconfig of the management cluster; unset: KUBECONFIG, ~/.kube/config or in-cluster.
    #[arg(long, env = "TESTCLUSTER_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, env = "TESTCLUSTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(flatten)]
    settings: broker::Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    service::telemetry::init(args.log_format);
    service::install_crypto();
    let shutdown = service::shutdown::on_signal();
    let client = service::kube_client(args.kubeconfig.as_deref())
        .await
        .context("connecting to the management cluster")?;
    let listener = service::grpc::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    broker::run(client, listener, args.settings, shutdown).await
}
