//! Simulated Config Connector. (Being implemented: see `ConfigConnector::start`.)

use std::time::Duration;

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
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        ConnectorConfig {
            cluster_create: Duration::from_millis(300),
            node_pool_create: Duration::from_millis(200),
            other_create: Duration::from_millis(50),
            delete: Duration::from_millis(100),
        }
    }
}

/// The running Config Connector controllers. Dropping it stops them.
pub struct ConfigConnector {}

impl ConfigConnector {
    /// Installs the Config Connector CRDs through `client` and starts a controller per kind.
    pub async fn start(
        _client: kube::Client,
        _cloud: Cloud,
        _config: ConnectorConfig,
    ) -> anyhow::Result<ConfigConnector> {
        Ok(ConfigConnector {})
    }
}
