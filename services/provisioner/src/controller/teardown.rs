//! Tearing a test cluster down: after its run (the CR stays as the record) and on deletion (the
//! finalizer goes once Config Connector has let go of every object).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::core::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use testcluster_resources::job_pod;
use testcluster_resources::lifecycle::Facts;
use testcluster_resources::lifetime::Bound;
use testcluster_resources::{Phase, TestClusterGKE, TestClusterGKEStatus};

use super::error::Error;
use super::expiry;
use super::provision::{dependency_of, is_controlled_by};
use super::status::{ProvisionerStatus, now, write_status};
use super::{
    Context, Known, REASON_DELETING_DEPENDENCIES, REASON_DEPENDENCIES_DELETED, REASON_INVALID_SPEC,
};
use crate::readiness::{self, Dependency};
use crate::template::OWNED_KINDS;

/// Deletes every object this CR controls; returns those that still exist (Config Connector keeps
/// them, with its finalizers, until the cloud resource is gone) and how many deletions it started.
async fn delete_owned(
    tc: &TestClusterGKE,
    context: &Context,
    cluster_name: &str,
) -> Result<(Vec<Dependency>, usize), Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let owner = tc.uid().unwrap_or_default();
    let writes = &context.writes;
    let mut remaining = Vec::new();
    let mut started = 0;
    for kind in OWNED_KINDS {
        let api: Api<DynamicObject> =
            Api::namespaced_with(context.client.clone(), &namespace, &kind.api_resource());
        let object = match context.owned_object(&owner, &kind, &namespace, cluster_name) {
            None => continue,
            Some(Known::Stored(object)) => object,
            // Applied and deleted by this process without the store ever showing it (its watch
            // may have re-listed in between): only a live read can tell whether it is still there.
            Some(Known::Applied(object))
                if writes.is_deleting(&owner, &object.uid().unwrap_or_default()) =>
            {
                match api.get_opt(cluster_name).await? {
                    Some(live) => Arc::new(live),
                    None => {
                        writes.settled(&owner, kind.kind);
                        continue;
                    }
                }
            }
            Some(Known::Applied(object)) => object,
        };
        let uid = object.uid().unwrap_or_default();
        // Someone else's object with the same name is left alone.
        if !is_controlled_by(&object, tc) {
            continue;
        }
        // Deleted already, by this process, even if the store does not show it yet.
        let deleting =
            object.metadata.deletion_timestamp.is_some() || writes.is_deleting(&owner, &uid);
        if !deleting {
            let params = DeleteParams {
                // The uid makes sure it is this object, not a new one with the same name.
                preconditions: Some(Preconditions {
                    uid: object.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match api.delete(cluster_name, &params).await {
                Ok(_) => {
                    started += 1;
                    writes.start_deleting(&owner, uid);
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    writes.settled(&owner, kind.kind);
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        remaining.push(dependency_of(&kind, &object));
    }
    Ok((remaining, started))
}

/// The run is over (Succeeded, Failed or Error): delete the cloud resources, keep the CR.
pub(super) async fn tear_down_after_run(
    tc: &TestClusterGKE,
    context: &Context,
    status: &TestClusterGKEStatus,
) -> Result<Action, Error> {
    let Some(cluster_name) = status.cluster_name.as_deref() else {
        // Nothing was ever created.
        return Ok(Action::await_change());
    };
    // A failed run with a hold keeps everything until the hold ends (a timer wakes it then).
    let current = ProvisionerStatus::from_current(status);
    let lifetimes = &context.settings.lifetimes;
    let held = expiry::of(tc, lifetimes, &current).is_some_and(|e| e.bound == Bound::Hold);
    if let Some(left) = expiry::timer(tc, lifetimes, &current).filter(|left| !left.is_zero()) {
        write_status(tc, context, &current).await?;
        return Ok(Action::requeue(left));
    }
    let (remaining, started) = delete_owned(tc, context, cluster_name).await?;
    let now = now();
    let before = ProvisionerStatus::from_current(status);
    let mut desired = before.clone();
    desired.dependency_conditions = remaining
        .iter()
        .map(|d| (d.key.clone(), d.conditions.clone()))
        .collect();
    // A run ended by an error (an invalid spec, a failed dependency, the provisioning timeout)
    // keeps the condition that says why; the dependency conditions show the teardown.
    let ended_by_error = before.error.is_some()
        || before
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == REASON_INVALID_SPEC);
    // A run that never had objects (refused before provisioning) keeps its condition as it is.
    let had_objects = !before.dependency_conditions.is_empty() || !remaining.is_empty();
    if !ended_by_error && had_objects {
        let condition = if remaining.is_empty() {
            readiness::condition(
                "False",
                REASON_DEPENDENCIES_DELETED,
                "All dependencies are deleted",
            )
        } else {
            readiness::condition(
                "False",
                REASON_DELETING_DEPENDENCIES,
                &format!("Deleting {} dependencies", remaining.len()),
            )
        };
        desired.conditions = readiness::set_condition(&before.conditions, condition, &now);
    }
    if remaining.is_empty() {
        // Nothing of this run's objects is left to remember: the store is the whole truth now.
        context.writes.forget(&tc.uid().unwrap_or_default());
    }
    write_status(tc, context, &desired).await?;
    if started > 0 {
        // The job's credentials reach nothing any more; they go with the cluster.
        delete_kubeconfig_secret(tc, context).await?;
        tracing::info!(name = %tc.name_any(), cluster = cluster_name, "run over, deleting cloud resources");
        context
            .publish(
                tc,
                EventType::Normal,
                "DeletingCluster",
                if held {
                    format!("The hold ended; deleting cluster {cluster_name} and its dependencies")
                } else {
                    format!("The run is over; deleting cluster {cluster_name} and its dependencies")
                },
            )
            .await;
    }
    if remaining.is_empty() && !before.dependency_conditions.is_empty() {
        tracing::info!(name = %tc.name_any(), cluster = cluster_name, "cloud resources deleted");
        context
            .publish(
                tc,
                EventType::Normal,
                "ClusterDeleted",
                format!("Cluster {cluster_name} and its dependencies are deleted"),
            )
            .await;
    }
    // Each owned object's disappearance is a watch event that brings this back.
    Ok(Action::await_change())
}

async fn delete_kubeconfig_secret(tc: &TestClusterGKE, context: &Context) -> Result<(), Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    match secrets
        .delete(
            &job_pod::kubeconfig_secret(&tc.name_any()),
            &DeleteParams::default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// The CR is being deleted: phase Deleting, delete everything, and keep the finalizer (by failing
/// with [`Error::TeardownInProgress`]) until Config Connector has released every object.
pub(super) async fn cleanup(tc: &TestClusterGKE, context: &Context) -> Result<Action, Error> {
    let status = tc.status.clone().unwrap_or_default();
    if status.phase != Some(Phase::Deleting) {
        let now = now();
        let mut desired = ProvisionerStatus::from_current(&status);
        let deleting = Facts {
            deleting: true,
            ..Facts::default()
        };
        desired.advance(deleting, &now);
        write_status(tc, context, &desired).await?;
        context
            .publish(
                tc,
                EventType::Normal,
                "Deleting",
                "Deleting the test cluster and its cloud resources".to_owned(),
            )
            .await;
    }
    let Some(cluster_name) = status.cluster_name.as_deref() else {
        return Ok(Action::await_change());
    };
    let (remaining, _) = delete_owned(tc, context, cluster_name).await?;
    if !remaining.is_empty() {
        return Err(Error::TeardownInProgress {
            remaining: remaining.len(),
        });
    }
    tracing::info!(name = %tc.name_any(), cluster = cluster_name, "deleted");
    // The finalizer goes now, and with it the object.
    context.writes.forget(&tc.uid().unwrap_or_default());
    Ok(Action::await_change())
}
