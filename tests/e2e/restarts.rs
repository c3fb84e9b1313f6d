//! Killing and restarting the provisioner or the runner in the middle of a lifecycle neither
//! duplicates work (no second Job, no second cloud cluster) nor loses the run.

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::ListParams;
use tcctl::suite::Component;
use testcluster_api::v1 as api;

use std::time::Duration;

use crate::support::{NAMESPACE, job_request, phase_of, start_with_cluster_create, until_phase};

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
