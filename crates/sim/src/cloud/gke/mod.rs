//! Simulated GKE REST API (container v1 subset) and GCE metadata server.
//!
//! The API serves what the direct provider and Config Connector use through
//! `google-cloud-container-v1`: clusters (create, get, list, delete, update, `setResourceLabels`),
//! node pools (create, get, list, delete, update, `setSize`) and operations, on the `locations`
//! paths and the legacy `zones` ones. The clusters are the cloud's own records
//! ([`crate::cloud::model`]), so clusters made through Config Connector are listed too, and what
//! the handlers change Config Connector sees. Mutations answer at once with a RUNNING operation
//! (`UPGRADE_MASTER`, `UPGRADE_NODES`, `UPDATE_CLUSTER`, `SET_LABELS`, ... as GKE names them); the
//! work happens in the background through [`Cloud`] (so the inventory sees it) after
//! [`GkeConfig`]'s delay plus the zone's, and the operation turns DONE. A stale `etag` on an update
//! is refused with 409 ABORTED, a stale `labelFingerprint` with 400 FAILED_PRECONDITION. Zone faults surface as GKE shows them: a stockout in the operation's
//! `error` and `statusMessage` (cluster `ERROR`), a quota shortage as a synchronous 403.
//!
//! The metadata server, on its own port, hands out tokens that every test cluster accepts.

mod errors;
mod metadata;
mod model;
mod operations;
mod paths;
mod routes;
mod state;
mod updates;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Cloud;

/// How long simulated GKE operations take (before a zone's extra delay), and who the metadata
/// server says it is.
#[derive(Clone, Debug)]
pub struct GkeConfig {
    pub cluster_create: Duration,
    pub cluster_delete: Duration,
    pub node_pool_create: Duration,
    pub node_pool_delete: Duration,
    pub node_pool_resize: Duration,
    /// Time for a cluster or node pool update (versions, labels, settings).
    pub update: Duration,
    /// The project the metadata server reports (`project/project-id`).
    pub metadata_project: String,
}

impl Default for GkeConfig {
    fn default() -> Self {
        GkeConfig {
            cluster_create: Duration::from_millis(300),
            cluster_delete: Duration::from_millis(100),
            node_pool_create: Duration::from_millis(200),
            node_pool_delete: Duration::from_millis(100),
            node_pool_resize: Duration::from_millis(100),
            update: Duration::from_millis(200),
            metadata_project: "testcluster-sim".into(),
        }
    }
}

/// The running GKE REST API fake (container v1 subset) and GCE metadata server. Dropping it closes
/// both listeners and abandons running operations (test clusters already made stay in the cloud).
pub struct GkeServer {
    api_addr: SocketAddr,
    metadata_addr: SocketAddr,
    shutdown: CancellationToken,
}

impl GkeServer {
    /// Starts both servers on free loopback ports.
    pub async fn start(cloud: Cloud, config: GkeConfig) -> anyhow::Result<GkeServer> {
        let shutdown = CancellationToken::new();
        let api = TcpListener::bind("127.0.0.1:0").await?;
        let metadata = TcpListener::bind("127.0.0.1:0").await?;
        let (api_addr, metadata_addr) = (api.local_addr()?, metadata.local_addr()?);
        let metadata_state = Arc::new(metadata::MetadataState::new(
            cloud.clone(),
            &config.metadata_project,
        ));
        let state = Arc::new(state::GkeState::new(cloud, config, shutdown.clone()));
        serve(api, routes::router(state), shutdown.clone());
        serve(metadata, metadata::router(metadata_state), shutdown.clone());
        tracing::debug!(%api_addr, %metadata_addr, "GKE API and metadata server listening");
        Ok(GkeServer {
            api_addr,
            metadata_addr,
            shutdown,
        })
    }

    /// Base URL for `google-cloud-container-v1`'s `with_endpoint`, e.g. `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// `host:port` for `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        self.metadata_addr.to_string()
    }
}

impl Drop for GkeServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn serve(listener: TcpListener, router: axum::Router, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "GKE fake listener failed");
        }
    });
}
