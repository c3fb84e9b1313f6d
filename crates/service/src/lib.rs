//! What every testcluster service shares, so each `main.rs` stays a few lines:
//!
//! - [`cli::CommonArgs`]: the flags every service has (kubeconfig, log format), and
//!   [`CommonArgs::start`](cli::CommonArgs::start), which sets up the process from them.
//! - [`grpc::GrpcServer`]: a tonic server with one tower stack around every call (tracing,
//!   metrics, an authentication slot, limits on calls and open streams) that always carries
//!   `grpc.health.v1.Health` and reflection v1 and v1alpha, and stops on a
//!   [`CancellationToken`](tokio_util::sync::CancellationToken).
//! - [`metrics::Metrics`]: a service's Prometheus registry, shared by its gRPC stack and its
//!   controllers, served on `/metrics` by [`metrics::http::serve`].
//! - [`kube_errors::kube_status`]: the one Kubernetes→gRPC status mapping.
//! - [`retry`]: the one retry and backoff policy.
//! - [`stores_ready::StoresReady`]: waiting for reflector stores' first lists, for any number
//!   of waiters.
//! - [`stale_reads::PendingWrites`]: tells a store behind a controller's own write from fresh data.
//! - [`telemetry::init`]: tracing to stderr, readable or JSON.
//! - [`kube_client`]: a Kubernetes client from a kubeconfig path or the usual inference.
//! - [`shutdown::on_signal`]: a token cancelled on SIGINT or SIGTERM.
//! - [`tls`]: TLS (and mutual TLS) for the servers, from files re-read when they change.
//! - [`install_crypto`]: rustls with the ring provider, installed once per process.

pub mod cli;
pub mod grpc;
pub mod kube_errors;
pub mod metrics;
pub mod retry;
pub mod shutdown;
pub mod stale_reads;
pub mod stores_ready;
pub mod telemetry;
pub mod tls;

use std::path::Path;

/// Installs ring as the process-wide rustls provider. Idempotent, so libraries and tests may call it.
pub fn install_crypto() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A Kubernetes client from `kubeconfig`, or, when `None`, from `KUBECONFIG`, `~/.kube/config` or
/// the in-cluster service account.
pub async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    install_crypto();
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}
