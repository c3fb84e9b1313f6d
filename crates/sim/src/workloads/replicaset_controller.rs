//! The ReplicaSet controller: a kube-runtime `Controller` on apps/v1 ReplicaSets owning Pods. Each
//! reconcile reads the pods the ReplicaSet controls straight from the API server, creates or deletes
//! pods until the active ones (not finished, not being deleted) number `spec.replicas`, and writes
//! the status kubectl and the Deployment controller read: `replicas`, `fullyLabeledReplicas`,
//! `readyReplicas`, `availableReplicas` (Ready for `minReadySeconds`) and `observedGeneration`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::events::{EventRecorder, EventType};
use super::owned_objects::{
    controller_reference, is_controlled_by, pod_from_template, selector_query,
};

/// At most this many pods are created or deleted by one reconcile (the real controller's burst).
const BURST: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    #[error("replica set has no namespace or uid")]
    Incomplete,
    #[error("listing the replica set's pods: {0}")]
    ListPods(#[source] kube::Error),
    #[error("creating a pod: {0}")]
    CreatePod(#[source] kube::Error),
    #[error("deleting a pod: {0}")]
    DeletePod(#[source] kube::Error),
    #[error("writing the replica set status: {0}")]
    WriteStatus(#[source] kube::Error),
}

struct Context {
    client: Client,
    events: EventRecorder,
}

/// Runs the controller until `shutdown`.
pub(super) async fn run(client: Client, shutdown: CancellationToken) {
    let context = Arc::new(Context {
        events: EventRecorder::new(client.clone(), "replicaset-controller", None),
        client: client.clone(),
    });
    Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Pod>::all(client), watcher::Config::default())
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(reconcile, error_policy, context)
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "replica set reconcile");
        }
    })
    .await;
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action, ReplicaSetError> {
    if rs.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (Some(namespace), Some(uid)) = (rs.namespace(), rs.uid()) else {
        return Err(ReplicaSetError::Incomplete);
    };
    let spec = rs.spec.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let owned: Vec<Pod> = pods_api
        .list(&ListParams::default().labels(&selector_query(&spec.selector)))
        .await
        .map_err(ReplicaSetError::ListPods)?
        .items
        .into_iter()
        .filter(|pod| is_controlled_by(pod, &uid))
        .collect();
    let mut active: Vec<&Pod> = owned.iter().filter(|p| is_active(p)).collect();
    let desired = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);

    if active.len() < desired {
        let template = spec.template.clone().unwrap_or_default();
        let owner = controller_reference("apps/v1", "ReplicaSet", rs.name_any(), uid.clone());
        for _ in 0..(desired - active.len()).min(BURST) {
            let pod = pod_from_template(
                &template,
                Some(namespace.clone()),
                owner.clone(),
                Default::default(),
            );
            let created = pods_api
                .create(&PostParams::default(), &pod)
                .await
                .map_err(ReplicaSetError::CreatePod)?;
            ctx.events
                .publish(
                    rs.as_ref(),
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created pod: {}", created.name_any()),
                )
                .await;
        }
    } else if active.len() > desired {
        // The real controller's order: unscheduled, then pending, then not ready, then newest.
        active.sort_by_key(|p| deletion_rank(p));
        let excess = active.split_off(desired);
        for pod in excess.into_iter().take(BURST) {
            let name = pod.name_any();
            match pods_api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    ctx.events
                        .publish(
                            rs.as_ref(),
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {name}"),
                        )
                        .await;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(ReplicaSetError::DeletePod(e)),
            }
        }
    }

    let min_ready = Duration::from_secs(
        spec.min_ready_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
    );
    let active: Vec<&Pod> = owned.iter().filter(|p| is_active(p)).collect();
    let now = Timestamp::now();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let status = ReplicaSetStatus {
        replicas: count(active.len()),
        fully_labeled_replicas: Some(count(
            active
                .iter()
                .filter(|p| {
                    template_labels
                        .iter()
                        .all(|(k, v)| p.labels().get(k) == Some(v))
                })
                .count(),
        )),
        ready_replicas: Some(count(
            active.iter().filter(|p| ready_since(p).is_some()).count(),
        )),
        available_replicas: Some(count(
            active
                .iter()
                .filter(|p| is_available(p, min_ready, now))
                .count(),
        )),
        observed_generation: rs.metadata.generation,
        conditions: None,
        terminating_replicas: None,
    };
    if rs.status.as_ref() != Some(&status) {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({ "status": status });
        api.patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(ReplicaSetError::WriteStatus)?;
    }
    // A pod Ready but not yet for minReadySeconds becomes available without another event.
    let becoming_available = active
        .iter()
        .any(|p| ready_since(p).is_some() && !is_available(p, min_ready, now));
    Ok(if becoming_available {
        Action::requeue(Duration::from_secs(1))
    } else {
        Action::await_change()
    })
}

fn error_policy(_rs: Arc<ReplicaSet>, error: &ReplicaSetError, _ctx: Arc<Context>) -> Action {
    tracing::debug!(%error, "replica set reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Counts toward `replicas`: neither finished nor being deleted.
fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod's `Ready` condition turned True, if it is True.
pub(super) fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0),
    )
}

fn is_available(pod: &Pod, min_ready: Duration, now: Timestamp) -> bool {
    ready_since(pod).is_some_and(|since| {
        min_ready.is_zero()
            || now.duration_since(since).as_secs()
                >= i64::try_from(min_ready.as_secs()).unwrap_or(i64::MAX)
    })
}

/// Lower goes first when scaling down.
fn deletion_rank(pod: &Pod) -> (u8, u8, u8, std::cmp::Reverse<Option<Timestamp>>) {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let ready = ready_since(pod).is_some();
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        u8::from(scheduled),
        u8::from(running),
        u8::from(ready),
        std::cmp::Reverse(created),
    )
}
