//! Bringing a test cluster up: name it, render its template, apply the objects, fold their
//! conditions into the status, and end the run when the infrastructure gives up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Value, json};
use testcluster_resources::job_pod;
use testcluster_resources::lifecycle::Facts;
use testcluster_resources::metadata::{
    DEFAULT_CONFIG_TEMPLATE, DEFAULT_MACHINE_TYPE, DEFAULT_NODES, LABEL_TEST_CLUSTER,
    dependency_key,
};
use testcluster_resources::{Condition, ErrorStatus, Phase, TestClusterGKE, TestClusterGKEStatus};

use super::error::Error;
use super::expiry;
use super::naming::{generate_cluster_name, region_of};
use super::status::{ProvisionerStatus, now, write_status};
use super::stores;
use super::{
    Context, FIELD_MANAGER, Known, REASON_DEPENDENCY_FAILED, REASON_INVALID_SPEC,
    REASON_PROVISIONING_TIMEOUT,
};
use crate::Settings;
use crate::access;
use crate::classify;
use crate::readiness::{self, Dependency};
use crate::template::{self, CONTAINER_CLUSTER, ObjectKind, RenderedObject, TemplateParams};

/// Template parameters for `tc`, with the seed's defaults and the provisioner's configuration
/// filling unset fields.
pub(super) fn template_params(
    tc: &TestClusterGKE,
    cluster_name: &str,
    settings: &Settings,
) -> TemplateParams {
    let spec = &tc.spec;
    let location = spec
        .location
        .clone()
        .unwrap_or_else(|| settings.default_location.clone());
    TemplateParams {
        namespace: tc.namespace().unwrap_or_default(),
        cluster_name: cluster_name.to_owned(),
        project: spec
            .project
            .clone()
            .unwrap_or_else(|| settings.default_project.clone()),
        region: spec.region.clone().unwrap_or_else(|| region_of(&location)),
        location,
        machine_type: spec
            .machine_type
            .clone()
            .unwrap_or_else(|| DEFAULT_MACHINE_TYPE.to_owned()),
        // Validation has ruled out values below 1.
        nodes: u32::try_from(spec.nodes.unwrap_or(DEFAULT_NODES)).unwrap_or(1),
        kubernetes_version: spec.kubernetes_version.clone(),
    }
}

pub(super) fn is_controlled_by(object: &DynamicObject, tc: &TestClusterGKE) -> bool {
    object
        .owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && Some(&owner.uid) == tc.uid().as_ref())
}

pub(super) fn has_other_controller(object: &DynamicObject, tc: &TestClusterGKE) -> bool {
    object
        .owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && Some(&owner.uid) != tc.uid().as_ref())
}

pub(super) fn dependency_of(kind: &ObjectKind, object: &DynamicObject) -> Dependency {
    let status = &object.data["status"];
    let conditions: Vec<Condition> =
        serde_json::from_value(status["conditions"].clone()).unwrap_or_default();
    let observed = status["observedGeneration"].as_i64().is_some()
        && status["observedGeneration"].as_i64() == object.metadata.generation;
    Dependency {
        key: dependency_key(
            kind.kind,
            &object.namespace().unwrap_or_default(),
            &object.name_any(),
        ),
        conditions,
        observed,
    }
}

/// First step: a name for the cloud cluster, persisted before anything exists in the cloud, so
/// that every later reconcile (in this process or the next) creates objects under that one name.
pub(super) async fn assign_cluster_name(
    tc: &TestClusterGKE,
    context: &Context,
) -> Result<Action, Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    // The store may lag behind a name written just before (by a previous process: this one's own
    // writes are fenced in `reconcile`). The write is conditional on the version read, so a stale
    // copy gets a conflict, never a second name.
    let status = tc.status.clone().unwrap_or_default();
    let cluster_name = generate_cluster_name(&tc.name_any());
    let now = now();
    let mut desired = ProvisionerStatus::from_current(&status);
    desired.cluster_name = Some(cluster_name.clone());
    desired.advance(Facts::of_job(&status), &now);
    desired.conditions = readiness::set_condition(
        &desired.conditions,
        readiness::aggregate(&[], 0).condition,
        &now,
    );
    write_status(tc, context, &desired).await?;
    tracing::info!(name = %tc.name_any(), namespace, cluster = cluster_name, "accepted");
    context
        .publish(
            tc,
            EventType::Normal,
            "Pending",
            format!("Cloud cluster will be named {cluster_name}"),
        )
        .await;
    Ok(Action::await_change())
}

/// A spec no template can build: say why in the Ready condition and an Event, and stop (phase
/// Error). Never an error of the reconcile, so a bad object cannot make the controller loop.
pub(super) async fn reject(
    tc: &TestClusterGKE,
    context: &Context,
    status: &TestClusterGKEStatus,
    message: &str,
) -> Result<Action, Error> {
    let mut desired = ProvisionerStatus::from_current(status);
    desired.observed_generation = tc.metadata.generation;
    let error = ErrorStatus {
        code: REASON_INVALID_SPEC.to_owned(),
        message: message.to_owned(),
        retryable: false,
    };
    end_with_error(tc, context, desired, REASON_INVALID_SPEC, error).await
}

/// Ends the run: `error`, the `Ready` condition False with `reason` and the error's message (and
/// so phase Error), and a Warning Event named after the error's code. The phase change brings the
/// reconcile back, and the terminal-phase teardown deletes whatever was created.
async fn end_with_error(
    tc: &TestClusterGKE,
    context: &Context,
    mut desired: ProvisionerStatus,
    reason: &str,
    error: ErrorStatus,
) -> Result<Action, Error> {
    let now = now();
    desired.error = Some(error.clone());
    desired.advance(Facts::default(), &now);
    desired.conditions = readiness::set_condition(
        &desired.conditions,
        readiness::condition("False", reason, &error.message),
        &now,
    );
    if write_status(tc, context, &desired).await? {
        tracing::info!(
            name = %tc.name_any(),
            code = error.code,
            message = error.message,
            retryable = error.retryable,
            "run ended with an error"
        );
        context
            .publish(tc, EventType::Warning, &error.code, error.message)
            .await;
    }
    Ok(Action::await_change())
}

/// Whether the provisioner is still bringing the cluster up (the only time a dependency failure
/// or the provisioning timeout can end the run).
fn is_provisioning(phase: Option<Phase>) -> bool {
    matches!(phase, None | Some(Phase::Pending | Phase::Provisioning))
}

/// Whether the run has started or is over: from then on no Config Connector object is ever
/// created again. The runner's job counts as soon as it is recorded, before the phase follows.
fn run_has_started(status: &TestClusterGKEStatus) -> bool {
    status
        .phase
        .is_some_and(|p| p == Phase::Running || p.is_terminal())
        || Facts::of_job(status).job_started
}

/// How long ago `since` was, as of `now` (zero for a time in the future).
fn elapsed(since: &Time, now: &Time) -> Duration {
    Duration::try_from(now.0.duration_since(since.0)).unwrap_or_default()
}

/// Applies the template's objects when needed and folds their conditions into the status.
pub(super) async fn provision(
    tc: &TestClusterGKE,
    context: &Context,
    status: &TestClusterGKEStatus,
    cluster_name: &str,
) -> Result<Action, Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let template_name = tc
        .spec
        .config_template
        .as_deref()
        .unwrap_or(DEFAULT_CONFIG_TEMPLATE);
    let Some(template) = template::find(template_name) else {
        // Validation already refused unknown templates; this is only reachable if they disagree.
        return reject(tc, context, status, "spec.configTemplate: unknown template").await;
    };
    let params = template_params(tc, cluster_name, &context.settings);
    let rendered = template.render(&params);
    // A new generation (or a first apply) sends every object; otherwise only missing ones are
    // created again, so a dependency's status change costs a store read, not a request.
    // (A status not showing the generation yet may be a store behind this process's own write.)
    let owner_uid = tc.uid().unwrap_or_default();
    let spec_changed = status.observed_generation != tc.metadata.generation
        && !context
            .writes
            .has_applied_generation(&owner_uid, tc.metadata.generation);
    let started = run_has_started(status);
    let owner = tc.controller_owner_ref(&()).map(|owner| json!([owner]));
    let mut dependencies = Vec::with_capacity(rendered.len());
    let mut applied = 0;
    let mut not_recreated = Vec::new();
    for object in &rendered {
        let current = context
            .owned_object(&owner_uid, &object.kind, &namespace, object.name())
            .map(Known::into_object);
        if let Some(current) = &current
            && has_other_controller(current, tc)
        {
            return Err(Error::NotOwned {
                kind: object.kind.kind,
                namespace,
                name: object.name().to_owned(),
            });
        }
        let live = match current {
            // Being deleted by someone else: it is created again once it is gone (its deletion is
            // a watch event).
            Some(current) if current.metadata.deletion_timestamp.is_some() => current,
            Some(current) if !spec_changed => current,
            // Once the run has started, a missing object is never created again: the cluster it
            // belongs to is in use or done with (a stale phase must not bring it back). Missing,
            // it counts as not ready.
            None if started => {
                not_recreated.push(dependency_key(object.kind.kind, &namespace, object.name()));
                continue;
            }
            _ => {
                applied += 1;
                let api = Api::namespaced_with(
                    context.client.clone(),
                    &namespace,
                    &object.kind.api_resource(),
                );
                let mut written = apply_object(&api, object, tc, owner.clone()).await?;
                stores::slim(&mut written);
                let written = Arc::new(written);
                context
                    .writes
                    .applied(&owner_uid, object.kind.kind, written.clone());
                written
            }
        };
        dependencies.push(dependency_of(&object.kind, &live));
    }
    if spec_changed {
        context
            .writes
            .applied_generation(&owner_uid, tc.metadata.generation);
    }
    if !not_recreated.is_empty() {
        tracing::warn!(
            name = %tc.name_any(),
            cluster = cluster_name,
            missing = ?not_recreated,
            "the run has started; missing Config Connector objects are not created again"
        );
    }

    let now = now();
    let readiness = readiness::aggregate(&dependencies, rendered.len());
    let before = ProvisionerStatus::from_current(status);
    let mut desired = before.clone();
    desired.location = Some(params.location.clone());
    desired.observed_generation = tc.metadata.generation;
    desired.error = None;
    desired.conditions = readiness::set_condition(&before.conditions, readiness.condition, &now);
    desired.dependency_conditions = dependencies
        .iter()
        .map(|d| (d.key.clone(), d.conditions.clone()))
        .collect();
    // Ready means usable: the job's credentials are handed out before the cluster is called ready.
    let cluster_ready = readiness.all_ready
        && (!is_provisioning(status.phase)
            || hand_out_access(tc, context, cluster_name, &params.location).await?);
    let facts = Facts {
        provisioning_started: true,
        cluster_ready,
        ..Facts::of_job(status)
    };
    desired.advance(facts, &now);
    let provisioning_since = desired
        .phase_timestamps
        .provisioning_time
        .clone()
        .unwrap_or_else(|| now.clone());

    // The TTL's end is a timer too: nothing else would wake a cluster without a job.
    let ttl_left = expiry::timer(tc, &context.settings.lifetimes, &desired);
    let mut action = ttl_left.map_or_else(Action::await_change, Action::requeue);
    // While coming up, a failure that retrying will not fix (or running out of time) ends the run.
    if is_provisioning(status.phase) && !readiness.all_ready {
        if let Some(failure) = classify::first_failure(&dependencies) {
            let error = ErrorStatus {
                code: failure.classification.code.to_owned(),
                message: failure.message,
                retryable: failure.classification.retryable,
            };
            return end_with_error(tc, context, desired, REASON_DEPENDENCY_FAILED, error).await;
        }
        let timeout = context.settings.provision_timeout;
        let waited = elapsed(&provisioning_since, &now);
        if waited >= timeout {
            let error = ErrorStatus {
                code: classify::CODE_PROVISIONING_TIMEOUT.to_owned(),
                message: classify::timeout_message(timeout, &dependencies),
                // Mostly a slow or failing zone: another attempt (or zone) may well succeed.
                retryable: true,
            };
            return end_with_error(tc, context, desired, REASON_PROVISIONING_TIMEOUT, error).await;
        }
        // A timer, not a poll: every reconcile (each dependency change) sets it again.
        action = Action::requeue((timeout - waited).min(ttl_left.unwrap_or(Duration::MAX)));
    }
    write_status(tc, context, &desired).await?;

    if applied > 0 {
        tracing::info!(name = %tc.name_any(), cluster = cluster_name, applied, "applied objects");
    }
    if before.phase != desired.phase {
        match desired.phase {
            Some(Phase::Provisioning) => {
                context
                    .publish(
                        tc,
                        EventType::Normal,
                        "Provisioning",
                        format!(
                            "Applied {} objects of template {} for cluster {cluster_name} in {}",
                            rendered.len(),
                            template.name,
                            params.location
                        ),
                    )
                    .await;
            }
            Some(Phase::Ready) => {
                tracing::info!(name = %tc.name_any(), cluster = cluster_name, "ready");
                context
                    .publish(
                        tc,
                        EventType::Normal,
                        "Ready",
                        format!("Cluster {cluster_name} is ready in {}", params.location),
                    )
                    .await;
            }
            _ => {}
        }
    }
    publish_dependency_failures(tc, context, &before.dependency_conditions, &dependencies).await;
    Ok(action)
}

/// Mints access to the cloud cluster `cluster_name` and writes it to the test cluster's kubeconfig
/// Secret. `false` while the ContainerCluster is not in the store yet.
async fn hand_out_access(
    tc: &TestClusterGKE,
    context: &Context,
    cluster_name: &str,
    location: &str,
) -> Result<bool, Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let Some(cluster) = context
        .owned
        .get(&CONTAINER_CLUSTER, &namespace, cluster_name)
    else {
        return Ok(false);
    };
    let qualified = format!("{namespace}/{}", tc.name_any());
    let access = context
        .access
        .issue(&qualified, &cluster, location.to_owned())
        .await?;
    let secret = access::kubeconfig_secret(tc, &access);
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    secrets
        .patch(
            &job_pod::kubeconfig_secret(&tc.name_any()),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await?;
    tracing::info!(test_cluster = %qualified, cluster = cluster_name, "handed out cluster access");
    Ok(true)
}

/// A dependency that newly reports a failure (Config Connector's `UpdateFailed`, say a zone
/// stockout) is worth a Warning in `kubectl describe`.
async fn publish_dependency_failures(
    tc: &TestClusterGKE,
    context: &Context,
    before: &BTreeMap<String, Vec<Condition>>,
    dependencies: &[Dependency],
) {
    let failed = |conditions: &[Condition]| {
        conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.status == "False" && c.reason.ends_with("Failed"))
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    for dependency in dependencies {
        let Some((reason, message)) = failed(&dependency.conditions) else {
            continue;
        };
        if before.get(&dependency.key).and_then(|c| failed(c))
            == Some((reason.clone(), message.clone()))
        {
            continue;
        }
        context
            .publish(
                tc,
                EventType::Warning,
                "DependencyFailed",
                format!("{}: {reason}: {message}", dependency.key),
            )
            .await;
    }
}

async fn apply_object(
    api: &Api<DynamicObject>,
    object: &RenderedObject,
    tc: &TestClusterGKE,
    owner: Option<Value>,
) -> Result<DynamicObject, Error> {
    let mut manifest = object.manifest.clone();
    if let Some(owner) = owner {
        manifest["metadata"]["ownerReferences"] = owner;
    }
    manifest["metadata"]["labels"][LABEL_TEST_CLUSTER] = json!(tc.name_any());
    Ok(api
        .patch(
            object.name(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&manifest),
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    #[test]
    fn a_started_run_is_recognised_by_phase_or_job() {
        let with = |phase: Option<Phase>, job: Option<&str>| TestClusterGKEStatus {
            phase,
            job: job.map(|name| testcluster_resources::JobStatus {
                name: Some(name.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cases = [
            (with(None, None), false),
            (with(Some(Phase::Pending), None), false),
            (with(Some(Phase::Provisioning), None), false),
            (with(Some(Phase::Ready), None), false),
            (with(Some(Phase::Running), None), true),
            (with(Some(Phase::Succeeded), None), true),
            (with(Some(Phase::Error), None), true),
            // The runner recorded its job; the phase follows on the next write.
            (with(Some(Phase::Ready), Some("t-runner")), true),
        ];
        for (status, started) in cases {
            assert_eq!(run_has_started(&status), started, "{status:?}");
        }
        assert!(is_provisioning(None));
        assert!(is_provisioning(Some(Phase::Provisioning)));
        assert!(!is_provisioning(Some(Phase::Ready)));
    }

    #[test]
    fn elapsed_is_never_negative() {
        let at = |s| Time(Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH));
        assert_eq!(elapsed(&at(100), &at(130)), Duration::from_secs(30));
        assert_eq!(elapsed(&at(130), &at(100)), Duration::ZERO);
    }

    #[test]
    fn defaults_fill_the_template_params() {
        let tc = TestClusterGKE::new("testme-1", Default::default());
        let mut tc = tc;
        tc.metadata.namespace = Some("ns".into());
        let settings = Settings::default();
        let params = template_params(&tc, "testme-1-abcde", &settings);
        assert_eq!(params.project, settings.default_project);
        assert_eq!(params.location, settings.default_location);
        assert_eq!(params.region, "europe-west2");
        assert_eq!(params.nodes, 2);
        assert_eq!(params.machine_type, "n1-standard-4");
        assert_eq!(params.namespace, "ns");
    }
}
