//! The Job controller and the kubelet together, against an in-process API server over real HTTP.

mod common;

use std::time::Duration;

use common::{create_namespace, start_workloads, wait_deleted};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, LogParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use testcluster_sim::apiserver::{ApiServer, ApiServerConfig};
use testcluster_sim::workloads::Workloads;

const WAIT: Duration = Duration::from_secs(30);
/// Back-off and resync of the workload controllers: short, so retries happen within a test.
const TICK: Duration = Duration::from_millis(200);

struct Cluster {
    api: ApiServer,
    client: Client,
    namespace: String,
}

impl Cluster {
    async fn start(namespace: &str) -> (Cluster, Workloads) {
        let api = ApiServer::start(ApiServerConfig {
            name: "workloads".into(),
            ..ApiServerConfig::default()
        })
        .await
        .expect("api server");
        let workloads = start_workloads(&api, TICK);
        let client = api.internal_client();
        create_namespace(&client, namespace).await;
        let cluster = Cluster {
            api,
            client,
            namespace: namespace.to_owned(),
        };
        (cluster, workloads)
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn create_job(&self, name: &str, spec: serde_json::Value) -> Job {
        let job: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("job");
        self.jobs()
            .create(&PostParams::default(), &job)
            .await
            .expect("create job")
    }

    async fn wait_job(&self, name: &str, condition: impl Condition<Job>) -> Job {
        tokio::time::timeout(WAIT, await_condition(self.jobs(), name, condition))
            .await
            .expect("in time")
            .expect("watch")
            .expect("job exists")
    }

    async fn pods_of(&self, job: &str) -> Vec<Pod> {
        self.pods()
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .expect("list pods")
            .items
    }
}

fn template(command: serde_json::Value) -> serde_json::Value {
    json!({
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:1.36", "command": command}],
        }
    })
}

/// The job carries a true condition of this type.
fn has_condition(type_: &'static str) -> impl Condition<Job> {
    move |job: Option<&Job>| {
        job.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
    }
}

fn condition(job: &Job, type_: &str) -> (String, String) {
    let c = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_failing_job_reaches_its_backoff_limit() {
    let (cluster, _workloads) = Cluster::start("job-fails").await;
    let spec =
        json!({"backoffLimit": 0, "template": template(json!(["sh", "-c", "echo hi; exit 3"]))});
    let created = cluster.create_job("fails", spec).await;
    let job = cluster.wait_job("fails", has_condition("Failed")).await;

    assert_eq!(
        condition(&job, "Failed"),
        (
            "BackoffLimitExceeded".to_owned(),
            "Job has reached the specified backoff limit".to_owned()
        )
    );
    assert_eq!(condition(&job, "FailureTarget").0, "BackoffLimitExceeded");
    let status = job.status.clone().expect("status");
    assert_eq!(
        (status.failed, status.active, status.succeeded),
        (Some(1), Some(0), Some(0))
    );
    assert!(status.start_time.is_some());
    assert!(status.completion_time.is_none());

    let pods = cluster.pods_of("fails").await;
    assert_eq!(pods.len(), 1, "backoffLimit 0 means one pod");
    let pod = &pods[0];
    let uid = created.uid().expect("uid");
    assert!(pod.name_any().starts_with("fails-"));
    let labels = pod.labels();
    assert_eq!(
        labels
            .get("batch.kubernetes.io/job-name")
            .map(String::as_str),
        Some("fails")
    );
    assert_eq!(labels.get("controller-uid"), Some(&uid));
    assert_eq!(labels.get("batch.kubernetes.io/controller-uid"), Some(&uid));
    let owner = &pod.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Job", "fails"));
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );

    let pod_status = pod.status.clone().expect("pod status");
    assert_eq!(pod_status.phase.as_deref(), Some("Failed"));
    let terminated = pod_status.container_statuses.expect("statuses")[0]
        .state
        .clone()
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(terminated.exit_code, 3);
    assert_eq!(terminated.reason.as_deref(), Some("Error"));
    let log = cluster
        .pods()
        .logs(&pod.name_any(), &LogParams::default())
        .await
        .expect("log");
    assert_eq!(log, "hi\n");

    // What `kubectl describe` would show.
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let events = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    let recorded = |kind: &str, reason: &str| {
        events.iter().any(|e| {
            e.involved_object.kind.as_deref() == Some(kind) && e.reason.as_deref() == Some(reason)
        })
    };
    for (kind, reason) in [
        ("Job", "SuccessfulCreate"),
        ("Job", "BackoffLimitExceeded"),
        ("Pod", "Pulling"),
        ("Pod", "Created"),
        ("Pod", "Started"),
    ] {
        assert!(recorded(kind, reason), "no {reason} event for the {kind}");
    }
}

#[tokio::test]
async fn a_job_completes_with_parallel_pods() {
    let (cluster, _workloads) = Cluster::start("job-completes").await;
    let spec = json!({"completions": 3, "parallelism": 2, "template": template(json!(["sh", "-c", "echo done"]))});
    cluster.create_job("works", spec).await;
    let job = cluster.wait_job("works", has_condition("Complete")).await;

    assert_eq!(
        condition(&job, "Complete"),
        (
            "CompletionsReached".to_owned(),
            "Reached expected number of succeeded pods".to_owned()
        )
    );
    assert_eq!(
        condition(&job, "SuccessCriteriaMet").0,
        "CompletionsReached"
    );
    let status = job.status.clone().expect("status");
    assert_eq!(
        (status.succeeded, status.failed, status.active),
        (Some(3), Some(0), Some(0))
    );
    assert!(status.completion_time.is_some());
    assert_eq!(cluster.pods_of("works").await.len(), 3);
}

#[tokio::test]
async fn the_active_deadline_stops_a_job() {
    let (cluster, _workloads) = Cluster::start("job-deadline").await;
    let spec = json!({"activeDeadlineSeconds": 1, "template": template(json!(["sleep", "30"]))});
    cluster.create_job("slow", spec).await;
    let started = std::time::Instant::now();
    let job = cluster.wait_job("slow", has_condition("Failed")).await;

    assert_eq!(
        condition(&job, "Failed"),
        (
            "DeadlineExceeded".to_owned(),
            "Job was active longer than specified deadline".to_owned()
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the deadline fired late"
    );
    let status = job.status.expect("status");
    assert_eq!((status.active, status.failed), (Some(0), Some(1)));
    // The active pod was deleted: its process stopped, and, its grace period over, it goes away.
    for pod in cluster.pods_of("slow").await {
        assert!(
            pod.metadata.deletion_timestamp.is_some(),
            "{} is being deleted",
            pod.name_any()
        );
        wait_deleted(&cluster.pods(), &pod.name_any()).await;
    }
    assert!(cluster.pods_of("slow").await.is_empty());
}

#[tokio::test]
async fn a_restarted_controller_creates_no_duplicate_pod() {
    let (cluster, first) = Cluster::start("job-restart").await;
    cluster
        .create_job(
            "once",
            json!({"template": template(json!(["sh", "-c", "sleep 1; echo ok"]))}),
        )
        .await;
    let has_active = |job: Option<&Job>| {
        job.and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.active == Some(1))
    };
    cluster.wait_job("once", has_active).await;
    first.stop().await;

    let _second = start_workloads(&cluster.api, TICK);
    let job = cluster.wait_job("once", has_condition("Complete")).await;
    assert_eq!(job.status.expect("status").succeeded, Some(1));
    assert_eq!(cluster.pods_of("once").await.len(), 1);
}
