//! Killing and restarting the provisioner or the runner in the middle of a lifecycle neither
//! duplicates work (no second Job, no second cloud cluster) nor loses the run; with lost races
//! (injected 409s) on top, the phase still only moves forward, to exactly one end.

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::watcher;
use tcctl::suite::Component;
use testcluster_api::v1 as api;
use testcluster_resources::{Phase, TestClusterGKE};

use crate::support::{
    NAMESPACE, TIMEOUT, job_request, phase_of, start_with_cluster_create, until_phase,
};

#[tokio::test]
async fn restarting_provisioner_and_runner_mid_run_duplicates_nothing() {
    // A slow cloud, so that the provisioner is restarted while the cluster is being created.
    let mut env = start_with_cluster_create(Duration::from_secs(2)).await;
    // The job runs long enough for the runner to be restarted while it does.
    let created = env
        .create(job_request(
            "restarted",
            2,
            &["sh", "-c", "sleep 2; echo survived"],
        ))
        .await;
    let mut stream = env.watch(&created.name, &created.resource_version).await;

    let provisioning = until_phase(&mut stream, api::Phase::Provisioning).await;
    assert_eq!(phase_of(&provisioning), api::Phase::Provisioning);
    env.suite
        .kill_and_restart(Component::Provisioner)
        .await
        .expect("provisioner restarts");
    let running = until_phase(&mut stream, api::Phase::Running).await;
    env.suite
        .kill_and_restart(Component::Runner)
        .await
        .expect("runner restarts");
    let done = until_phase(&mut stream, api::Phase::Succeeded).await;
    assert_eq!(phase_of(&done), api::Phase::Succeeded, "{done:?}");
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(status.job.as_ref().and_then(|job| job.exit_code), Some(0));

    // The same cloud cluster throughout, and exactly one ever created.
    let cluster_name = status.cluster_name.clone();
    let provisioning_name = provisioning.status.unwrap_or_default().cluster_name;
    if !provisioning_name.is_empty() {
        assert_eq!(provisioning_name, cluster_name);
    }
    env.wait_cloud_cluster_deleted(&cluster_name).await;
    let created_clusters = env.suite.simulator().inventory().all();
    assert_eq!(created_clusters.len(), 1, "{created_clusters:?}");

    // One Job, the one that was running before the restart.
    let client = env.suite.client().await.expect("client");
    let jobs: Api<Job> = Api::namespaced(client, NAMESPACE);
    let jobs = jobs.list(&ListParams::default()).await.expect("jobs").items;
    assert_eq!(
        jobs.len(),
        1,
        "{:?}",
        jobs.iter().map(|j| &j.metadata.name).collect::<Vec<_>>()
    );
    let running_job = running
        .status
        .unwrap_or_default()
        .job
        .unwrap_or_default()
        .name;
    if !running_job.is_empty() {
        assert_eq!(jobs[0].metadata.name.as_deref(), Some(running_job.as_str()));
    }
}

/// Where a phase stands in a run, for checking that phases only move forward.
fn rank(phase: Phase) -> u8 {
    match phase {
        Phase::Pending => 0,
        Phase::Provisioning => 1,
        Phase::Ready => 2,
        Phase::Running => 3,
        Phase::Succeeded | Phase::Failed | Phase::Error | Phase::Expired => 4,
        Phase::Deleting => 5,
    }
}

#[tokio::test]
async fn under_conflicts_and_restarts_the_phase_only_moves_forward_to_one_end() {
    let mut env = start_with_cluster_create(Duration::from_secs(1)).await;
    let client = env.suite.client().await.expect("client");
    let resources: Api<TestClusterGKE> = Api::namespaced(client, NAMESPACE);
    // Every phase every write leaves behind, straight from the API server's watch.
    let recorded = {
        let config = watcher::Config::default().fields("metadata.name=conflicted");
        let mut events = watcher::watcher(resources.clone(), config).boxed();
        tokio::spawn(async move {
            let mut phases: Vec<Phase> = Vec::new();
            while let Some(event) = events.try_next().await.expect("watch") {
                let (watcher::Event::Apply(object) | watcher::Event::InitApply(object)) = event
                else {
                    continue;
                };
                let phase = object.status.and_then(|status| status.phase);
                if let Some(phase) = phase.filter(|phase| phases.last() != Some(phase)) {
                    phases.push(phase);
                }
                if object.metadata.deletion_timestamp.is_some() {
                    break;
                }
            }
            phases
        })
    };

    // A third of all updates and patches, from every service, lose a race.
    env.suite.simulator().api().faults().set_conflict_rate(333);
    let created = env
        .create(job_request(
            "conflicted",
            1,
            &["sh", "-c", "sleep 1; echo done"],
        ))
        .await;
    let mut stream = env.watch(&created.name, &created.resource_version).await;
    until_phase(&mut stream, api::Phase::Provisioning).await;
    env.suite
        .kill_and_restart(Component::Provisioner)
        .await
        .expect("provisioner restarts");
    until_phase(&mut stream, api::Phase::Running).await;
    env.suite
        .kill_and_restart(Component::Runner)
        .await
        .expect("runner restarts");
    let done = until_phase(&mut stream, api::Phase::Succeeded).await;
    let cluster_name = done.status.clone().unwrap_or_default().cluster_name;
    env.wait_cloud_cluster_deleted(&cluster_name).await;
    env.suite.simulator().api().faults().clear();

    // Deleting ends the recording.
    env.broker()
        .delete_test_cluster(api::DeleteTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: created.name.clone(),
        })
        .await
        .expect("delete");
    let phases = tokio::time::timeout(TIMEOUT, recorded)
        .await
        .expect("the recording ends with the deletion")
        .expect("recording");
    assert!(
        phases.windows(2).all(|pair| rank(pair[0]) <= rank(pair[1])),
        "a phase moved back: {phases:?}"
    );
    let ends: Vec<Phase> = phases.iter().copied().filter(|p| p.is_terminal()).collect();
    assert_eq!(ends, [Phase::Succeeded], "{phases:?}");
    assert!(phases.contains(&Phase::Running), "{phases:?}");
}
