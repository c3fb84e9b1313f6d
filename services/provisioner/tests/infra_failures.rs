//! Infrastructure failures end a run: a zone stockout, a quota refusal or a provisioning timeout
//! puts the `TestClusterGKE` in phase Error with a machine-readable `status.error`, and the cloud
//! resources created so far are deleted. Also: a spec applied with kubectl is refused for what the
//! broker would refuse.

mod common;

use std::time::Duration;

use common::*;
use kube::api::DeleteParams;

const ZONE: &str = "europe-west2-b";

#[tokio::test]
async fn a_zone_stockout_ends_the_run_and_deletes_what_was_created() {
    let ns = "stockout";
    let (env, api) = Env::in_namespace(Duration::from_millis(100), ns).await;
    env.sim.zone_faults().set_stockout(ZONE, true);
    let provisioner = env.provisioner().await;
    create(&api, &seed_example(ns, "scarce", 1)).await;

    let failure = env.wait_error_and_teardown(&api, ns, "scarce").await;
    let Failure {
        status,
        cluster_name,
        error,
    } = &failure;
    assert_eq!(error.code, "ZoneStockout");
    assert!(error.retryable, "another zone may have capacity");
    let key = format!("ContainerCluster:{ns}/{cluster_name}: ");
    assert!(error.message.starts_with(&key), "{}", error.message);
    assert!(
        error.message.contains(
            "Try a different location, or try again later: Google Compute Engine does not have \
             enough resources available to fulfill request: europe-west2-b."
        ),
        "{}",
        error.message
    );
    failure.assert_ready_false("DependencyFailed");
    assert!(
        status
            .phase_timestamps
            .as_ref()
            .is_some_and(|t| t.finish_time.is_some()),
        "finishTime is set"
    );
    let event = wait_for_warning(&env.client, ns, "scarce", "ZoneStockout").await;
    assert_eq!(event.note.as_deref(), Some(error.message.as_str()));
    // Nothing was ever created in the cloud: the zone had no capacity.
    assert!(env.sim.inventory().all().is_empty());
    provisioner.stop().await;
}

#[tokio::test]
async fn a_quota_refusal_ends_the_run() {
    let ns = "quota";
    let (env, api) = Env::in_namespace(Duration::from_millis(100), ns).await;
    // Two vCPUs: the cluster itself (its default pool is removed) fits, its first node pool of
    // two n1-standard-4 machines does not.
    env.sim.zone_faults().set_cpu_quota(ZONE, Some(2.0));
    let provisioner = env.provisioner().await;
    create(&api, &seed_example(ns, "greedy", 2)).await;

    let failure = env.wait_error_and_teardown(&api, ns, "greedy").await;
    let Failure {
        cluster_name,
        error,
        ..
    } = &failure;
    assert_eq!(error.code, "QuotaExceeded");
    assert!(!error.retryable, "the quota stays until someone raises it");
    assert!(
        error.message.starts_with(&format!(
            "ContainerNodePool:{ns}/{cluster_name}: Update call failed: error applying desired \
             state: summary: error creating NodePool: googleapi: Error 403: Insufficient \
             regional quota to satisfy request: resource \"CPUS\": request requires '8.0' and \
             is short '6.0'."
        )),
        "{}",
        error.message
    );
    failure.assert_ready_false("DependencyFailed");
    wait_for_warning(&env.client, ns, "greedy", "QuotaExceeded").await;
    // The cluster had been created; it is deleted with the rest.
    let all = env.sim.inventory().all();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(&all[0].name, cluster_name);
    provisioner.stop().await;
}

#[tokio::test]
async fn dependencies_not_ready_in_time_end_the_run() {
    // The cluster takes far longer than the provisioner waits.
    let ns = "timeout";
    let (env, api) = Env::in_namespace(Duration::from_secs(4), ns).await;
    let provisioner = env
        .provisioner_with(testcluster_provisioner::Settings {
            provision_timeout: Duration::from_secs(2),
            ..env.settings()
        })
        .await;
    create(&api, &seed_example(ns, "slow", 1)).await;

    let failure = env.wait_error_and_teardown(&api, ns, "slow").await;
    let Failure {
        status,
        cluster_name,
        error,
    } = &failure;
    assert_eq!(error.code, "ProvisioningTimeout");
    assert!(error.retryable);
    assert!(
        error
            .message
            .starts_with("Dependencies not ready after 2s: "),
        "{}",
        error.message
    );
    // The cluster (created only after its network) and its node pool (created only after the
    // cluster) cannot be ready yet; each is named with its Ready reason.
    for kind in ["ContainerCluster", "ContainerNodePool"] {
        assert!(
            error
                .message
                .contains(&format!("{kind}:{ns}/{cluster_name} (")),
            "{}",
            error.message
        );
    }
    failure.assert_ready_false("ProvisioningTimeout");
    // Woken by a timer set from provisioningTime, not by a dependency change or a poll.
    let times = status.phase_timestamps.clone().expect("phaseTimestamps");
    let provisioning = times.provisioning_time.expect("provisioningTime").0;
    let finished = times.finish_time.expect("finishTime").0;
    let waited = finished.duration_since(provisioning).as_secs_f64();
    assert!(
        (2.0..4.0).contains(&waited),
        "ended {waited}s after provisioning"
    );
    wait_for_event(&env.client, ns, "slow", "ProvisioningTimeout").await;
    provisioner.stop().await;
}

#[tokio::test]
async fn a_kubectl_spec_is_refused_for_what_the_broker_refuses() {
    let ns = "strict";
    let (env, api) = Env::in_namespace(Duration::from_millis(100), ns).await;
    let provisioner = env.provisioner().await;
    let mut tc = seed_example(ns, "sloppy", 1);
    let runner = runner_of(&mut tc);
    runner.image = None;
    runner.command = Vec::new();
    runner.env = serde_json::from_value(serde_json::json!([
        {"name": "KUBECONFIG", "value": "/elsewhere"},
        {"name": "A", "value": "1"},
        {"name": "A", "value": "2"},
    ]))
    .expect("env");
    create(&api, &tc).await;

    let status = wait_refused(
        &api,
        "sloppy",
        "spec.jobSpec.runner.image: the runner container needs an image; \
         spec.jobSpec.runner.env[0].name: KUBECONFIG is set by the runner to reach the test \
         cluster; spec.jobSpec.runner.env[2].name: A is set twice",
    )
    .await;
    assert_eq!(status.cluster_name, None, "nothing was provisioned");
    env.assert_nothing_created(ns).await;
    api.delete("sloppy", &DeleteParams::default())
        .await
        .expect("delete");
    provisioner.stop().await;
}
