//! `testcluster-sim`: the simulated management cluster as a standalone process.
//!
//! Starts the simulator (Kubernetes API server, workloads, Config Connector, GKE API fake), writes a
//! kubeconfig for its API server, optionally serves its request counters on `/metrics`, prints where
//! everything listens and runs until SIGINT or SIGTERM. `--image-map` runs images as local
//! executables; `--test-cluster-workloads` runs workloads in test clusters too; `--pods-dir` says
//! where pods' files go.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use clap::Parser;
use testcluster_sim::admin::SimFlags;
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

    /// Address of the simulator's own HTTP endpoint: `/metrics` (Prometheus text:
    /// `apiserver_request_total{verb,resource,user,code}` for requests from clients outside the simulator, and
    /// the cloud's cluster counts) and `/faults` (show and change the fault settings at runtime,
    /// with the kubeconfig's token as bearer token). Port 0 picks a free port (printed). Not served
    /// unless given.
    #[arg(long, alias = "metrics-listen", env = "TESTCLUSTER_SIM_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,

    /// Also serve the API over plain HTTP on loopback, without authentication. Off unless given:
    /// every process on this machine, jobs included, could use it as admin.
    #[arg(long, env = "TESTCLUSTER_SIM_PLAIN_HTTP")]
    plain_http: bool,

    /// Where the simulator keeps its pods' directories (in a `testcluster-pods-*` directory of its
    /// own, removed on exit; those of simulators that were killed are removed at start).
    #[arg(long, env = "TESTCLUSTER_SIM_PODS_DIR")]
    pods_dir: Option<PathBuf>,

    #[command(flatten)]
    sim: SimFlags,
}

impl Args {
    /// The simulator's configuration from the flags.
    fn config(&self) -> SimConfig {
        let mut config = self.sim.workloads.config(self.sim.delays.config(SimConfig {
            plain_http: self.plain_http,
            ..SimConfig::default()
        }));
        config.workloads.pods_parent = self.pods_dir.clone();
        config
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
        Simulator::start(args.config())
            .await
            .context("starting the simulator")?,
    );
    sim.fault_switches()
        .apply(&args.sim.faults.settings())
        .map_err(anyhow::Error::msg)
        .context("the fault flags")?;
    // Written after start, to a temporary name renamed into place, so that whoever waits for the
    // file finds a complete kubeconfig of a server that already listens.
    let tmp = temp_path(&args.kubeconfig);
    sim.write_kubeconfig(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.kubeconfig)
        .with_context(|| format!("writing {}", args.kubeconfig.display()))?;

    let metrics_stop = CancellationToken::new();
    let admin = match args.admin_listen {
        Some(address) => Some(serve_admin(sim.clone(), address, metrics_stop.clone()).await?),
        None => None,
    };

    let gke = sim.gke();
    println!("API server:    {}", sim.api().https_url());
    if let Some(url) = sim.api().http_url() {
        println!("API (no auth): {url}");
    }
    println!("kubeconfig:    {}", args.kubeconfig.display());
    println!("GKE endpoint:  {}", or_none(gke.endpoint()));
    println!("metadata host: {}", or_none(gke.metadata_host()));
    if let Some((address, _)) = &admin {
        println!("metrics:       http://{address}/metrics");
        println!("faults:        http://{address}/faults (bearer: the kubeconfig's token)");
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
    if let Some((_, server)) = admin {
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

/// Serves [`testcluster_sim::metrics::encode`] on `GET /metrics` and the fault settings on `/faults`
/// at `address` until `stop`; returns the bound address and the server's task.
async fn serve_admin(
    sim: Arc<Simulator>,
    address: SocketAddr,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding --admin-listen {address}"))?;
    let address = listener.local_addr()?;
    let switches = sim.fault_switches();
    let app = testcluster_sim::admin::router(switches).route(
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
    fn images_map_to_binaries() {
        let args = Args::try_parse_from([
            "testcluster-sim",
            "--image-map",
            "example.com/app=/bin/true",
            "--image-map=busybox:1=/bin/false",
        ])
        .expect("mappings");
        let config = args.config();
        let binaries = &config.workloads.image_binaries;
        assert_eq!(
            binaries.binary_for("example.com/app:7"),
            Some(std::path::Path::new("/bin/true"))
        );
        assert_eq!(
            binaries.binary_for("busybox:1"),
            Some(std::path::Path::new("/bin/false"))
        );
        assert!(Args::try_parse_from(["testcluster-sim", "--image-map", "nopath"]).is_err());
    }
}
