//! The record of every cloud cluster the simulator ever created, so tests can prove nothing leaked.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::watch;

/// Which API created a cloud cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    ConfigConnector,
    GkeApi,
}

/// One cloud cluster, live or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudCluster {
    pub project: String,
    pub location: String,
    pub name: String,
    pub provider: Provider,
    /// Nodes across all node pools, as last sized.
    pub nodes: u32,
    pub created: DateTime<Utc>,
    pub deleted: Option<DateTime<Utc>>,
}

impl CloudCluster {
    pub fn is_live(&self) -> bool {
        self.deleted.is_none()
    }
}

/// Shared, cheaply cloned view of the inventory.
#[derive(Clone)]
pub struct Inventory {
    clusters: Arc<Mutex<Vec<CloudCluster>>>,
    /// Bumped on every change, so waiters need no polling.
    changes: Arc<watch::Sender<u64>>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory {
            clusters: Arc::default(),
            changes: Arc::new(watch::channel(0).0),
        }
    }
}

impl Inventory {
    /// Every cluster ever created, in creation order.
    pub fn all(&self) -> Vec<CloudCluster> {
        self.clusters.lock().clone()
    }

    /// Clusters not yet deleted.
    pub fn live(&self) -> Vec<CloudCluster> {
        self.clusters
            .lock()
            .iter()
            .filter(|c| c.is_live())
            .cloned()
            .collect()
    }

    /// The live cluster with this identity, if any.
    pub fn find_live(&self, project: &str, location: &str, name: &str) -> Option<CloudCluster> {
        self.clusters
            .lock()
            .iter()
            .find(|c| {
                c.is_live() && c.project == project && c.location == location && c.name == name
            })
            .cloned()
    }

    /// Waits until no cluster is live; on timeout returns the ones still live.
    pub async fn wait_until_none_live(&self, timeout: Duration) -> Result<(), Vec<CloudCluster>> {
        self.wait_until(timeout, |inventory| inventory.live().is_empty())
            .await
            .map_err(|()| self.live())
    }

    /// Waits until `done` holds for the inventory, re-checking on every change.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Inventory) -> bool,
    ) -> Result<(), ()> {
        let mut changes = self.changes.subscribe();
        let wait = async {
            loop {
                if done(self) {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| ())
    }

    pub(crate) fn record_created(&self, cluster: CloudCluster) {
        self.clusters.lock().push(cluster);
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn record_resized(&self, project: &str, location: &str, name: &str, nodes: u32) {
        self.update_live(project, location, name, |c| c.nodes = nodes);
    }

    pub(crate) fn record_deleted(&self, project: &str, location: &str, name: &str) {
        self.update_live(project, location, name, |c| c.deleted = Some(Utc::now()));
    }

    fn update_live(
        &self,
        project: &str,
        location: &str,
        name: &str,
        change: impl FnOnce(&mut CloudCluster),
    ) {
        let mut clusters = self.clusters.lock();
        if let Some(cluster) = clusters.iter_mut().find(|c| {
            c.is_live() && c.project == project && c.location == location && c.name == name
        }) {
            change(cluster);
            drop(clusters);
            self.changes.send_modify(|n| *n += 1);
        }
    }
}
