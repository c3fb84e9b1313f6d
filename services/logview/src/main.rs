//! `testcluster-logview`: serves `testcluster.v1.LogService`.

use std::net::SocketAddr;

use clap::Parser;
use testcluster_service::cli::{CommonArgs, CommonEnv, Started};

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
    /// Most log streams open at once.
    #[arg(long, env = "TESTCLUSTER_LOGVIEW_MAX_STREAMS", default_value_t = 1024)]
    max_streams: usize,
    /// Most bytes of recent lines kept for the followers of one container's log (they share
    /// one stream from the API server); a follower further behind reads on its own.
    #[arg(
        long,
        env = "TESTCLUSTER_LOGVIEW_LOG_BUFFER_BYTES",
        default_value_t = testcluster_logview::DEFAULT_LOG_BUFFER_BYTES
    )]
    log_buffer_bytes: usize,

    #[command(flatten)]
    tls: testcluster_service::tls::ServerTlsArgs,
}

const ENV: CommonEnv = CommonEnv {
    kubeconfig: "TESTCLUSTER_LOGVIEW_KUBECONFIG",
    log_format: "TESTCLUSTER_LOGVIEW_LOG_FORMAT",
    metrics_listen: "TESTCLUSTER_LOGVIEW_METRICS_LISTEN",
    default_metrics_listen: testcluster_logview::DEFAULT_METRICS_LISTEN,
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
    let settings = testcluster_logview::Settings {
        max_streams: args.max_streams,
        log_buffer_bytes: args.log_buffer_bytes,
        tls: testcluster_service::tls::server_files(&args.tls, args.listen)?,
    };
    testcluster_logview::run(client, listener, settings, metrics, shutdown).await
}
