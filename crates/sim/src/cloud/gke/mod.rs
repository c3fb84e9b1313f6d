//! Simulated GKE REST API and GCE metadata server. (Being implemented.)

use super::Cloud;

/// How long simulated GKE operations take.
#[derive(Clone, Debug, Default)]
pub struct GkeConfig {}

/// The running GKE REST API fake (container v1 subset) and GCE metadata server.
pub struct GkeServer {}

impl GkeServer {
    pub async fn start(_cloud: Cloud, _config: GkeConfig) -> anyhow::Result<GkeServer> {
        Ok(GkeServer {})
    }

    /// Base URL for `google-cloud-container-v1`'s `with_endpoint`, e.g. `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        String::new()
    }

    /// `host:port` for `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        String::new()
    }
}
