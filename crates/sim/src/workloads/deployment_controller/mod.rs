//! The Deployment controller: a kube-runtime `Controller` on apps/v1 Deployments owning
//! ReplicaSets. Each pod template gets its own ReplicaSet, `<deployment>-<pod-template-hash>`, with
//! the `pod-template-hash` label on its selector and pods and the `deployment.kubernetes.io/revision`
//! annotation; [`rollout`] decides how many replicas each gets (RollingUpdate or Recreate) and the
//! status kubectl's `rollout status` reads. Old ReplicaSets beyond `revisionHistoryLimit` are
//! deleted once empty.

mod rollout;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::events::{EventRecorder, EventType};
use super::owned_objects::{controller_reference, is_controlled_by, selector_query};
use rollout::{ReplicaSetView, Strategy};

pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const DEFAULT_HISTORY_LIMIT: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("deployment has no namespace or uid")]
    Incomplete,
    #[error("listing the deployment's replica sets: {0}")]
    List(#[source] kube::Error),
    #[error("creating a replica set: {0}")]
    Create(#[source] kube::Error),
    #[error("scaling a replica set: {0}")]
    Scale(#[source] kube::Error),
    #[error("deleting an old replica set: {0}")]
    Delete(#[source] kube::Error),
    #[error("writing the deployment: {0}")]
    Write(#[source] kube::Error),
}

struct Context {
    client: Client,
    events: EventRecorder,
}

/// Runs the controller until `shutdown`.
pub(super) async fn run(client: Client, shutdown: CancellationToken) {
    let context = Arc::new(Context {
        events: EventRecorder::new(client.clone(), "deployment-controller", None),
        client: client.clone(),
    });
    Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<ReplicaSet>::all(client), watcher::Config::default())
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(reconcile, error_policy, context)
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "deployment reconcile");
        }
    })
    .await;
}

async fn reconcile(
    deployment: Arc<Deployment>,
    ctx: Arc<Context>,
) -> Result<Action, DeploymentError> {
    if deployment.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (Some(namespace), Some(uid)) = (deployment.namespace(), deployment.uid()) else {
        return Err(DeploymentError::Incomplete);
    };
    let spec = deployment.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let owned: Vec<ReplicaSet> = api
        .list(&ListParams::default().labels(&selector_query(&spec.selector)))
        .await
        .map_err(DeploymentError::List)?
        .items
        .into_iter()
        .filter(|rs| is_controlled_by(rs, &uid))
        .collect();
    let collision_count = deployment.status.as_ref().and_then(|s| s.collision_count);
    let hash = rollout::template_hash(&spec.template, collision_count);
    let (new, mut old): (Vec<ReplicaSet>, Vec<ReplicaSet>) = owned
        .into_iter()
        .partition(|rs| rs.labels().get(POD_TEMPLATE_HASH) == Some(&hash));
    old.sort_by_key(revision_of);
    let newest_old_revision = old.last().map_or(0, revision_of);

    let (new_rs, created) = match new.into_iter().next() {
        Some(rs) => (rs, false),
        None => {
            let rs = new_replica_set(&deployment, &hash, &uid, newest_old_revision + 1);
            let created = api
                .create(&PostParams::default(), &rs)
                .await
                .map_err(DeploymentError::Create)?;
            (created, true)
        }
    };
    // A rollback to an older template makes that template's ReplicaSet the newest revision.
    let new_revision = revision_of(&new_rs).max(newest_old_revision + 1);
    let new_view = view(&new_rs);
    let old_views: Vec<ReplicaSetView> = old.iter().map(view).collect();
    let strategy = Strategy::of(&spec);
    let (new_target, old_targets) = rollout::next_scale(replicas, strategy, &new_view, &old_views);

    let max_replicas = replicas
        + match strategy {
            Strategy::RollingUpdate { max_surge, .. } => max_surge,
            Strategy::Recreate => 0,
        };
    let scale = |rs: &ReplicaSet, target: i32, revision: Option<i64>| {
        let ctx = ctx.clone();
        let api = api.clone();
        let deployment = deployment.clone();
        let rs = rs.clone();
        async move {
            let current = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let revision_stale = revision.is_some_and(|r| revision_of(&rs) != r);
            if current == target && !revision_stale {
                return Ok(());
            }
            let mut annotations = BTreeMap::from([
                (DESIRED_REPLICAS.to_owned(), replicas.to_string()),
                (MAX_REPLICAS.to_owned(), max_replicas.to_string()),
            ]);
            if let Some(revision) = revision {
                annotations.insert(REVISION.to_owned(), revision.to_string());
            }
            let patch = serde_json::json!({
                "metadata": {"annotations": annotations},
                "spec": {"replicas": target},
            });
            api.patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(DeploymentError::Scale)?;
            if current != target {
                let direction = if target > current { "up" } else { "down" };
                let note = format!(
                    "Scaled {direction} replica set {} from {current} to {target}",
                    rs.name_any()
                );
                ctx.events
                    .publish(
                        deployment.as_ref(),
                        EventType::Normal,
                        "ScalingReplicaSet",
                        &note,
                    )
                    .await;
            }
            Ok::<_, DeploymentError>(())
        }
    };
    scale(&new_rs, new_target, Some(new_revision)).await?;
    for (rs, target) in old.iter().zip(&old_targets) {
        scale(rs, *target, None).await?;
    }
    prune_history(&api, &spec, &old, &old_targets).await?;

    let new_view = ReplicaSetView {
        desired: new_target,
        ..new_view
    };
    let old_views: Vec<ReplicaSetView> = old_views
        .into_iter()
        .zip(&old_targets)
        .map(|(v, target)| ReplicaSetView {
            desired: *target,
            ..v
        })
        .collect();
    let status = rollout::status(
        &spec,
        deployment.metadata.generation,
        deployment.status.as_ref(),
        &new_view,
        &old_views,
        created,
        Timestamp::now(),
    );
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = deployment.name_any();
    if deployment.annotations().get(REVISION) != Some(&new_revision.to_string()) {
        let patch =
            serde_json::json!({"metadata": {"annotations": {REVISION: new_revision.to_string()}}});
        deployments
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(DeploymentError::Write)?;
    }
    if deployment.status.as_ref() != Some(&status) {
        let patch = serde_json::json!({ "status": status });
        deployments
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(DeploymentError::Write)?;
    }
    Ok(Action::await_change())
}

fn error_policy(_d: Arc<Deployment>, error: &DeploymentError, _ctx: Arc<Context>) -> Action {
    tracing::debug!(%error, "deployment reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// The ReplicaSet of a new template: named and labelled by the template's hash, starting at zero.
fn new_replica_set(deployment: &Deployment, hash: &str, uid: &str, revision: i64) -> ReplicaSet {
    let spec = deployment.spec.clone().unwrap_or_default();
    let name = deployment.name_any();
    let mut template = spec.template.clone();
    let template_meta = template.metadata.get_or_insert_with(Default::default);
    template_meta
        .labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.to_owned(), hash.to_owned());
    let labels = template_meta.labels.clone();
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(POD_TEMPLATE_HASH.to_owned(), hash.to_owned());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: deployment.namespace(),
            labels,
            annotations: Some(BTreeMap::from([(
                REVISION.to_owned(),
                revision.to_string(),
            )])),
            owner_references: Some(vec![controller_reference(
                "apps/v1",
                "Deployment",
                name,
                uid.to_owned(),
            )]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// Deletes the oldest empty old ReplicaSets beyond `revisionHistoryLimit`.
async fn prune_history(
    api: &Api<ReplicaSet>,
    spec: &k8s_openapi::api::apps::v1::DeploymentSpec,
    old: &[ReplicaSet],
    old_targets: &[i32],
) -> Result<(), DeploymentError> {
    let limit = spec
        .revision_history_limit
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(DEFAULT_HISTORY_LIMIT);
    // `old` is oldest first.
    let empty: Vec<&ReplicaSet> = old
        .iter()
        .zip(old_targets)
        .filter(|(rs, target)| **target == 0 && view(rs).current == 0)
        .map(|(rs, _)| rs)
        .collect();
    let excess = old.len().saturating_sub(limit);
    for rs in empty.into_iter().take(excess) {
        match api
            .delete(&rs.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(DeploymentError::Delete(e)),
        }
    }
    Ok(())
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn view(rs: &ReplicaSet) -> ReplicaSetView {
    let status = rs.status.clone().unwrap_or_default();
    ReplicaSetView {
        name: rs.name_any(),
        desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        current: status.replicas,
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
    }
}
