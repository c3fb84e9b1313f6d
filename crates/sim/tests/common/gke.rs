//! The GKE REST fake through the official client, `google-cloud-container-v1`.

use std::time::{Duration, Instant};

use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model::{Operation, operation};
use google_cloud_gax::retry_policy::NeverRetry;

/// Bound on waiting for an operation; the defaults finish within a second.
pub const WAIT: Duration = Duration::from_secs(20);

/// A client of a GKE API fake at `endpoint` (e.g. `Simulator::gke().endpoint()`), anonymous and
/// without retries (errors show at once).
pub async fn gke_client(endpoint: String) -> ClusterManager {
    ClusterManager::builder()
        .with_endpoint(endpoint)
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .with_retry_policy(NeverRetry)
        .build()
        .await
        .expect("GKE client")
}

/// Polls the operation (`parent` is `projects/P/locations/L`) until DONE, as every GKE client does.
pub async fn wait_done(client: &ClusterManager, parent: &str, op: &Operation) -> Operation {
    let deadline = Instant::now() + WAIT;
    loop {
        let current = client
            .get_operation()
            .set_name(format!("{parent}/operations/{}", op.name))
            .send()
            .await
            .expect("get operation");
        if current.status == operation::Status::Done {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "operation {} still {:?}",
            op.name,
            current.status
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
