//! The runner against an in-process simulator over real HTTP, with a real (in-test) gRPC
//! ProvisionerService: Job shape, phases, exit codes, restarts, provisioner outages.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, LogParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use testcluster_resources::{Phase, TestClusterGKE};

/// The phases `name` goes through, in order and without repeats, until a terminal one.
fn record_phases(world: &World, name: &str) -> tokio::task::JoinHandle<Vec<Phase>> {
    let api: Api<TestClusterGKE> = world.api();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut phases: Vec<Phase> = Vec::new();
        let mut objects = watcher::watcher(api, config).boxed();
        while let Some(event) = objects.try_next().await.expect("watch") {
            let object = match event {
                watcher::Event::Apply(o) | watcher::Event::InitApply(o) => o,
                _ => continue,
            };
            if let Some(phase) = object.status.and_then(|s| s.phase)
                && phases.last() != Some(&phase)
            {
                phases.push(phase);
                if phase.is_terminal() {
                    break;
                }
            }
        }
        phases
    })
}

/// Waits until test cluster `name` reaches a terminal phase, and returns it.
async fn until_terminal(world: &World, name: &str) -> TestClusterGKE {
    let is_terminal = |resource: Option<&TestClusterGKE>| {
        resource
            .and_then(|r| r.status.as_ref())
            .and_then(|s| s.phase)
            .is_some_and(Phase::is_terminal)
    };
    wait_for(&world.api(), name, is_terminal).await
}

fn is_phase(phase: Phase) -> impl kube::runtime::wait::Condition<TestClusterGKE> {
    move |resource: Option<&TestClusterGKE>| {
        resource
            .and_then(|r| r.status.as_ref())
            .and_then(|s| s.phase)
            == Some(phase)
    }
}

#[tokio::test]
async fn a_job_runs_against_its_test_cluster_and_succeeds() {
    let world = World::start("runs").await;
    let provisioned = world.provision("t1", "t1-abcde", 3).await;
    world
        .ready_test_cluster(
            "t1",
            "t1-abcde",
            &["sh", "-c", "echo hello-from-job; kubectl get nodes -o name"],
        )
        .await;
    let phases = record_phases(&world, "t1");
    let runner = start_runner(&world, &provisioned.url);

    let done = until_terminal(&world, "t1").await;
    assert_eq!(
        within("phases", phases).await.expect("phases"),
        [Phase::Ready, Phase::Running, Phase::Succeeded]
    );

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
    let secret = world
        .api::<Secret>()
        .get("t1-kubeconfig")
        .await
        .expect("secret");
    let kubeconfig = secret
        .data
        .expect("data")
        .remove("kubeconfig")
        .expect("kubeconfig key");
    assert_eq!(
        String::from_utf8(kubeconfig.0).expect("utf-8"),
        provisioned.cluster.api().kubeconfig_yaml()
    );
    assert_eq!(
        secret.metadata.owner_references.expect("owner")[0].name,
        "t1"
    );

    // The outcome, next to the provisioner's fields, which the runner left alone.
    let status = done.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(status.cluster_name.as_deref(), Some("t1-abcde"));
    assert_eq!(status.location.as_deref(), Some(LOCATION));
    assert_eq!(status.conditions.len(), 1);
    let job_status = status.job.expect("job status");
    assert_eq!(job_status.name.as_deref(), Some("t1-runner"));
    assert_eq!(job_status.exit_code, Some(0));
    assert_eq!(job_status.reason.as_deref(), Some("Completed"));
    assert!(job_status.completion_time.is_some());
    assert!(job_status.start_time.is_some());
    let times = status.phase_timestamps.expect("timestamps");
    assert!(times.running_time.is_some() && times.finish_time.is_some());

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
    let nodes: BTreeSet<String> = provisioned.cluster.node_names().into_iter().collect();
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
    let provisioned = world.provision("t2", "t2-abcde", 1).await;
    world
        .ready_test_cluster("t2", "t2-abcde", &["sh", "-c", "echo hi; exit 3"])
        .await;
    let runner = start_runner(&world, &provisioned.url);

    let done = until_terminal(&world, "t2").await;
    let status = done.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Failed));
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
    let provisioned = world.provision("t3", "t3-abcde", 1).await;
    // Long enough to be mid-run when the runner is stopped.
    world
        .ready_test_cluster(
            "t3",
            "t3-abcde",
            &["sh", "-c", "echo started; sleep 2; echo finished"],
        )
        .await;

    let first = start_runner(&world, &provisioned.url);
    wait_for(&world.api(), "t3", is_phase(Phase::Running)).await;
    first.stop("the first runner to stop").await;
    let job_uid = world
        .api::<Job>()
        .get("t3-runner")
        .await
        .expect("job")
        .uid();

    let second = start_runner(&world, &provisioned.url);
    let done = until_terminal(&world, "t3").await;
    let status = done.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Succeeded));
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
    assert_eq!(
        provisioned
            .provisioner
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "access asked once"
    );

    second.stop("the second runner to stop").await;
}

#[tokio::test]
async fn an_unavailable_provisioner_is_retried() {
    let world = World::start("retry").await;
    let provisioned = world.provision("t4", "t4-abcde", 1).await;
    provisioned.provisioner.fail_first(2);
    world
        .ready_test_cluster("t4", "t4-abcde", &["sh", "-c", "echo ok"])
        .await;
    let runner = start_runner(&world, &provisioned.url);

    let done = until_terminal(&world, "t4").await;
    assert_eq!(done.status.and_then(|s| s.phase), Some(Phase::Succeeded));
    assert_eq!(
        provisioned
            .provisioner
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        3,
        "two refusals, then access"
    );

    runner.stop("the runner to stop").await;
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_with_deadline_exceeded() {
    let world = World::start("deadline").await;
    let provisioned = world.provision("t5", "t5-abcde", 1).await;
    world
        .ready_test_cluster("t5", "t5-abcde", &["sh", "-c", "echo waiting; sleep 60"])
        .await;
    let runner = start_runner_with(
        &world,
        runner::Settings {
            job_deadline: Duration::from_secs(1),
            ..settings(&world, &provisioned.url)
        },
    );

    let done = until_terminal(&world, "t5").await;
    let status = done.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Failed));
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
    let provisioned = world.provision("t6", "t6-abcde", 1).await;
    world
        .ready_test_cluster_with_image("t6", "t6-abcde", "registry.invalid/tests:1", &["true"])
        .await;
    let runner = start_runner_with(
        &world,
        runner::Settings {
            start_timeout: Duration::from_secs(1),
            ..settings(&world, &provisioned.url)
        },
    );

    let done = until_terminal(&world, "t6").await;
    let status = done.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Failed));
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
/// object as it was read earlier.
async fn reconcile_stale(
    world: &World,
    provisioner: &str,
    stale: TestClusterGKE,
) -> kube::runtime::controller::Action {
    let reporter = kube::runtime::events::Reporter {
        controller: "testcluster-runner".to_owned(),
        instance: None,
    };
    let ctx = std::sync::Arc::new(runner::controller::Context::new(
        world.client.clone(),
        runner::access::Provisioner::new(provisioner).expect("provisioner client"),
        settings(world, provisioner),
        kube::runtime::events::Recorder::new(world.client.clone(), reporter),
    ));
    within(
        "the stale reconcile",
        runner::controller::reconcile(std::sync::Arc::new(stale), ctx),
    )
    .await
    .expect("a conflict is re-read and reconciled, not an error")
}

#[tokio::test]
async fn a_status_write_based_on_a_stale_object_conflicts_and_regresses_nothing() {
    let world = World::start("stale").await;
    let provisioned = world.provision("t7", "t7-abcde", 1).await;
    let stale_ready = world
        .ready_test_cluster("t7", "t7-abcde", &["sh", "-c", "echo ok"])
        .await;
    let runner = start_runner(&world, &provisioned.url);
    let done = until_terminal(&world, "t7").await;
    runner.stop("the runner to stop").await;
    assert_eq!(
        done.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Succeeded)
    );

    // The write itself: Running, decided on the Ready object, is refused with a conflict.
    let api: Api<TestClusterGKE> = world.api();
    let mut base = runner::status::Base::of(&stale_ready);
    let running = runner::status::RunnerStatus {
        phase: Some(Phase::Running),
        ..runner::status::RunnerStatus::default()
    };
    let refused = running.apply(&api, "t7", &mut base).await;
    assert!(
        matches!(refused, Err(runner::Error::Conflict(_))),
        "{refused:?}"
    );

    // A whole reconcile on the stale object: it conflicts, re-reads, and leaves the run be.
    reconcile_stale(&world, &provisioned.url, stale_ready).await;
    let after = api.get("t7").await.expect("get");
    assert_eq!(
        after.metadata.resource_version, done.metadata.resource_version,
        "nothing was written"
    );
    assert_eq!(after.status.and_then(|s| s.phase), Some(Phase::Succeeded));
    let jobs = world
        .api::<Job>()
        .list(&ListParams::default())
        .await
        .expect("jobs");
    assert_eq!(jobs.items.len(), 1);
}

#[tokio::test]
async fn a_stale_runner_does_not_overwrite_the_provisioners_error() {
    let world = World::start("stale-error").await;
    world
        .ready_test_cluster("t8", "t8-abcde", &["sh", "-c", "echo ok"])
        .await;
    let api: Api<TestClusterGKE> = world.api();
    let status = |manager: &str, status: serde_json::Value| {
        let api = api.clone();
        let manager = manager.to_owned();
        async move {
            let patch = serde_json::json!({
                "apiVersion": "clusters.ci.cilium.io/v1alpha2",
                "kind": "TestClusterGKE",
                "metadata": {"name": "t8"},
                "status": status,
            });
            api.patch_status(
                "t8",
                &kube::api::PatchParams::apply(&manager).force(),
                &kube::api::Patch::Apply(&patch),
            )
            .await
            .expect("status")
        }
    };
    // The runner's cache still says Running (its Job is gone, so it would record Failed) ...
    let stale_running = status(
        "testcluster-runner",
        serde_json::json!({"phase": "Running", "job": {"name": "t8-runner"}}),
    )
    .await;
    // ... while the provisioner has moved the run to Error.
    status(
        "testcluster-provisioner",
        serde_json::json!({"phase": "Error", "error": {"code": "QuotaExceeded", "message": "no quota"}}),
    )
    .await;

    reconcile_stale(&world, "http://127.0.0.1:9", stale_running).await;
    let after = api.get("t8").await.expect("get");
    let status = after.status.expect("status");
    assert_eq!(status.phase, Some(Phase::Error));
    assert_eq!(
        status.job.and_then(|j| j.reason),
        None,
        "no outcome recorded"
    );
}
