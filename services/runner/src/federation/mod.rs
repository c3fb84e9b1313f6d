//! Federation: how a central Prometheus gets the metrics of every live test cluster.
//!
//! The runner serves, on its own HTTP listener (`--federation-listen`):
//!
//! - `GET /federation/targets`: Prometheus HTTP service discovery ([`sd`]), one target per live
//!   test cluster, labelled `test_cluster_name`, `test_cluster_namespace`, `template`, and
//!   `commit` / `repository` when known; its `__metrics_path__` is that cluster's proxy:
//! - `GET /federation/{namespace}/{name}/federate`: the [`proxy`] to that test cluster's
//!   Prometheus (`/federate`, every query parameter forwarded unchanged).
//!
//! The central Prometheus scrapes the targets with `honor_labels: true` (see
//! `deploy/k8s/federation/`), so each series keeps the test cluster's own labels and gains the
//! target's. Live test clusters are read from the controller's store: no extra watch.

pub mod proxy;
pub mod sd;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use kube::runtime::reflector::Store;
use testcluster_resources::TestClusterGKE;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::cluster_access::ClusterClients;

/// Where the runner serves federation unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9105";
/// The path of the service-discovery list.
pub const TARGETS_PATH: &str = "/federation/targets";

/// A Service in the test cluster: `namespace/name:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    /// The port's number or name.
    pub port: String,
}

impl FromStr for ServiceRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = text.split_once('/').and_then(|(namespace, rest)| {
            let (name, port) = rest.split_once(':')?;
            let valid = |part: &str| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            };
            (valid(namespace) && valid(name) && valid(port)).then(|| ServiceRef {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                port: port.to_owned(),
            })
        });
        parsed.ok_or_else(|| format!("{text:?} is not NAMESPACE/NAME:PORT"))
    }
}

/// How federation is served.
#[derive(Clone, Debug)]
pub struct FederationSettings {
    /// `host:port` at which the central Prometheus reaches this runner, as written into the
    /// targets; the listener's own address when `None`.
    pub advertise: Option<String>,
    /// The Prometheus Service of the metrics stack, in every test cluster.
    pub prometheus: ServiceRef,
    /// Federation requests forwarded at once, answers included; beyond it: 503.
    pub max_in_flight: usize,
    /// How long a test cluster's Prometheus may take to start answering.
    pub timeout: Duration,
}

impl Default for FederationSettings {
    fn default() -> Self {
        FederationSettings {
            advertise: None,
            prometheus: ServiceRef {
                namespace: "testcluster-monitoring".to_owned(),
                name: "prometheus".to_owned(),
                port: "9090".to_owned(),
            },
            max_in_flight: 64,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What the handlers share.
pub struct FederationState {
    pub settings: FederationSettings,
    /// The controller's store of every `TestClusterGKE`.
    pub store: Store<TestClusterGKE>,
    pub clients: Arc<ClusterClients>,
    pub in_flight: Arc<Semaphore>,
    /// `host:port` written into the targets.
    pub advertise: String,
}

/// Serves federation on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    settings: FederationSettings,
    store: Store<TestClusterGKE>,
    clients: Arc<ClusterClients>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let local: SocketAddr = listener.local_addr()?;
    let state = Arc::new(FederationState {
        advertise: settings
            .advertise
            .clone()
            .unwrap_or_else(|| local.to_string()),
        in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
        settings,
        store,
        clients,
    });
    let router = axum::Router::new()
        .route(TARGETS_PATH, get(targets))
        .route(
            "/federation/{namespace}/{name}/federate",
            get(proxy::federate),
        )
        .with_state(state);
    tracing::info!(address = %local, "serving federation");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// `GET /federation/targets`
async fn targets(State(state): State<Arc<FederationState>>) -> Json<Vec<sd::TargetGroup>> {
    let resources = state.store.state();
    let groups = sd::target_groups(resources.iter().map(|r| r.as_ref()), &state.advertise);
    // Clients of clusters no longer listed are not needed any more.
    state.clients.retain(|key| {
        groups.iter().any(|g| {
            let label = |name| g.labels.get(name).map(String::as_str).unwrap_or_default();
            key.split_once('/') == Some((label(sd::LABEL_NAMESPACE), label(sd::LABEL_NAME)))
        })
    });
    Json(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_refs_parse() {
        assert_eq!(
            "testcluster-monitoring/prometheus:9090".parse::<ServiceRef>(),
            Ok(FederationSettings::default().prometheus)
        );
        assert_eq!(
            "mon/prom:web".parse::<ServiceRef>().map(|s| s.port),
            Ok("web".to_owned())
        );
        for bad in [
            "prometheus:9090",
            "mon/prometheus",
            "mon/:9090",
            "Mon/p:1",
            "a/b:c/d",
        ] {
            assert_eq!(
                bad.parse::<ServiceRef>(),
                Err(format!("{bad:?} is not NAMESPACE/NAME:PORT")),
                "{bad}"
            );
        }
    }
}
