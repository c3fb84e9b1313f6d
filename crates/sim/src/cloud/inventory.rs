//! The record of the cloud clusters the simulator created, so tests can prove nothing leaked: every
//! live one, and the most recent deleted ones (a bounded number, so that a simulator serving run
//! after run does not grow with each).

use std::collections::VecDeque;
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

/// How many deleted clusters the inventory remembers.
const DELETED_KEPT: usize = 10_000;

#[derive(Default)]
struct Records {
    /// Live clusters in creation order; deleted ones in deletion order, the oldest dropped first.
    live: Vec<CloudCluster>,
    deleted: VecDeque<CloudCluster>,
    created_total: u64,
}

/// Shared, cheaply cloned view of the inventory.
#[derive(Clone)]
pub struct Inventory {
    records: Arc<Mutex<Records>>,
    /// Bumped on every change, so waiters need no polling.
    changes: Arc<watch::Sender<u64>>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory {
            records: Arc::default(),
            changes: Arc::new(watch::channel(0).0),
        }
    }
}

impl Inventory {
    /// Every live cluster and the last [`DELETED_KEPT`] deleted ones, in creation order.
    pub fn all(&self) -> Vec<CloudCluster> {
        let records = self.records.lock();
        let mut all: Vec<_> = records
            .deleted
            .iter()
            .chain(&records.live)
            .cloned()
            .collect();
        all.sort_by_key(|c| c.created);
        all
    }

    /// Clusters not yet deleted.
    pub fn live(&self) -> Vec<CloudCluster> {
        self.records.lock().live.clone()
    }

    /// How many clusters were ever created, including those no longer remembered.
    pub fn created_total(&self) -> u64 {
        self.records.lock().created_total
    }

    /// The live cluster with this identity, if any.
    pub fn find_live(&self, project: &str, location: &str, name: &str) -> Option<CloudCluster> {
        self.records
            .lock()
            .live
            .iter()
            .find(|c| c.project == project && c.location == location && c.name == name)
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
        let mut records = self.records.lock();
        records.live.push(cluster);
        records.created_total += 1;
        drop(records);
        self.changes.send_modify(|n| *n += 1);
    }

    pub(crate) fn record_resized(&self, project: &str, location: &str, name: &str, nodes: u32) {
        self.update_live(project, location, name, |c| c.nodes = nodes);
    }

    pub(crate) fn record_deleted(&self, project: &str, location: &str, name: &str) {
        let mut records = self.records.lock();
        let Some(index) = records.position(project, location, name) else {
            return;
        };
        let mut cluster = records.live.remove(index);
        cluster.deleted = Some(Utc::now());
        if records.deleted.len() == DELETED_KEPT {
            records.deleted.pop_front();
        }
        records.deleted.push_back(cluster);
        drop(records);
        self.changes.send_modify(|n| *n += 1);
    }

    fn update_live(
        &self,
        project: &str,
        location: &str,
        name: &str,
        change: impl FnOnce(&mut CloudCluster),
    ) {
        let mut records = self.records.lock();
        if let Some(index) = records.position(project, location, name) {
            change(&mut records.live[index]);
            drop(records);
            self.changes.send_modify(|n| *n += 1);
        }
    }
}

impl Records {
    fn position(&self, project: &str, location: &str, name: &str) -> Option<usize> {
        self.live
            .iter()
            .position(|c| c.project == project && c.location == location && c.name == name)
    }
}
