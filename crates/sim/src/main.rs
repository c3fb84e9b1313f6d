//! `testcluster-sim`: the simulated management cluster as a standalone process.
//!
//! Starts the simulator (Kubernetes API server, workloads, Config Connector, GKE API fake), writes a
//! kubeconfig for its API server, optionally serves its request counters on `/metrics`, prints where
//! everything listens and runs until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use clap::Parser;
use testcluster_sim::cloud::connector::ConnectorConfig;
use testcluster_sim::cloud::gke::GkeConfig;
use testcluster_sim::{SimConfig, Simulator};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// A simulated GKE management cluster on this machine.
#[derive(Debug, Parser)]
#[command(name = "testcluster-sim", version, about)]
struct Args {
    /// Where to write the kubeconfig (HTTPS endpoint, CA and admin token; mode 0600).
    #[arg(
        long,
        env = "TESTCLUSTER_SIM_KUBECONFIG",
        default_value = "./testcluster-sim.kubeconfig"
    )]
    kubeconfig: PathBuf,

    /// Log filter for stderr, in `RUST_LOG` syntax (e.g. `info`, `testcluster_sim=debug`).
    #[arg(long, env = "TESTCLUSTER_SIM_LOG", default_value = "info")]
    log: String,

    /// Address to serve `/metrics` on (Prometheus text): `apiserver_request_total{verb,resource,
    /// user,code}` for requests from clients outside the simulator, and the cloud's cluster counts. Port 0
    /// picks a free port (printed). Not served unless given.
    #[arg(long, env = "TESTCLUSTER_SIM_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    delays: CloudDelays,
}

/// How long the simulated cloud takes, for Config Connector objects and the GKE API fake alike: a
/// number with a unit (`300ms`, `2s`, `1m`).
#[derive(Debug, clap::Args)]
struct CloudDelays {
    /// Creating a cluster (ContainerCluster, or GKE's clusters.create).
    #[arg(long, env = "TESTCLUSTER_SIM_CLUSTER_CREATE_DELAY", default_value = "300ms", value_parser = humantime::parse_duration)]
    cluster_create_delay: Duration,

    /// Creating a node pool (ContainerNodePool, or GKE's nodePools.create).
    #[arg(long, env = "TESTCLUSTER_SIM_NODE_POOL_CREATE_DELAY", default_value = "200ms", value_parser = humantime::parse_duration)]
    node_pool_create_delay: Duration,

    /// Creating any other Config Connector object (network, subnetwork, IAM).
    #[arg(long, env = "TESTCLUSTER_SIM_OTHER_CREATE_DELAY", default_value = "50ms", value_parser = humantime::parse_duration)]
    other_create_delay: Duration,

    /// Deleting any cloud resource (and resizing a GKE node pool).
    #[arg(long, env = "TESTCLUSTER_SIM_DELETE_DELAY", default_value = "100ms", value_parser = humantime::parse_duration)]
    delete_delay: Duration,
}

impl CloudDelays {
    /// The simulator's configuration with these delays; everything else at its default.
    fn config(&self) -> SimConfig {
        SimConfig {
            connector: ConnectorConfig {
                cluster_create: self.cluster_create_delay,
                node_pool_create: self.node_pool_create_delay,
                other_create: self.other_create_delay,
                delete: self.delete_delay,
                ..ConnectorConfig::default()
            },
            gke: GkeConfig {
                cluster_create: self.cluster_create_delay,
                cluster_delete: self.delete_delay,
                node_pool_create: self.node_pool_create_delay,
                node_pool_delete: self.delete_delay,
                node_pool_resize: self.delete_delay,
                ..GkeConfig::default()
            },
            ..SimConfig::default()
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            EnvFilter::try_new(&args.log)
                .with_context(|| format!("invalid --log filter {:?}", args.log))?,
        )
        .init();
    // Both kube-rs (rustls) and the API server's TLS listener use ring; installing it is only
    // needed once per process and fails harmlessly if something else already did.
    let _ = rustls::crypto::ring::default_provider().install_default();

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let sim = Arc::new(
        Simulator::start(args.delays.config())
            .await
            .context("starting the simulator")?,
    );
    // Written after start, to a temporary name renamed into place, so that whoever waits for the
    // file finds a complete kubeconfig of a server that already listens.
    let tmp = temp_path(&args.kubeconfig);
    sim.write_kubeconfig(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.kubeconfig)
        .with_context(|| format!("writing {}", args.kubeconfig.display()))?;

    let metrics_stop = CancellationToken::new();
    let metrics = match args.metrics_listen {
        Some(address) => Some(serve_metrics(sim.clone(), address, metrics_stop.clone()).await?),
        None => None,
    };

    let gke = sim.gke();
    println!("API server:    {}", sim.api().https_url());
    println!("API (no auth): {}", sim.api().http_url());
    println!("kubeconfig:    {}", args.kubeconfig.display());
    println!("GKE endpoint:  {}", or_none(gke.endpoint()));
    println!("metadata host: {}", or_none(gke.metadata_host()));
    if let Some((address, _)) = &metrics {
        println!("metrics:       http://{address}/metrics");
    }
    println!(
        "try:           KUBECONFIG={} kubectl get namespaces",
        args.kubeconfig.display()
    );
    tracing::info!("simulator running; stop it with Ctrl-C or SIGTERM");

    let signal = shutdown_signal().await?;
    tracing::info!(signal, "shutting down");
    sim.api().shutdown();
    // The metrics server holds the last other reference to the simulator: stop it first, so that
    // dropping ours stops the simulator's test clusters and container processes.
    metrics_stop.cancel();
    if let Some((_, server)) = metrics {
        let _ = server.await;
    }
    drop(sim);
    // The kubeconfig names a server that no longer exists.
    if let Err(e) = std::fs::remove_file(&args.kubeconfig)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %args.kubeconfig.display(), error = %e, "could not remove the kubeconfig");
    }
    Ok(())
}

/// Serves [`testcluster_sim::metrics::encode`] on `GET /metrics` at `address` until `stop`; returns the bound
/// address and the server's task.
async fn serve_metrics(
    sim: Arc<Simulator>,
    address: SocketAddr,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding --metrics-listen {address}"))?;
    let address = listener.local_addr()?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let sim = sim.clone();
            async move {
                (
                    [(CONTENT_TYPE, testcluster_sim::metrics::CONTENT_TYPE)],
                    testcluster_sim::metrics::encode(&sim),
                )
            }
        }),
    );
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the metrics server stopped");
        }
    });
    Ok((address, server))
}

fn temp_path(path: &std::path::Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

fn or_none(value: String) -> String {
    if value.is_empty() {
        "(not available)".into()
    } else {
        value
    }
}

/// Waits for SIGINT or SIGTERM and says which.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    Ok(tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_flags_default_to_the_simulators_defaults() {
        let args = Args::try_parse_from(["testcluster-sim"]).expect("no flags needed");
        let config = args.delays.config();
        let defaults = ConnectorConfig::default();
        assert_eq!(config.connector.cluster_create, defaults.cluster_create);
        assert_eq!(config.connector.node_pool_create, defaults.node_pool_create);
        assert_eq!(config.connector.other_create, defaults.other_create);
        assert_eq!(config.connector.delete, defaults.delete);
        let defaults = GkeConfig::default();
        assert_eq!(config.gke.cluster_create, defaults.cluster_create);
        assert_eq!(config.gke.cluster_delete, defaults.cluster_delete);
        assert_eq!(config.gke.node_pool_create, defaults.node_pool_create);
        assert_eq!(config.gke.node_pool_delete, defaults.node_pool_delete);
        assert_eq!(config.gke.node_pool_resize, defaults.node_pool_resize);
    }

    #[test]
    fn a_delay_takes_a_unit() {
        let args = Args::try_parse_from(["testcluster-sim", "--cluster-create-delay", "2s"])
            .expect("a duration");
        assert_eq!(args.delays.cluster_create_delay, Duration::from_secs(2));
        assert!(Args::try_parse_from(["testcluster-sim", "--delete-delay", "soon"]).is_err());
    }
}
