//! Writing a checked request: the `TestClusterGKE` object, then the user ConfigMap owned by it.
//!
//! Either both exist afterwards or neither does: if the ConfigMap cannot be created, the object is
//! deleted again before the error is returned.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource as _};
use testcluster_api::errors::invalid_argument;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::metadata::CONFIG_MAP_INIT_MANIFEST_KEY;
use tonic::Status;
use tonic_types::FieldViolation;

use crate::errors::{is_already_exists, is_not_found, kube_status};
use crate::names;
use crate::validate::{CreatePlan, Naming};

/// Generated names collide rarely (27^5 per prefix); a few attempts make a failure vanishingly rare.
const NAME_ATTEMPTS: usize = 5;

/// Creates the object (and ConfigMap) `plan` describes, returning the object as created.
pub async fn create(client: &kube::Client, plan: &CreatePlan) -> Result<TestClusterGKE, Status> {
    let clusters: Api<TestClusterGKE> = Api::namespaced(client.clone(), &plan.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &plan.namespace);
    for _ in 0..NAME_ATTEMPTS {
        let name = match &plan.naming {
            Naming::Exact(name) => name.clone(),
            Naming::Prefix(prefix) => names::generate(prefix),
        };
        let generated = matches!(plan.naming, Naming::Prefix(_));

        // Someone else's ConfigMap must not be taken over (and later deleted with the object).
        if plan.init_manifest.is_some() {
            let config_map = names::user_config_map(&name);
            let existing = config_maps.get_opt(&config_map).await.map_err(|e| {
                kube_status(&format!("ConfigMap {}/{config_map}", plan.namespace), e)
            })?;
            if existing.is_some() {
                if generated {
                    continue;
                }
                return Err(Status::already_exists(format!(
                    "ConfigMap {}/{config_map}, which would hold the init manifest, already exists",
                    plan.namespace
                )));
            }
        }

        let object = resource(plan, &name);
        let created = match clusters.create(&PostParams::default(), &object).await {
            Ok(created) => created,
            Err(error) if generated && is_already_exists(&error) => continue,
            Err(error) if is_not_found(&error) => {
                return Err(invalid_argument(vec![FieldViolation::new(
                    "namespace",
                    format!("namespace {:?} does not exist", plan.namespace),
                )]));
            }
            Err(error) => {
                return Err(kube_status(
                    &format!("TestClusterGKE {}/{name}", plan.namespace),
                    error,
                ));
            }
        };
        if let Some(manifest) = &plan.init_manifest
            && let Err(status) = create_config_map(&config_maps, &created, manifest).await
        {
            roll_back(&clusters, &name).await;
            return Err(status);
        }
        tracing::info!(namespace = %plan.namespace, %name, "test cluster created");
        return Ok(created);
    }
    Err(Status::aborted(format!(
        "no free name with prefix {:?} after {NAME_ATTEMPTS} attempts; retry",
        plan.naming.representative()
    )))
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
    let mut object = TestClusterGKE::new(name, spec.into());
    object.metadata.namespace = Some(plan.namespace.clone());
    object.metadata.labels = non_empty(&plan.labels);
    object.metadata.annotations = non_empty(&plan.annotations);
    object
}

fn non_empty(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

/// The user ConfigMap, owned by the object so that deleting the object deletes it.
async fn create_config_map(
    config_maps: &Api<ConfigMap>,
    owner: &TestClusterGKE,
    manifest: &str,
) -> Result<(), Status> {
    let name = names::user_config_map(&owner.metadata.name.clone().unwrap_or_default());
    let mut config_map = ConfigMap {
        data: Some(BTreeMap::from([(
            CONFIG_MAP_INIT_MANIFEST_KEY.to_owned(),
            manifest.to_owned(),
        )])),
        ..ConfigMap::default()
    };
    config_map.metadata.name = Some(name.clone());
    config_map.metadata.owner_references = owner.controller_owner_ref(&()).map(|owner| vec![owner]);
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .map(|_| ())
        .map_err(|e| kube_status(&format!("ConfigMap {name}"), e))
}

/// Deletes a just-created object whose ConfigMap could not be created. Best effort: the error the
/// caller gets is the ConfigMap's; a failure here is logged for an operator.
async fn roll_back(clusters: &Api<TestClusterGKE>, name: &str) {
    if let Err(error) = clusters.delete(name, &DeleteParams::default()).await {
        tracing::error!(%name, %error, "could not delete a half-created test cluster");
    }
}
