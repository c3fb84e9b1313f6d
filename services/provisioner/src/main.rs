//! The provisioner binary: flags (with `TESTCLUSTER_PROVISIONER_*` environment fallbacks), then
//! [`testcluster_provisioner::run`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use testcluster_service::cli::{CommonArgs, CommonEnv, Started};

/// Turns TestClusterGKE objects into GKE test clusters and serves ProvisionerService.
#[derive(Debug, Parser)]
#[command(name = "testcluster-provisioner", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Address of the gRPC server (ProvisionerService, health, reflection).
    #[arg(
        long,
        env = "TESTCLUSTER_PROVISIONER_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    listen: SocketAddr,
    /// GCP project for specs that do not set one.
    #[arg(
        long,
        env = "TESTCLUSTER_PROVISIONER_DEFAULT_PROJECT",
        default_value = "cilium-ci"
    )]
    default_project: String,
    /// GCP zone for specs that do not set a location.
    #[arg(
        long,
        env = "TESTCLUSTER_PROVISIONER_DEFAULT_LOCATION",
        default_value = "europe-west2-b"
    )]
    default_location: String,
    /// host:port of the GCE metadata server (cloud identity for reaching test clusters).
    #[arg(long, env = "GCE_METADATA_HOST")]
    metadata_host: Option<String>,
    /// Lifetime of the test job's token for its cluster: a number with s, m or h.
    #[arg(
        long,
        env = "TESTCLUSTER_PROVISIONER_TOKEN_EXPIRATION",
        default_value = "2h",
        value_parser = humantime::parse_duration
    )]
    token_expiration: Duration,
    /// How long a cluster may take to become ready before the run ends in phase Error
    /// (ProvisioningTimeout): seconds, or a number with s, m or h.
    #[arg(
        long,
        env = "TESTCLUSTER_PROVISIONER_PROVISION_TIMEOUT",
        default_value = "30m",
        value_parser = humantime::parse_duration
    )]
    provision_timeout: Duration,

    #[command(flatten)]
    tls: testcluster_service::tls::ServerTlsArgs,
}

const ENV: CommonEnv = CommonEnv {
    kubeconfig: "TESTCLUSTER_PROVISIONER_KUBECONFIG",
    log_format: "TESTCLUSTER_PROVISIONER_LOG_FORMAT",
    metrics_listen: "TESTCLUSTER_PROVISIONER_METRICS_LISTEN",
    default_metrics_listen: testcluster_provisioner::DEFAULT_METRICS_LISTEN,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = testcluster_service::cli::parse(ENV);
    let Started {
        client,
        shutdown,
        metrics,
    } = cli.common.start().await?;
    let listener = testcluster_service::grpc::bind(cli.listen).await?;
    let settings = testcluster_provisioner::Settings {
        default_project: cli.default_project,
        default_location: cli.default_location,
        metadata_host: cli.metadata_host,
        token_expiration: cli.token_expiration,
        provision_timeout: cli.provision_timeout,
        tls: testcluster_service::tls::server_files(&cli.tls, cli.listen)?,
    };
    testcluster_provisioner::run(client, listener, settings, metrics, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        testcluster_service::cli::try_parse_from(ENV, args)
    }

    #[test]
    fn provision_timeout_defaults_to_30_minutes() {
        let cli = parse(&["testcluster-provisioner"]).map(|cli| cli.provision_timeout);
        assert_eq!(
            cli.ok(),
            Some(testcluster_provisioner::DEFAULT_PROVISION_TIMEOUT)
        );
        let cli = parse(&["testcluster-provisioner", "--provision-timeout", "45s"])
            .map(|cli| cli.provision_timeout);
        assert_eq!(cli.ok(), Some(Duration::from_secs(45)));
        assert!(parse(&["testcluster-provisioner", "--provision-timeout", "soon"]).is_err());
    }
}
