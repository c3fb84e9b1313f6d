//! An infrastructure failure ends a run instead of hanging it: with the zone out of capacity, the
//! broker's watch ends in PHASE_ERROR with a machine-readable error, and no cloud cluster is left.

use testcluster_api::v1 as api;

use crate::support::{HELLO, TIMEOUT, job_request, start};

/// The provisioner's default zone, where requests without a location go.
const ZONE: &str = "europe-west2-b";

#[tokio::test]
async fn a_zone_stockout_ends_the_run_in_error_and_leaves_nothing() {
    let env = start().await;
    env.suite.simulator().zone_faults().set_stockout(ZONE, true);
    let created = env.create(job_request("stocked-out", 1, HELLO)).await;
    // Ends only because the watch ends after a terminal phase (follow is bounded by TIMEOUT).
    let run = env.follow(&created.name, &created.resource_version).await;

    assert_eq!(
        run.phases().last(),
        Some(&api::Phase::Error),
        "{:?}",
        run.phases()
    );
    assert!(
        !run.phases().contains(&api::Phase::Running),
        "the job never ran: {:?}",
        run.phases()
    );
    let status = run.status();
    let error = status.error.clone().expect("status.error");
    assert_eq!(error.code, "ZoneStockout");
    assert!(error.retryable);
    assert!(
        error.message.contains(
            "Google Compute Engine does not have enough resources available to fulfill request: \
             europe-west2-b."
        ),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .starts_with(&format!("ContainerCluster:{}/", created.namespace)),
        "{}",
        error.message
    );

    // The cloud never had the cluster, and the Config Connector objects are deleted.
    let inventory = env.suite.simulator().inventory();
    assert!(
        inventory.wait_until_none_live(TIMEOUT).await.is_ok(),
        "live clusters: {:?}",
        inventory.live()
    );
    assert!(
        inventory
            .all()
            .iter()
            .all(|c| c.name != status.cluster_name),
        "{:?}",
        inventory.all()
    );
    env.wait_no_config_connector_objects().await;
}
