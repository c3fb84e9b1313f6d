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
//! - A ContainerCluster creates a cloud cluster ([`Cloud::create_cluster`]): a test cluster whose
//!   endpoint and CA land in `status.endpoint` and `status.observedState.masterAuth`; zone faults
//!   surface with GKE's texts as Config Connector wraps them, and are retried with backoff.
//!   ContainerNodePools add Nodes to it.

mod actions;
mod crds;
mod kinds;
mod reconcile;
mod status;

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
