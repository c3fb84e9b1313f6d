//! The runner against an in-process simulator over real HTTP, on test clusters left Ready as the
//! provisioner leaves them: Job shape, what the runner records, exit codes, restarts, stale reads.
//! No provisioner runs here, so the phase stays Ready: the runner never writes it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};
use testcluster_resources::lifecycle::job_outcome;
use testcluster_resources::{Phase, TestClusterGKE};

fn recorded(
    resource: Option<&TestClusterGKE>,
) -> Option<&testcluster_resources::TestClusterGKEStatus> {
    resource.and_then(|r| r.status.as_ref())
}

/// Waits until the runner recorded how the job of test cluster `name` ended, and returns it.
async fn until_finished(world: &World, name: &str) -> TestClusterGKE {
    let finished = |resource: Option<&TestClusterGKE>| {
        recorded(resource).is_some_and(|s| job_outcome(&s.job_conditions).is_some())
    };
    wait_for(&world.api(), name, finished).await
}

/// Whether the runner recorded the job as started.
fn job_recorded(resource: Option<&TestClusterGKE>) -> bool {
    recorded(resource).is_some_and(|s| s.job.as_ref().is_some_and(|j| j.name.is_some()))
}

/// The one condition the runner records when the job ended: (type, reason).
fn job_condition(status: &testcluster_resources::TestClusterGKEStatus) -> (String, String) {
    assert_eq!(
        status.job_conditions.len(),
        1,
        "{:?}",
        status.job_conditions
    );
    let condition = &status.job_conditions[0];
    assert_eq!(condition.status, "True");
    (condition.type_.clone(), condition.reason.clone())
}

#[tokio::test]
async fn a_job_runs_against_its_test_cluster_and_succeeds() {
    let world = World::start("runs").await;
    let cluster = world.cloud_cluster("t1-abcde", 3).await;
    world
        .ready_test_cluster(
            "t1",
            &cluster,
            &["sh", "-c", "echo hello-from-job; kubectl get nodes -o name"],
        )
        .await;
    let runner = start_runner(&world);

    let done = until_finished(&world, "t1").await;

    // The Job, as the contract has it.
    let job = world.api::<Job>().get("t1-runner").await.expect("job");
    assert_eq!(
        job.labels().get("clusters.ci.cilium.io/test-cluster"),
        Some(&"t1".to_owned())
    );
    let owner = &job.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("TestClusterGKE", "t1", Some(true))
    );
    let spec = job.spec.clone().expect("job spec");
    assert_eq!(
        (spec.backoff_limit, spec.active_deadline_seconds),
        (Some(0), Some(120))
    );
    let pod_spec = spec.template.spec.expect("pod spec");
    assert_eq!(pod_spec.restart_policy.as_deref(), Some("Never"));
    let container = &pod_spec.containers[0];
    assert_eq!(container.name, "runner");
    let env: Vec<(String, String)> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("KUBECONFIG", "/var/run/testcluster/kubeconfig"),
        ("CLUSTER_NAME", "t1-abcde"),
        ("CLUSTER_LOCATION", LOCATION),
        ("FROM_USER", "yes"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env, expected);
    let mounts: Vec<&str> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(mounts, ["/var/run/testcluster"]);
    let volumes = pod_spec.volumes.unwrap_or_default();
    assert_eq!(
        volumes[0]
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref()),
        Some("t1-kubeconfig"),
        "the provisioner's Secret"
    );

    // The outcome, next to the provisioner's fields, which the runner left alone.
    let status = done.status.expect("status");
    assert_eq!(
        status.phase,
        Some(Phase::Ready),
        "the phase is not the runner's"
    );
    assert_eq!(status.cluster_name.as_deref(), Some("t1-abcde"));
    assert_eq!(status.location.as_deref(), Some(LOCATION));
    assert_eq!(status.conditions.len(), 1);
    assert_eq!(
        job_condition(&status),
        ("Complete".to_owned(), "Completed".to_owned())
    );
    let job_status = status.job.expect("job status");
    assert_eq!(job_status.name.as_deref(), Some("t1-runner"));
    assert_eq!(job_status.exit_code, Some(0));
    assert_eq!(job_status.reason.as_deref(), Some("Completed"));
    assert!(job_status.completion_time.is_some());
    assert!(job_status.start_time.is_some());

    // The job really reached its test cluster, with the machine's kubectl.
    let pod = job_status.pod.expect("job.pod");
    let log = world
        .api::<Pod>()
        .logs(&pod, &LogParams::default())
        .await
        .expect("log");
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some("hello-from-job"));
    let listed: BTreeSet<String> = lines
        .map(|l| l.trim_start_matches("node/").to_owned())
        .collect();
    let nodes: BTreeSet<String> = cluster.node_names().into_iter().collect();
    assert_eq!(nodes.len(), 3);
    assert_eq!(listed, nodes, "log: {log}");

    // What `kubectl describe` shows.
    let events = world
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events");
    let reasons: BTreeSet<String> = events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("t1"))
        .filter_map(|e| e.reason.clone())
        .collect();
    assert!(
        reasons.contains("JobCreated") && reasons.contains("JobSucceeded"),
        "{reasons:?}"
    );

    runner.stop("the runner to stop").await;
}

#[tokio::test]
async fn a_failing_job_records_its_exit_code() {
    let world = World::start("fails").await;
    let cluster = world.cloud_cluster("t2-abcde", 1).await;
    world
        .ready_test_cluster("t2", &cluster, &["sh", "-c", "echo hi; exit 3"])
        .await;
    let runner = start_runner(&world);

    let done = until_finished(&world, "t2").await;
    let status = done.status.expect("status");
    assert_eq!(
        job_condition(&status),
        ("Failed".to_owned(), "Error".to_owned())
    );
    let job = status.job.expect("job");
    assert_eq!(job.exit_code, Some(3));
    assert_eq!(job.reason.as_deref(), Some("Error"));
    assert_eq!(
        job.message.as_deref(),
        Some("container \"runner\" exited with code 3")
    );

    runner.stop("the runner to stop").await;
}

#[tokio::test]
async fn a_restarted_runner_creates_no_second_job() {
    let world = World::start("restart").await;
    let cluster = world.cloud_cluster("t3-abcde", 1).await;
    // Long enough to be mid-run when the runner is stopped.
    world
        .ready_test_cluster(
            "t3",
            &cluster,
            &["sh", "-c", "echo started; sleep 2; echo finished"],
        )
        .await;

    let first = start_runner(&world);
    wait_for(&world.api(), "t3", job_recorded).await;
    first.stop("the first runner to stop").await;
    let job_uid = world
        .api::<Job>()
        .get("t3-runner")
        .await
        .expect("job")
        .uid();

    let second = start_runner(&world);
    let done = until_finished(&world, "t3").await;
    let status = done.status.expect("status");
    assert_eq!(job_outcome(&status.job_conditions), Some(true));
    assert_eq!(status.job.and_then(|j| j.exit_code), Some(0));

    let jobs = world
        .api::<Job>()
        .list(&ListParams::default())
        .await
        .expect("jobs");
    assert_eq!(jobs.items.len(), 1, "one Job, however many runners");
    assert_eq!(jobs.items[0].uid(), job_uid);
    let pods = world
        .api::<Pod>()
        .list(&ListParams::default().labels("job-name=t3-runner"))
        .await
        .expect("pods");
    assert_eq!(pods.items.len(), 1);

    second.stop("the second runner to stop").await;
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_with_deadline_exceeded() {
    let world = World::start("deadline").await;
    let cluster = world.cloud_cluster("t5-abcde", 1).await;
    world
        .ready_test_cluster("t5", &cluster, &["sh", "-c", "echo waiting; sleep 60"])
        .await;
    let runner = start_runner_with(
        &world,
        testcluster_runner::Settings {
            lifetimes: testcluster_resources::lifetime::Lifetimes {
                default_job_deadline: Duration::from_secs(1),
                ..Default::default()
            },
            ..settings(&world)
        },
    );

    let done = until_finished(&world, "t5").await;
    let status = done.status.expect("status");
    assert_eq!(
        job_condition(&status),
        ("Failed".to_owned(), "DeadlineExceeded".to_owned())
    );
    let job = status.job.expect("job");
    assert_eq!(job.reason.as_deref(), Some("DeadlineExceeded"));
    let message = job.message.unwrap_or_default();
    assert!(
        message.starts_with("Job was active longer than specified deadline"),
        "{message}"
    );

    runner.stop("the runner to stop").await;
}

#[tokio::test]
async fn a_container_that_cannot_start_fails_the_run_after_the_start_timeout() {
    let world = World::start("no-pull").await;
    let cluster = world.cloud_cluster("t6-abcde", 1).await;
    world
        .ready_test_cluster_with_image("t6", &cluster, "registry.invalid/tests:1", &["true"])
        .await;
    let runner = start_runner_with(
        &world,
        testcluster_runner::Settings {
            start_timeout: Duration::from_secs(1),
            ..settings(&world)
        },
    );

    let done = until_finished(&world, "t6").await;
    let status = done.status.expect("status");
    assert_eq!(job_outcome(&status.job_conditions), Some(false));
    let job = status.job.expect("job");
    assert_eq!(job.exit_code, None);
    let reason = job.reason.unwrap_or_default();
    assert!(
        reason == "ErrImagePull" || reason == "ImagePullBackOff",
        "{reason}"
    );
    let message = job.message.unwrap_or_default();
    assert!(
        message.starts_with("container \"runner\" never started: ")
            && message.contains("registry.invalid/tests:1")
            && message.ends_with("(gave up after 1s)"),
        "{message}"
    );
    // The Job is deleted, so that the kubelet stops pulling.
    let jobs: Api<Job> = world.api();
    within(
        "the Job to be deleted",
        kube::runtime::wait::await_condition(jobs, "t6-runner", |job: Option<&Job>| job.is_none()),
    )
    .await
    .expect("watch the Job");

    runner.stop("the runner to stop").await;
}

/// A reconcile as a stale runner (a lagging cache, a second replica) would run it: on the
/// object as it was read earlier, with stores that have seen nothing yet.
async fn reconcile_stale(
    world: &World,
    stale: TestClusterGKE,
) -> Result<kube::runtime::controller::Action, testcluster_runner::Error> {
    let reporter = kube::runtime::events::Reporter {
        controller: "testcluster-runner".to_owned(),
        instance: None,
    };
    let (jobs, _) = kube::runtime::reflector::store();
    let (pods, _) = kube::runtime::reflector::store();
    let ctx = std::sync::Arc::new(testcluster_runner::controller::Context::new(
        world.client.clone(),
        settings(world),
        kube::runtime::events::Recorder::new(world.client.clone(), reporter),
        jobs,
        pods,
        None,
        testcluster_runner::install::Installer::new(
            None,
            world.client.clone(),
            std::sync::Arc::new(testcluster_runner::cluster_access::ClusterClients::new(
                world.client.clone(),
            )),
        ),
    ));
    within(
        "the stale reconcile",
        testcluster_runner::controller::reconcile(std::sync::Arc::new(stale), ctx),
    )
    .await
}

#[tokio::test]
async fn a_status_write_based_on_a_stale_object_conflicts_and_loses_nothing() {
    let world = World::start("stale").await;
    let cluster = world.cloud_cluster("t7-abcde", 1).await;
    let stale_ready = world
        .ready_test_cluster("t7", &cluster, &["sh", "-c", "echo ok"])
        .await;
    let runner = start_runner(&world);
    let done = until_finished(&world, "t7").await;
    runner.stop("the runner to stop").await;

    // The write itself: "job started", decided on the Ready object, is refused with a conflict
    // instead of dropping the outcome recorded since.
    let api: Api<TestClusterGKE> = world.api();
    let mut started = testcluster_runner::status::RunnerStatus::of(&stale_ready);
    started.job.name = Some("t7-runner".to_owned());
    let refused = started.apply(&api, "t7").await;
    assert!(
        matches!(refused, Err(testcluster_runner::Error::Conflict(_))),
        "{refused:?}"
    );

    // A whole reconcile on the stale object conflicts, and writes nothing.
    let reconciled = reconcile_stale(&world, stale_ready).await;
    assert!(
        matches!(reconciled, Err(testcluster_runner::Error::Conflict(_))),
        "{reconciled:?}"
    );
    let after = api.get("t7").await.expect("get");
    assert_eq!(
        after.metadata.resource_version, done.metadata.resource_version,
        "nothing was written"
    );
    let jobs = world
        .api::<Job>()
        .list(&ListParams::default())
        .await
        .expect("jobs");
    assert_eq!(jobs.items.len(), 1);
}

#[tokio::test]
async fn a_run_the_provisioner_ended_gets_no_job_outcome() {
    let world = World::start("ended").await;
    let cluster = world.cloud_cluster("t8-abcde", 1).await;
    let ready = world
        .ready_test_cluster("t8", &cluster, &["sh", "-c", "echo ok"])
        .await;
    let api: Api<TestClusterGKE> = world.api();
    // The runner recorded its job (whose Job is gone now, so it would record JobDeleted) ...
    let mut started = testcluster_runner::status::RunnerStatus::of(&ready);
    started.job.name = Some("t8-runner".to_owned());
    started.apply(&api, "t8").await.expect("job recorded");
    let running = api.get("t8").await.expect("get");
    // ... and the provisioner has ended the run since.
    let patch = serde_json::json!({
        "apiVersion": "clusters.ci.cilium.io/v1alpha2",
        "kind": "TestClusterGKE",
        "metadata": {"name": "t8"},
        "status": {"phase": "Error", "error": {"code": "QuotaExceeded", "message": "no quota"}},
    });
    api.patch_status(
        "t8",
        &kube::api::PatchParams::apply("testcluster-provisioner").force(),
        &kube::api::Patch::Apply(&patch),
    )
    .await
    .expect("status Error");

    // On the fresh object the runner has nothing to do in phase Error ...
    let ended = api.get("t8").await.expect("get");
    reconcile_stale(&world, ended).await.expect("nothing to do");
    // ... and on the stale one its write conflicts.
    let stale = reconcile_stale(&world, running).await;
    assert!(
        matches!(stale, Err(testcluster_runner::Error::Conflict(_))),
        "{stale:?}"
    );
    let status = api.get("t8").await.expect("get").status.expect("status");
    assert_eq!(status.phase, Some(Phase::Error));
    assert!(status.job_conditions.is_empty(), "no outcome recorded");
    assert_eq!(status.job.and_then(|j| j.reason), None);
}

#[tokio::test]
async fn a_job_reading_another_runs_secret_never_starts() {
    let world = World::start("no-secrets").await;
    let cluster = world.cloud_cluster("t9-abcde", 1).await;
    world
        .ready_test_cluster("t9", &cluster, &["sh", "-c", "echo ok"])
        .await;
    // Edited with kubectl after the provisioner checked it.
    let api: Api<TestClusterGKE> = world.api();
    let patch = serde_json::json!({"spec": {"jobSpec": {"runner": {"env": [
        {"name": "FROM_USER", "value": "yes"},
        {"name": "STOLEN", "valueFrom": {"secretKeyRef": {"name": "other-kubeconfig", "key": "kubeconfig"}}},
    ]}}}});
    api.patch(
        "t9",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .expect("edit");
    let runner = start_runner(&world);

    let done = until_finished(&world, "t9").await;
    let status = done.status.expect("status");
    assert_eq!(
        job_condition(&status),
        ("Failed".to_owned(), "InvalidJobSpec".to_owned())
    );
    let message = status.job.and_then(|job| job.message).unwrap_or_default();
    assert!(
        message.contains("spec.jobSpec.runner.env[1].valueFrom.secretKeyRef"),
        "{message}"
    );
    let jobs = world
        .api::<Job>()
        .list(&ListParams::default())
        .await
        .expect("jobs");
    assert!(jobs.items.is_empty(), "no Job was created");

    runner.stop("the runner to stop").await;
}
