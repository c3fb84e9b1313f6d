//! Writing a checked request: the user ConfigMap first, then the `TestClusterGKE` object, then the
//! ConfigMap's ownerReference to the object.
//!
//! The ConfigMap comes first because the object starts the run: once it exists the provisioner (and,
//! when Ready, the runner, which mounts the ConfigMap) may act on it, so it must not exist without
//! its ConfigMap. Creating the ConfigMap also claims its name atomically: someone else's ConfigMap is
//! never taken over (and later deleted with the object). The ownerReference, which needs the
//! object's uid, is added last, so that deleting the object deletes the ConfigMap.
//!
//! Either both exist afterwards or neither does: whatever fails after the ConfigMap was created
//! deletes what was created before the error is returned.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource as _};
use testcluster_api::errors::invalid_argument;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::metadata::CONFIG_MAP_INIT_MANIFEST_KEY;
use tonic::Status;
use tonic_types::FieldViolation;

use crate::names;
use crate::validate::{CreatePlan, RequestedName};
use testcluster_service::kube_errors::{is_already_exists, is_not_found, kube_status};

/// Generated names collide rarely (27^5 per prefix); a few attempts make a failure vanishingly rare.
const NAME_ATTEMPTS: usize = 5;

/// Creates the object (and ConfigMap) `plan` describes, returning the object as created.
pub async fn create(client: &kube::Client, plan: &CreatePlan) -> Result<TestClusterGKE, Status> {
    let clusters: Api<TestClusterGKE> = Api::namespaced(client.clone(), &plan.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &plan.namespace);
    for _ in 0..NAME_ATTEMPTS {
        let name = match &plan.name {
            RequestedName::Exact(name) => name.clone(),
            RequestedName::Prefix(prefix) => names::generate(prefix),
        };
        let generated = matches!(plan.name, RequestedName::Prefix(_));

        let config_map = match &plan.init_manifest {
            Some(manifest) => {
                let config_map = names::user_config_map(&name);
                match create_config_map(&config_maps, &config_map, manifest).await {
                    Ok(()) => Some(config_map),
                    Err(error) if is_already_exists(&error) => {
                        if generated {
                            continue;
                        }
                        return Err(Status::already_exists(format!(
                            "ConfigMap {}/{config_map}, which would hold the init manifest, \
                             already exists",
                            plan.namespace
                        )));
                    }
                    Err(error) => return Err(create_error(plan, "ConfigMap", &config_map, error)),
                }
            }
            None => None,
        };

        let object = resource(plan, &name);
        let created = match clusters.create(&PostParams::default(), &object).await {
            Ok(created) => created,
            Err(error) => {
                if let Some(config_map) = &config_map {
                    delete_config_map(&config_maps, config_map).await;
                }
                if generated && is_already_exists(&error) {
                    continue;
                }
                return Err(create_error(plan, "TestClusterGKE", &name, error));
            }
        };
        if let Some(config_map) = &config_map
            && let Err(status) = set_owner(&config_maps, config_map, &created).await
        {
            roll_back(&clusters, &name).await;
            delete_config_map(&config_maps, config_map).await;
            return Err(status);
        }
        return Ok(created);
    }
    Err(Status::aborted(format!(
        "no free name with prefix {:?} after {NAME_ATTEMPTS} attempts; retry",
        plan.name.representative()
    )))
}

/// The status for a failed create of `kind` `name`: a missing namespace is the request's fault.
fn create_error(plan: &CreatePlan, kind: &str, name: &str, error: kube::Error) -> Status {
    if is_not_found(&error) {
        return invalid_argument(vec![FieldViolation::new(
            "namespace",
            format!("namespace {:?} does not exist", plan.namespace),
        )]);
    }
    kube_status(&format!("{kind} {}/{name}", plan.namespace), error)
}

/// The object to create: the plan's spec, with the ConfigMap's name filled in when the broker
/// creates one.
fn resource(plan: &CreatePlan, name: &str) -> TestClusterGKE {
    let mut spec = plan.spec.clone();
    if plan.init_manifest.is_some()
        && let Some(runner) = spec.job_spec.as_mut().and_then(|job| job.runner.as_mut())
    {
        runner.config_map = Some(names::user_config_map(name));
    }
    let mut object = TestClusterGKE::new(name, spec);
    object.metadata.namespace = Some(plan.namespace.clone());
    object.metadata.labels = non_empty(&plan.labels);
    object.metadata.annotations = non_empty(&plan.annotations);
    object
}

fn non_empty(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

/// The user ConfigMap, not owned yet: the object it will belong to does not exist yet.
async fn create_config_map(
    config_maps: &Api<ConfigMap>,
    name: &str,
    manifest: &str,
) -> Result<(), kube::Error> {
    let mut config_map = ConfigMap {
        data: Some(BTreeMap::from([(
            CONFIG_MAP_INIT_MANIFEST_KEY.to_owned(),
            manifest.to_owned(),
        )])),
        ..ConfigMap::default()
    };
    config_map.metadata.name = Some(name.to_owned());
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .map(|_| ())
}

/// Makes `owner` the ConfigMap's controller (a merge patch of `metadata.ownerReferences`), so that
/// deleting the object deletes the ConfigMap.
async fn set_owner(
    config_maps: &Api<ConfigMap>,
    name: &str,
    owner: &TestClusterGKE,
) -> Result<(), Status> {
    let what = || format!("ConfigMap {name}");
    let owner_reference = owner.controller_owner_ref(&()).ok_or_else(|| {
        Status::internal(format!(
            "{}: the created object has no name or uid to own it by",
            what()
        ))
    })?;
    let mut patch = ConfigMap::default();
    patch.metadata.owner_references = Some(vec![owner_reference]);
    config_maps
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| kube_status(&what(), e))
}

/// Deletes a just-created object whose ConfigMap could not be owned by it. Best effort: the error
/// the caller gets is the ConfigMap's; a failure here is logged for an operator.
async fn roll_back(clusters: &Api<TestClusterGKE>, name: &str) {
    if let Err(error) = clusters.delete(name, &DeleteParams::default()).await {
        tracing::error!(%name, %error, "could not delete a half-created test cluster");
    }
}

/// Deletes a just-created ConfigMap whose object could not be created (or owns it not). Best
/// effort, as [`roll_back`].
async fn delete_config_map(config_maps: &Api<ConfigMap>, name: &str) {
    if let Err(error) = config_maps.delete(name, &DeleteParams::default()).await {
        tracing::error!(%name, %error, "could not delete the ConfigMap of a test cluster not created");
    }
}
