//! Access to a test cluster, asked of the provisioner over internal gRPC.

use std::fmt;
use std::time::Duration;

use testcluster_api::internal::v1::GetClusterAccessRequest;
use testcluster_api::internal::v1::provisioner_service_client::ProvisionerServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;

/// How long one `GetClusterAccess` call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Credentials that reach one test cluster only. Holds a secret, so its `Debug` hides it.
#[derive(Clone)]
pub struct ClusterAccess {
    pub kubeconfig: String,
    pub cluster_name: String,
    pub location: String,
}

impl fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("kubeconfig", &"<redacted>")
            .field("cluster_name", &self.cluster_name)
            .field("location", &self.location)
            .finish()
    }
}

/// The provisioner's `ProvisionerService`, connected lazily: the runner starts (and keeps
/// reconciling everything else) while the provisioner is down.
#[derive(Clone)]
pub struct Provisioner {
    client: ProvisionerServiceClient<Channel>,
}

impl Provisioner {
    /// A client for `endpoint` (such as `http://127.0.0.1:50052`); nothing is dialled yet.
    pub fn new(endpoint: &str) -> Result<Provisioner, Error> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|source| Error::ProvisionerEndpoint {
                endpoint: endpoint.to_owned(),
                source,
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .connect_lazy();
        Ok(Provisioner {
            client: ProvisionerServiceClient::new(channel),
        })
    }

    /// Credentials for the test cluster of the `TestClusterGKE` `namespace/name`.
    pub async fn cluster_access(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ClusterAccess, Error> {
        let request = GetClusterAccessRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let response = self
            .client
            .clone()
            .get_cluster_access(request)
            .await
            .map_err(Error::from_access_status)?
            .into_inner();
        if response.kubeconfig.is_empty() {
            return Err(Error::EmptyAccess);
        }
        Ok(ClusterAccess {
            kubeconfig: response.kubeconfig,
            cluster_name: response.cluster_name,
            location: response.location,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_kubeconfig() {
        let access = ClusterAccess {
            kubeconfig: "token: s3cret".to_owned(),
            cluster_name: "c-abcde".to_owned(),
            location: "europe-west2-b".to_owned(),
        };
        let shown = format!("{access:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("c-abcde"));
    }

    #[test]
    fn a_bad_endpoint_is_refused() {
        assert!(matches!(
            Provisioner::new("not a uri"),
            Err(Error::ProvisionerEndpoint { .. })
        ));
    }
}
