//! The simulated cloud: the clusters it runs, its zone faults, its inventory, and the APIs that
//! reach it (Config Connector in the management cluster, the GKE REST API).
//!
//! Every cloud cluster is a separate simulated API server (the test cluster) holding one Node per
//! node of its node pools. Both providers create clusters through [`Cloud`], so the inventory sees
//! all of them.

pub mod connector;
mod faults;
pub mod gke;
mod inventory;
mod test_cluster;

pub use faults::{CloudFailure, ZoneFault, ZoneFaults, vcpus_of};
pub use inventory::{CloudCluster, Inventory, Provider};
pub use test_cluster::TestCluster;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use parking_lot::{Mutex, RwLock};

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

#[derive(Default)]
struct CloudInner {
    inventory: Inventory,
    faults: ZoneFaults,
    clusters: Mutex<HashMap<ClusterKey, Arc<TestCluster>>>,
    /// Tokens handed out by the metadata server; every test cluster accepts them.
    identity_tokens: RwLock<Vec<String>>,
}

impl Cloud {
    pub fn inventory(&self) -> &Inventory {
        &self.inner.inventory
    }

    pub fn faults(&self) -> &ZoneFaults {
        &self.inner.faults
    }

    /// Starts a test cluster with no nodes yet. Fails if a live cluster has the same identity.
    pub async fn create_cluster(
        &self,
        key: &ClusterKey,
        provider: Provider,
    ) -> Result<Arc<TestCluster>, CloudError> {
        if self.cluster(key).is_some() {
            return Err(CloudError::AlreadyExists(key.clone()));
        }
        let cluster = Arc::new(TestCluster::start(key).await?);
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

    /// Sets a node pool's size (creating or removing Nodes) and records the new node count.
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
        self.inner
            .inventory
            .record_resized(&key.project, &key.location, &key.name, total);
        Ok(())
    }

    /// Stops the cluster's API server and records the deletion.
    pub fn delete_cluster(&self, key: &ClusterKey) -> Result<(), CloudError> {
        let cluster = self
            .inner
            .clusters
            .lock()
            .remove(key)
            .ok_or_else(|| CloudError::NotFound(key.clone()))?;
        cluster.api().shutdown();
        self.inner
            .inventory
            .record_deleted(&key.project, &key.location, &key.name);
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
