//! How long a test cluster lives (issue 10, done-when 3): a job past its deadline fails with
//! `DeadlineExceeded` and its cluster goes; a failed run with a hold keeps its cluster until the
//! hold ends, and an extension moves that end; a cluster without a job goes at its TTL. Each shows
//! in `expiresAt` and in an Event.

use std::time::Duration;

use futures::TryStreamExt as _;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt as _, watcher};
use testcluster_api::v1 as api;
use testcluster_resources::TestClusterGKE;

use crate::support::{Env, NAMESPACE, TIMEOUT, job_request, start};

fn time_of(timestamp: Option<pbjson_types::Timestamp>) -> Timestamp {
    let timestamp = timestamp.expect("a timestamp");
    Timestamp::new(timestamp.seconds, timestamp.nanos).expect("a valid timestamp")
}

/// The Event `reason` about test cluster `name` (note and time), watched for: Events are written
/// after the status that brings a test here.
async fn event(env: &Env, name: &str, reason: &str) -> (String, Timestamp) {
    let client = env.suite.client().await.expect("client");
    let events: Api<Event> = Api::namespaced(client, NAMESPACE);
    let mut stream = std::pin::pin!(watcher(events, watcher::Config::default()).applied_objects());
    let found = tokio::time::timeout(TIMEOUT, async {
        while let Some(event) = stream.try_next().await.expect("watching Events") {
            let about = event.regarding.as_ref().and_then(|r| r.name.as_deref());
            if about == Some(name) && event.reason.as_deref() == Some(reason) {
                let when = event
                    .event_time
                    .map(|t| t.0)
                    .or(event.deprecated_first_timestamp.map(|t| t.0))
                    .unwrap_or(Timestamp::UNIX_EPOCH);
                return Some((event.note.unwrap_or_default(), when));
            }
        }
        None
    })
    .await;
    found
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no {reason} Event about {name}"))
}

/// Waits until the object's `status.expiresAt` is `at`.
async fn until_expires_at(env: &Env, name: &str, at: Timestamp) {
    let client = env.suite.client().await.expect("client");
    let api: Api<TestClusterGKE> = Api::namespaced(client, NAMESPACE);
    let expires = move |tc: Option<&TestClusterGKE>| {
        tc.and_then(|tc| tc.status.as_ref())
            .and_then(|s| s.expires_at.as_ref())
            .is_some_and(|t| t.0 == at)
    };
    tokio::time::timeout(TIMEOUT, await_condition(api, name, expires))
        .await
        .unwrap_or_else(|_| panic!("expiresAt of {name} never became {at}"))
        .expect("watch");
}

#[tokio::test]
async fn a_job_past_its_deadline_fails_with_deadline_exceeded_and_its_cluster_goes() {
    let env = start().await;
    let mut request = job_request("past-deadline", 1, &["sh", "-c", "echo started; sleep 60"]);
    if let Some(job) = request.spec.as_mut().and_then(|s| s.job_spec.as_mut()) {
        job.deadline = Some("2s".to_owned());
    }
    let created = env.create(request).await;
    let run = env.follow(&created.name, &created.resource_version).await;

    assert_eq!(
        run.phases().last(),
        Some(&api::Phase::Failed),
        "{:?}",
        run.phases()
    );
    let status = run.status();
    let job = status.job.clone().expect("job");
    assert_eq!(job.reason, "DeadlineExceeded");
    assert!(
        job.message
            .starts_with("Job was active longer than specified deadline"),
        "{}",
        job.message
    );
    // No hold: the cluster goes at the run's end, and expiresAt says so.
    let finished = time_of(status.phase_timestamps.and_then(|t| t.finish_time));
    assert_eq!(time_of(status.expire_time), finished);
    let (note, _) = event(&env, &created.name, "JobFailed").await;
    assert!(note.starts_with("DeadlineExceeded: "), "{note}");
    let (note, _) = event(&env, &created.name, "DeletingCluster").await;
    assert!(
        note.starts_with("The run is over; deleting cluster"),
        "{note}"
    );
    env.wait_cloud_cluster_deleted(&status.cluster_name).await;
}

#[tokio::test]
async fn a_held_failed_run_keeps_its_cluster_until_the_extended_hold_ends() {
    let env = start().await;
    let mut request = job_request("held", 1, &["sh", "-c", "exit 3"]);
    if let Some(spec) = request.spec.as_mut() {
        spec.hold_on_failure = Some("15s".to_owned());
    }
    let created = env.create(request).await;
    let run = env.follow(&created.name, &created.resource_version).await;
    assert_eq!(
        run.phases().last(),
        Some(&api::Phase::Failed),
        "{:?}",
        run.phases()
    );

    // The hold: expiresAt is the failure + 15s, an Event says so, and the cluster is still there.
    let status = run.status();
    let finished = time_of(status.phase_timestamps.and_then(|t| t.finish_time));
    let held_until = finished
        .checked_add(Duration::from_secs(15))
        .expect("in range");
    until_expires_at(&env, &created.name, held_until).await;
    let (note, _) = event(&env, &created.name, "Held").await;
    assert!(
        note.starts_with(&format!(
            "The run failed; keeping its cluster until {held_until}"
        )),
        "{note}"
    );
    let inventory = env.suite.simulator().inventory();
    assert!(
        inventory
            .live()
            .iter()
            .any(|c| c.name == status.cluster_name),
        "held cluster {} not live: {:?}",
        status.cluster_name,
        inventory.all()
    );

    // A person can get in while it is held.
    let credentials = env
        .broker()
        .get_test_cluster_credentials(api::GetTestClusterCredentialsRequest {
            namespace: NAMESPACE.to_owned(),
            name: created.name.clone(),
        })
        .await
        .expect("credentials for a held cluster")
        .into_inner();
    let dir = tempfile::tempdir().expect("temporary directory");
    let kubeconfig = dir.path().join("held.kubeconfig");
    tcctl::private_file::write(&kubeconfig, credentials.kubeconfig.as_bytes()).expect("write");
    let (ok, nodes, errors) =
        crate::access::kubectl(&kubeconfig, &["get", "nodes", "-o", "name"]).await;
    assert!(ok, "{errors}");
    assert_eq!(nodes.lines().count(), 1, "{nodes}");

    // An extension moves the end by exactly what was asked.
    let extended = env
        .broker()
        .extend_test_cluster(api::ExtendTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: created.name.clone(),
            by: Some(pbjson_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
        })
        .await
        .expect("extended")
        .into_inner();
    let extended_until = held_until
        .checked_add(Duration::from_secs(5))
        .expect("in range");
    assert_eq!(time_of(extended.expire_time), extended_until);
    until_expires_at(&env, &created.name, extended_until).await;
    let (note, _) = event(&env, &created.name, "Extended").await;
    assert_eq!(
        note,
        format!("The hold was extended; the cluster expires at {extended_until}")
    );

    // The cluster goes once the extended hold is over, not before.
    env.wait_cloud_cluster_deleted(&status.cluster_name).await;
    let (note, deleting_at) = event(&env, &created.name, "DeletingCluster").await;
    assert!(
        note.starts_with("The hold ended; deleting cluster"),
        "{note}"
    );
    assert!(
        deleting_at >= extended_until,
        "deleted at {deleting_at}, before the hold ended at {extended_until}"
    );

    // Once it is gone, there is nothing to extend.
    let refused = env
        .broker()
        .extend_test_cluster(api::ExtendTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: created.name.clone(),
            by: Some(pbjson_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        format!(
            "TestClusterGKE {}: it expired at {extended_until} and its cluster is deleted; \
             nothing to extend",
            created.name
        )
    );
}

#[tokio::test]
async fn a_cluster_without_a_job_goes_at_its_ttl() {
    let env = start().await;
    let request = api::CreateTestClusterRequest {
        namespace: NAMESPACE.to_owned(),
        name: "jobless-ttl".to_owned(),
        spec: Some(api::TestClusterSpec {
            nodes: Some(1),
            ttl: Some("8s".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = env.create(request).await;
    let created_at = time_of(created.create_time);
    let expires_at = created_at
        .checked_add(Duration::from_secs(8))
        .expect("in range");
    let run = env.follow(&created.name, &created.resource_version).await;

    let phases = run.phases();
    assert_eq!(phases.last(), Some(&api::Phase::Expired), "{phases:?}");
    assert!(phases.contains(&api::Phase::Ready), "{phases:?}");
    let ready = run
        .snapshot_in(api::Phase::Ready)
        .expect("a Ready snapshot");
    assert_eq!(
        time_of(ready.status.clone().unwrap_or_default().expire_time),
        expires_at,
        "while Ready, expiresAt is creation + ttl"
    );
    let status = run.status();
    let finished = time_of(status.phase_timestamps.and_then(|t| t.finish_time));
    assert!(
        finished >= expires_at,
        "expired at {finished}, before {expires_at}"
    );
    assert_eq!(time_of(status.expire_time), finished);
    let (note, _) = event(&env, &created.name, "Expired").await;
    assert_eq!(
        note,
        format!(
            "The cluster's time (ttl 8s, extensions included) ended at {expires_at}; deleting \
             its cloud resources"
        )
    );
    env.wait_cloud_cluster_deleted(&status.cluster_name).await;
}

#[tokio::test]
async fn a_run_record_past_its_retention_goes_with_its_job_and_pods() {
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::Pod;
    use kube::ResourceExt as _;

    let env = crate::support::start_with(tcctl::suite::SuiteConfig {
        record_retention: Duration::from_secs(4),
        ..tcctl::suite::SuiteConfig::default()
    })
    .await;
    let created = env
        .create(job_request("kept-a-while", 1, crate::support::HELLO))
        .await;
    let run = env.follow(&created.name, &created.resource_version).await;
    assert_eq!(
        run.phases().last(),
        Some(&api::Phase::Succeeded),
        "{:?}",
        run.phases()
    );

    // The record: every phase's entry, so every phase's duration, and the job's outcome.
    let status = run.status();
    let times = status.phase_timestamps.expect("phase timestamps");
    let entries = [
        times.pending_time,
        times.provisioning_time,
        times.ready_time,
        times.running_time,
        times.finish_time,
    ]
    .map(time_of);
    assert!(
        entries.windows(2).all(|pair| pair[0] <= pair[1]),
        "{entries:?}"
    );
    assert_eq!(status.location, "europe-west2-b");
    let record = status.record.clone().expect("the run's record");
    assert_eq!(record.template, "basic");
    let phases: Vec<&str> = record.phase_seconds.keys().map(String::as_str).collect();
    assert_eq!(phases, ["Pending", "Provisioning", "Ready", "Running"]);
    let seconds_between = |from: Option<pbjson_types::Timestamp>, to| {
        time_of(to).as_second() - time_of(from).as_second()
    };
    assert_eq!(
        record.phase_seconds["Running"],
        seconds_between(times.running_time, times.finish_time)
    );
    let job_status = status.job.clone().expect("job");
    assert_eq!(
        (job_status.exit_code, job_status.reason.as_str()),
        (Some(0), "Completed")
    );

    // Past the retention the record goes, and its Job and pod with it.
    let client = env.suite.client().await.expect("client");
    let records: Api<TestClusterGKE> = Api::namespaced(client.clone(), NAMESPACE);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let record = records.get(&created.name).await.expect("the record");
    let job = jobs.get(&job_status.name).await.expect("the Job");
    let pod = pods.get(&job_status.pod).await.expect("the pod");
    until_deleted(records, &created.name, &record.uid().unwrap_or_default()).await;
    until_deleted(jobs, &job_status.name, &job.uid().unwrap_or_default()).await;
    until_deleted(pods, &job_status.pod, &pod.uid().unwrap_or_default()).await;

    // The metrics summarised it (by now every reconcile of the run is done): the run by outcome
    // and template, the time in each phase.
    let metrics = crate::metrics::metrics_text(&env, tcctl::suite::Component::Provisioner).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "testcluster_runs_total{outcome=\"Succeeded\",template=\"basic\"} 1"),
        "{metrics}"
    );
    for phase in ["Pending", "Provisioning", "Ready", "Running"] {
        let count = format!("testcluster_phase_duration_seconds_count{{phase=\"{phase}\"}} 1");
        assert!(metrics.lines().any(|l| l == count), "{count} in {metrics}");
    }
}

/// Waits until the object `name` with `uid` is gone.
async fn until_deleted<K>(api: Api<K>, name: &str, uid: &str)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let waited = tokio::time::timeout(
        TIMEOUT,
        await_condition(api, name, kube::runtime::wait::conditions::is_deleted(uid)),
    )
    .await;
    assert!(
        matches!(waited, Ok(Ok(_))),
        "{} {name} outlived its retention",
        K::kind(&Default::default())
    );
}
