//! Composition of the whole simulated management cluster.

use std::path::Path;

use crate::admin::FaultSwitches;
use crate::apiserver::{ApiServer, ApiServerConfig};
use crate::cloud::connector::{ConfigConnector, ConnectorConfig};
use crate::cloud::gke::{GkeConfig, GkeServer};
use crate::cloud::{Cloud, Inventory, ZoneFaults};
use crate::workloads::{ApiServerAccess, WorkloadConfig, Workloads};

/// How to start the simulator.
#[derive(Clone, Debug, Default)]
pub struct SimConfig {
    /// Also serve the management API over plain HTTP without authentication (see
    /// [`ApiServerConfig::plain_http`]).
    pub plain_http: bool,
    /// How long the management API server keeps Events (see [`ApiServerConfig::event_ttl`]).
    pub event_ttl: Option<std::time::Duration>,
    pub connector: ConnectorConfig,
    pub gke: GkeConfig,
    pub workloads: WorkloadConfig,
    /// Also run workloads in every test cluster (controllers, Services, a kubelet; images mapped
    /// as in `workloads`), so that what is installed there runs and its Services answer the
    /// test cluster's service proxy. Off by default: each test cluster then costs a kubelet's
    /// watches.
    pub test_cluster_workloads: bool,
}

/// A running simulator: the management cluster's API server plus the cloud and workloads behind it.
/// Dropping it stops everything, test clusters and container processes included.
pub struct Simulator {
    // Field order is drop order: controllers stop before the servers they talk to.
    _connector: ConfigConnector,
    workloads: Workloads,
    gke: GkeServer,
    cloud: Cloud,
    api: ApiServer,
}

impl Simulator {
    /// Starts everything on free loopback ports.
    pub async fn start(config: SimConfig) -> anyhow::Result<Simulator> {
        let api = ApiServer::start(ApiServerConfig {
            name: "sim".into(),
            plain_http: config.plain_http,
            event_ttl: config.event_ttl,
            ..ApiServerConfig::default()
        })
        .await?;
        let cloud = if config.test_cluster_workloads {
            Cloud::with_test_cluster_workloads(config.workloads.clone())
        } else {
            Cloud::default()
        };
        let api_access = ApiServerAccess::of(&api);
        let workloads = Workloads::start(
            api.internal_client(),
            api.pod_logs().clone(),
            WorkloadConfig {
                api_server: config.workloads.api_server.or(api_access),
                ..config.workloads
            },
        )?;
        api.set_service_resolver(workloads.service_resolver());
        let connector =
            ConfigConnector::start(api.internal_client(), cloud.clone(), config.connector).await?;
        let gke = GkeServer::start(cloud.clone(), config.gke).await?;
        Ok(Simulator {
            _connector: connector,
            workloads,
            gke,
            cloud,
            api,
        })
    }

    /// The management cluster's API server: kubeconfig, clients, API faults, request counters.
    pub fn api(&self) -> &ApiServer {
        &self.api
    }

    /// The Job, ReplicaSet and Deployment controllers, the endpoints controller, the proxy and the
    /// kubelet.
    pub fn workloads(&self) -> &Workloads {
        &self.workloads
    }

    /// The cloud: live test clusters and identity tokens.
    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    /// Every cloud cluster created and deleted.
    pub fn inventory(&self) -> &Inventory {
        self.cloud.inventory()
    }

    /// Per-zone stockouts, quota and slow operations.
    pub fn zone_faults(&self) -> &ZoneFaults {
        self.cloud.faults()
    }

    /// The switches of every fault, for [`crate::admin`]: its HTTP endpoint and its flags.
    pub fn fault_switches(&self) -> FaultSwitches {
        FaultSwitches {
            cloud: self.cloud.clone(),
            api: self.api.faults().clone(),
            token: self.api.admin_token().to_owned(),
        }
    }

    /// The GKE REST API fake and the metadata server.
    pub fn gke(&self) -> &GkeServer {
        &self.gke
    }

    /// Writes the management cluster's kubeconfig (HTTPS, admin token) to `path`, readable only by
    /// its owner since it holds a credential.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        crate::private_file::write(path, self.api.kubeconfig_yaml().as_bytes())?;
        Ok(())
    }
}
