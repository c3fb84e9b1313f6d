//! The simulated cloud: the clusters it runs, its zone faults, its inventory, and the APIs that
//! reach it (Config Connector in the management cluster, the GKE REST API).
//!
//! There is one cloud, seen through both APIs, as in reality:
//!
//! - [`model`]: every cluster and node pool as GKE knows it ([`ClusterRecord`]: status, endpoint,
//!   CA, versions, labels, node pools, `etag`), owned by [`Cloud`] and written by both the Config
//!   Connector controllers and the GKE REST handlers. What one API creates, changes or deletes, the
//!   other shows.
//! - Every running cluster is also a separate simulated API server (the [`TestCluster`]) holding
//!   one Node per node of its node pools.
//! - [`Inventory`] records every cluster ever created and deleted, so tests can prove nothing
//!   leaked.
//! - [`Cloud::watch_clusters`] tells who cares (Config Connector's controllers) which cluster
//!   changed, so that a change made through one API is noticed through the other without polling.

pub mod connector;
mod faults;
pub mod gke;
mod inventory;
pub mod model;
mod test_cluster;

pub use faults::{CloudFailure, ZoneFault, ZoneFaults, vcpus_of};
pub use inventory::{CloudCluster, Inventory, Provider};
pub use model::{ClusterRecord, ClusterStatus, PoolRecord, PoolStatus};
pub use test_cluster::TestCluster;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use parking_lot::{Mutex, RwLock};
use serde_json::Map;
use tokio::sync::broadcast;

use crate::workloads::WorkloadConfig;
use model::ClusterTable;

/// Cluster changes a slow watcher may fall behind by before it misses some (it then learns of
/// them at its next resync).
const CHANGE_BACKLOG: usize = 4096;

/// Identifies a cloud cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterKey {
    pub project: String,
    pub location: String,
    pub name: String,
}

impl std::fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "projects/{}/locations/{}/clusters/{}",
            self.project, self.location, self.name
        )
    }
}

/// Errors from cloud operations.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("Already exists: {0}.")]
    AlreadyExists(ClusterKey),
    #[error("Not found: {0}.")]
    NotFound(ClusterKey),
    #[error("{}", .0.message())]
    Failed(CloudFailure),
    #[error("starting the test cluster's API server: {0}")]
    Start(#[from] anyhow::Error),
}

/// The shared cloud. Cheap to clone.
#[derive(Clone, Default)]
pub struct Cloud {
    inner: Arc<CloudInner>,
}

struct CloudInner {
    inventory: Inventory,
    faults: ZoneFaults,
    /// The GKE view of every cluster the cloud knows, running or not.
    records: Mutex<ClusterTable>,
    /// The running control planes. Never locked while `records` is being taken.
    clusters: Mutex<HashMap<ClusterKey, Arc<TestCluster>>>,
    /// The key of every cluster whose record changed.
    changes: broadcast::Sender<ClusterKey>,
    /// Tokens handed out by the metadata server; every test cluster accepts them.
    identity_tokens: RwLock<Vec<String>>,
    /// How each test cluster runs workloads, if it does.
    test_cluster_workloads: Option<WorkloadConfig>,
}

impl Default for CloudInner {
    fn default() -> Self {
        CloudInner {
            inventory: Inventory::default(),
            faults: ZoneFaults::default(),
            records: Mutex::default(),
            clusters: Mutex::default(),
            changes: broadcast::channel(CHANGE_BACKLOG).0,
            identity_tokens: RwLock::default(),
            test_cluster_workloads: None,
        }
    }
}

impl Cloud {
    /// A cloud whose test clusters run workloads as `config` says (each with its own API server
    /// address in place of `config.api_server`).
    pub fn with_test_cluster_workloads(config: WorkloadConfig) -> Cloud {
        Cloud {
            inner: Arc::new(CloudInner {
                test_cluster_workloads: Some(config),
                ..CloudInner::default()
            }),
        }
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inner.inventory
    }

    pub fn faults(&self) -> &ZoneFaults {
        &self.inner.faults
    }

    /// The cluster as GKE shows it now, running or not.
    pub fn cluster_record(&self, key: &ClusterKey) -> Option<ClusterRecord> {
        self.inner.records.lock().get(key).cloned()
    }

    /// Runs `change` on the cluster records under their lock (never across an await). Every
    /// record it changed gets a new `etag`, and the watchers hear of it.
    pub fn with_clusters<R>(&self, change: impl FnOnce(&mut ClusterTable) -> R) -> R {
        let (result, changed) = {
            let mut records = self.inner.records.lock();
            let result = change(&mut records);
            (result, records.settle())
        };
        for key in changed {
            // Nobody listening is fine: the change is in the records all the same.
            let _ = self.inner.changes.send(key);
        }
        result
    }

    /// The keys of clusters whose record changes from now on (created, changed, deleted).
    pub fn watch_clusters(&self) -> broadcast::Receiver<ClusterKey> {
        self.inner.changes.subscribe()
    }

    /// Starts the cluster's control plane (a test cluster with no nodes yet) and fills in its
    /// endpoint and CA. A cluster no API announced gets a record of its own, RUNNING. Fails if a
    /// live cluster has the same identity.
    pub async fn create_cluster(
        &self,
        key: &ClusterKey,
        provider: Provider,
    ) -> Result<Arc<TestCluster>, CloudError> {
        if self.cluster(key).is_some() {
            return Err(CloudError::AlreadyExists(key.clone()));
        }
        let cluster =
            Arc::new(TestCluster::start(key, self.inner.test_cluster_workloads.clone()).await?);
        for token in self.inner.identity_tokens.read().iter() {
            cluster.api().add_token(token.clone());
        }
        {
            let mut clusters = self.inner.clusters.lock();
            if clusters.contains_key(key) {
                return Err(CloudError::AlreadyExists(key.clone()));
            }
            clusters.insert(key.clone(), cluster.clone());
        }
        let (endpoint, ca) = (cluster.endpoint(), cluster.api().ca_pem().to_owned());
        self.with_clusters(|records| {
            if !records.contains_key(key) {
                let mut record = ClusterRecord::new(key, Map::new(), Vec::new());
                record.status = ClusterStatus::Running;
                records.insert(record);
            }
            if let Some(record) = records.get_mut(key) {
                record.endpoint = Some(endpoint);
                record.ca_pem = Some(ca);
            }
        });
        self.inner.inventory.record_created(CloudCluster {
            project: key.project.clone(),
            location: key.location.clone(),
            name: key.name.clone(),
            provider,
            nodes: 0,
            created: Utc::now(),
            deleted: None,
        });
        Ok(cluster)
    }

    /// The live cluster with this identity.
    pub fn cluster(&self, key: &ClusterKey) -> Option<Arc<TestCluster>> {
        self.inner.clusters.lock().get(key).cloned()
    }

    /// Sets a node pool's size (creating or removing Nodes) and records the new node count. A pool
    /// the cluster's record does not have yet is added to it, RUNNING.
    pub async fn resize_pool(
        &self,
        key: &ClusterKey,
        pool: &str,
        machine_type: &str,
        nodes: u32,
    ) -> Result<(), CloudError> {
        let cluster = self
            .cluster(key)
            .ok_or_else(|| CloudError::NotFound(key.clone()))?;
        let total = cluster.resize_pool(pool, machine_type, nodes).await?;
        self.with_clusters(|records| {
            let Some(record) = records.get_mut(key) else {
                return;
            };
            match record.pool_mut(pool) {
                Some(found) => found.node_count = nodes,
                None => {
                    let mut added = PoolRecord::new(pool, machine_type, nodes, Map::new());
                    added.status = PoolStatus::Running;
                    added.node_count = nodes;
                    added.version.clone_from(&record.master_version);
                    record.pools.push(added);
                }
            }
        });
        self.inner
            .inventory
            .record_resized(&key.project, &key.location, &key.name, total);
        Ok(())
    }

    /// Stops the cluster's API server, forgets its record and records the deletion. NotFound if
    /// the cloud knew neither (a cluster that failed to create has a record only).
    pub fn delete_cluster(&self, key: &ClusterKey) -> Result<(), CloudError> {
        let cluster = self.inner.clusters.lock().remove(key);
        let record = self.with_clusters(|records| records.remove(key));
        if cluster.is_none() && record.is_none() {
            return Err(CloudError::NotFound(key.clone()));
        }
        if let Some(cluster) = cluster {
            cluster.api().shutdown();
            self.inner
                .inventory
                .record_deleted(&key.project, &key.location, &key.name);
        }
        Ok(())
    }

    /// Mints a cloud access token (as the GCE metadata server does) that every test cluster,
    /// present and future, accepts.
    pub fn issue_identity_token(&self) -> String {
        let token = format!("ya29.sim-{}", uuid::Uuid::new_v4().simple());
        self.inner.identity_tokens.write().push(token.clone());
        for cluster in self.inner.clusters.lock().values() {
            cluster.api().add_token(token.clone());
        }
        token
    }
}
