//! `testcluster-broker`: the public gRPC API as a process. Everything is in the library.

use std::net::SocketAddr;

use clap::Parser;
use testcluster_service::cli::{CommonArgs, CommonEnv, Started};

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

    #[command(flatten)]
    common: CommonArgs,

    #[command(flatten)]
    settings: testcluster_broker::Settings,
}

/// Unlike the broker's other variables the first two have no `BROKER_` infix; they stay as they are
/// so that existing deployments keep working.
const ENV: CommonEnv = CommonEnv {
    kubeconfig: "TESTCLUSTER_KUBECONFIG",
    log_format: "TESTCLUSTER_LOG_FORMAT",
    metrics_listen: "TESTCLUSTER_BROKER_METRICS_LISTEN",
    default_metrics_listen: testcluster_broker::DEFAULT_METRICS_LISTEN,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = testcluster_service::cli::parse(ENV);
    let Started {
        client,
        shutdown,
        metrics,
    } = args.common.start().await?;
    let listener = testcluster_service::grpc::bind(args.listen).await?;
    testcluster_broker::run(client, listener, args.settings, metrics, shutdown).await
}
