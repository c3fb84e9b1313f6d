//! `testcluster-sim`: the simulated management cluster as a standalone process.
//!
//! Starts the simulator (Kubernetes API server, workloads, Config Connector, GKE API fake), writes a
//! kubeconfig for its API server, prints where everything listens and runs until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use sim::{SimConfig, Simulator};
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

    /// Log filter for stderr, in `RUST_LOG` syntax (e.g. `info`, `sim=debug`).
    #[arg(long, env = "TESTCLUSTER_SIM_LOG", default_value = "info")]
    log: String,
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
    let sim = Simulator::start(SimConfig::default())
        .await
        .context("starting the simulator")?;
    // Written after start, to a temporary name renamed into place, so that whoever waits for the
    // file finds a complete kubeconfig of a server that already listens.
    let tmp = temp_path(&args.kubeconfig);
    sim.write_kubeconfig(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.kubeconfig)
        .with_context(|| format!("writing {}", args.kubeconfig.display()))?;

    let gke = sim.gke();
    println!("API server:    {}", sim.api().https_url());
    println!("API (no auth): {}", sim.api().http_url());
    println!("kubeconfig:    {}", args.kubeconfig.display());
    println!("GKE endpoint:  {}", or_none(gke.endpoint()));
    println!("metadata host: {}", or_none(gke.metadata_host()));
    println!(
        "try:           KUBECONFIG={} kubectl get namespaces",
        args.kubeconfig.display()
    );
    tracing::info!("simulator running; stop it with Ctrl-C or SIGTERM");

    let signal = shutdown_signal().await?;
    tracing::info!(signal, "shutting down");
    sim.api().shutdown();
    drop(sim);
    // The kubeconfig names a server that no longer exists.
    if let Err(e) = std::fs::remove_file(&args.kubeconfig)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %args.kubeconfig.display(), error = %e, "could not remove the kubeconfig");
    }
    Ok(())
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
