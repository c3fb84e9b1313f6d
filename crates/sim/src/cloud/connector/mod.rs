//! Simulated Config Connector.
//!
//! [`ConfigConnector::start`] installs the real Config Connector CRDs into the management cluster
//! and runs one controller per kind (`ContainerCluster`, `ContainerNodePool`, `ComputeNetwork`,
//! `ComputeSubnetwork`, `IAMServiceAccount`, `IAMPolicyMember`, `IAMServiceAccountKey`). They behave
//! as Config Connector does, as far as a client can see:
//!
//! - The finalizers `cnrm.cloud.google.com/finalizer` and `cnrm.cloud.google.com/deletion-defender`
//!   are added before anything is created in the cloud, and removed once the cloud resource is gone
//!   (or kept, with `cnrm.cloud.google.com/deletion-policy: abandon`).
//! - Status carries one `Ready` condition with Config Connector's reasons and messages
//!   (`DependencyNotReady` "reference ContainerCluster ns/name is not ready", `Updating`,
//!   `UpToDate`, `UpdateFailed` "Update call failed: ...", `Deleting`, `DeleteFailed`) and
//!   `observedGeneration`. Failures are also recorded as Warning events.
//! - References (`clusterRef`, `networkRef`, `subnetworkRef`, service account references) are
//!   resolved in dependency order; a change of the referenced object re-triggers its dependents.
//! - A ContainerCluster creates a cloud cluster: a record in the cloud's one cluster model
//!   ([`crate::cloud::model`], PROVISIONING from the create call on, with the spec's location,
//!   labels as `resourceLabels` plus `managed-by-cnrm`, `ipAllocationPolicy`, `releaseChannel`,
//!   network and node config), then a test cluster ([`Cloud::create_cluster`]) whose endpoint and
//!   CA land in `status.endpoint` and `status.observedState.masterAuth`. Zone faults surface with
//!   GKE's texts as Config Connector wraps them, and are retried with backoff. ContainerNodePools
//!   add node pools and their Nodes to it. The GKE REST API lists and gets them like its own.
//! - Deleting a ContainerCluster shows the cluster STOPPING to the GKE API for the delete delay,
//!   then gone (404).
//! - The status follows the cloud: when a cluster changes through the GKE API, the cloud notifies
//!   the controllers ([`Cloud::watch_clusters`]), which reconcile the objects at once instead of
//!   at the 10-minute resync. A Ready object whose cluster still exists reports what the cloud
//!   shows now (`masterVersion`, `labelFingerprint`, a pool's `observedState.version`). One whose
//!   cluster was deleted out of band is created again, as the real Config Connector corrects
//!   drift: `Ready` goes False with reason `Updating` meanwhile, then back to `UpToDate` with the
//!   new cluster's endpoint and CA; its node pools follow once it is Ready again. Labels are
//!   applied at creation only.

mod actions;
mod container;
mod crds;
mod kinds;
mod reconcile;
mod status;
mod triggers;

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Cloud;

/// How long simulated Config Connector operations take.
#[derive(Clone, Debug)]
pub struct ConnectorConfig {
    /// Time for a ContainerCluster to be created (before zone faults' extra delay).
    pub cluster_create: Duration,
    /// Time for a ContainerNodePool to be created.
    pub node_pool_create: Duration,
    /// Time for networks, subnetworks and IAM objects to be created.
    pub other_create: Duration,
    /// Time for any cloud resource to be deleted.
    pub delete: Duration,
    /// Longest wait between retries of a failed create or update. Config Connector backs off
    /// exponentially for minutes; the simulator caps it so that a cleared fault is noticed soon.
    pub max_retry_backoff: Duration,
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        ConnectorConfig {
            cluster_create: Duration::from_millis(300),
            node_pool_create: Duration::from_millis(200),
            other_create: Duration::from_millis(50),
            delete: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(2),
        }
    }
}

/// The running Config Connector controllers. Dropping it stops them.
pub struct ConfigConnector {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl ConfigConnector {
    /// Installs the Config Connector CRDs through `client` and starts a controller per kind.
    pub async fn start(
        client: kube::Client,
        cloud: Cloud,
        config: ConnectorConfig,
    ) -> anyhow::Result<ConfigConnector> {
        crds::install(&client).await?;
        let shutdown = CancellationToken::new();
        let tasks = kinds::Kind::ALL
            .into_iter()
            .map(|kind| {
                reconcile::spawn(
                    kind,
                    client.clone(),
                    cloud.clone(),
                    config.clone(),
                    shutdown.clone(),
                )
            })
            .collect();
        Ok(ConfigConnector { shutdown, tasks })
    }
}

impl Drop for ConfigConnector {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // Aborting also drops the controllers' in-flight reconciles, which may be sleeping through
        // a simulated cloud operation.
        for task in &self.tasks {
            task.abort();
        }
    }
}
