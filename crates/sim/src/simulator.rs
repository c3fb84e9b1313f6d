//! Composition of the whole simulated management cluster.

use crate::apiserver::{ApiServer, ApiServerConfig};

/// How to start the simulator.
#[derive(Clone, Debug, Default)]
pub struct SimConfig {}

/// A running simulator: the management cluster's API server plus the cloud and workloads behind it.
pub struct Simulator {
    api: ApiServer,
}

impl Simulator {
    pub async fn start(_config: SimConfig) -> anyhow::Result<Simulator> {
        let api = ApiServer::start(ApiServerConfig {
            name: "sim".into(),
            ..ApiServerConfig::default()
        })
        .await?;
        Ok(Simulator { api })
    }

    /// The management cluster's API server.
    pub fn api(&self) -> &ApiServer {
        &self.api
    }
}
