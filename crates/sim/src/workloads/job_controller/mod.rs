//! The Job controller: a kube-runtime `Controller` on batch/v1 Jobs owning Pods. Each reconcile reads
//! the pods the Job owns straight from the API server (so a restarted controller never creates a
//! duplicate), lets [`progress::plan`] decide, then creates and deletes pods and writes the status.

mod progress;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::events::{EventRecorder, EventType};
use super::owned_objects::{controller_reference, is_controlled_by, pod_from_template};
use progress::{OwnedPods, plan};

pub use progress::{BACKOFF_LIMIT_EXCEEDED, COMPLETIONS_REACHED, DEADLINE_EXCEEDED};

/// The labels the Job controller (and the API server's defaulting) put on a Job's pods.
const JOB_NAME_LABELS: [&str; 2] = ["batch.kubernetes.io/job-name", "job-name"];
const CONTROLLER_UID_LABELS: [&str; 2] = ["batch.kubernetes.io/controller-uid", "controller-uid"];

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job has no namespace or uid")]
    Incomplete,
    #[error("listing the job's pods: {0}")]
    ListPods(#[source] kube::Error),
    #[error("creating a pod: {0}")]
    CreatePod(#[source] kube::Error),
    #[error("deleting a pod: {0}")]
    DeletePod(#[source] kube::Error),
    #[error("writing the job status: {0}")]
    WriteStatus(#[source] kube::Error),
}

struct Context {
    client: Client,
    events: EventRecorder,
}

/// Runs the controller until `shutdown`.
pub(super) async fn run(client: Client, shutdown: CancellationToken) {
    let context = Arc::new(Context {
        events: EventRecorder::new(client.clone(), "job-controller", None),
        client: client.clone(),
    });
    Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default())
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "job reconcile");
            }
        })
        .await;
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, JobError> {
    if job.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the pods.
        return Ok(Action::await_change());
    }
    let (Some(namespace), Some(uid)) = (job.namespace(), job.uid()) else {
        return Err(JobError::Incomplete);
    };
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let selector = format!("{}={uid}", CONTROLLER_UID_LABELS[0]);
    let owned: Vec<Pod> = pods_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(JobError::ListPods)?
        .items
        .into_iter()
        .filter(|pod| is_controlled_by(pod, &uid))
        .collect();
    let next = plan(&job, &OwnedPods::sort(&owned), Timestamp::now());

    for name in &next.delete {
        match pods_api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {
                ctx.events
                    .publish(
                        job.as_ref(),
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    )
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(JobError::DeletePod(e)),
        }
    }
    for _ in 0..next.create {
        let pod = pod_for(&job, &uid);
        let created = pods_api
            .create(&PostParams::default(), &pod)
            .await
            .map_err(JobError::CreatePod)?;
        ctx.events
            .publish(
                job.as_ref(),
                EventType::Normal,
                "SuccessfulCreate",
                &format!("Created pod: {}", created.name_any()),
            )
            .await;
    }

    let old = serde_json::to_value(&job.status).unwrap_or_default();
    let new = serde_json::to_value(&next.status).unwrap_or_default();
    if old != new {
        let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({ "status": next.status });
        jobs.patch_status(
            &job.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(JobError::WriteStatus)?;
        for event in &next.events {
            ctx.events
                .publish(job.as_ref(), event.type_, &event.reason, &event.note)
                .await;
        }
    }
    Ok(next
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

fn error_policy(_job: Arc<Job>, error: &JobError, _ctx: Arc<Context>) -> Action {
    tracing::debug!(%error, "job reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// A pod from the Job's template, labelled and owned as the real controller does it.
fn pod_for(job: &Job, uid: &str) -> Pod {
    let name = job.name_any();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut labels = BTreeMap::new();
    for key in CONTROLLER_UID_LABELS {
        labels.insert(key.to_owned(), uid.to_owned());
    }
    for key in JOB_NAME_LABELS {
        labels.insert(key.to_owned(), name.clone());
    }
    let owner = controller_reference("batch/v1", "Job", name, uid.to_owned());
    pod_from_template(&template, job.namespace(), owner, labels)
}
