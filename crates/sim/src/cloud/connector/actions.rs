//! What each kind does in the simulated cloud, and the status fields it reports when done.
//!
//! Only ContainerCluster and ContainerNodePool touch [`Cloud`](crate::cloud::Cloud); networks and
//! IAM objects exist only as their Kubernetes objects, but take time and report the status fields
//! clients read (a service account's `email`, a key's `privateKey`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::core::DynamicObject;
use rand::Rng as _;
use serde_json::{Map, Value, json};

use super::container;
use super::kinds::Kind;
use super::reconcile::Context;
use crate::cloud::model::{ClusterRecord, DEFAULT_MACHINE_TYPE};
use crate::cloud::{CloudError, CloudFailure, ClusterKey, ClusterStatus, Provider, TestCluster};

const PROJECT_ANNOTATION: &str = "cnrm.cloud.google.com/project-id";
const REMOVE_DEFAULT_POOL_ANNOTATION: &str = "cnrm.cloud.google.com/remove-default-node-pool";
const DEFAULT_POOL: &str = "default-pool";

/// Why a cloud operation did not happen.
#[derive(Debug)]
pub(crate) enum ActionError {
    /// The cloud refused; the text follows "Update call failed: " in the Ready condition.
    Failed(String),
    /// The management cluster's API failed; retried as an ordinary reconcile error.
    Kube(kube::Error),
}

impl From<kube::Error> for ActionError {
    fn from(error: kube::Error) -> Self {
        ActionError::Kube(error)
    }
}

/// A node pool created by the ContainerNodePool controller.
pub(crate) struct PoolRecord {
    key: ClusterKey,
    pool: String,
    machine_type: String,
    /// The cloud cluster the pool was created in: a cluster deleted and created again under the
    /// same name starts without it.
    cluster: Weak<TestCluster>,
    size: u32,
}

/// Config Connector's (Terraform-based) wrapping of a cloud error.
fn desired_state_error(summary: &str) -> ActionError {
    ActionError::Failed(format!(
        "error applying desired state: summary: {summary}, detail: "
    ))
}

/// A failure of a synchronous GKE call (quota is refused with 403 at once).
fn googleapi_error(failure: &CloudFailure) -> String {
    match failure {
        CloudFailure::Quota { .. } => {
            format!("googleapi: Error 403: {}, forbidden", failure.message())
        }
        CloudFailure::Stockout { .. } => {
            format!("googleapi: Error 503: {}, unavailable", failure.message())
        }
    }
}

/// The status fields of the cloud resource behind a Ready object, as the cloud shows it now;
/// `None` if it is gone or no longer as the object asks (then it is created again, as Config
/// Connector corrects drift).
pub(crate) async fn observe(
    context: &Context,
    object: &DynamicObject,
    dependencies: &[(Kind, DynamicObject)],
) -> Result<Option<Map<String, Value>>, kube::Error> {
    Ok(match context.kind {
        Kind::ContainerCluster => match cluster_key(context, object).await? {
            Ok(key) if context.cloud.cluster(&key).is_some() => context
                .cloud
                .cluster_record(&key)
                .map(|record| container::cluster_status(&record)),
            _ => None,
        },
        Kind::ContainerNodePool => {
            let Ok(key) = pool_cluster_key(context, object, dependencies).await? else {
                return Ok(None);
            };
            let current = context.cloud.cluster(&key);
            let ours = context
                .pools
                .lock()
                .get(&uid(object))
                .is_some_and(|record| {
                    record.size == desired_pool_size(object)
                        && current
                            .as_ref()
                            .is_some_and(|c| Weak::ptr_eq(&record.cluster, &Arc::downgrade(c)))
                });
            let record = context.cloud.cluster_record(&key);
            let pool = record.as_ref().and_then(|r| r.pool(&resource_id(object)));
            match pool {
                Some(pool) if ours => Some(container::pool_status(&key, pool)),
                _ => None,
            }
        }
        _ => Some(Map::new()),
    })
}

/// Creates or updates the cloud resource; returns the status fields to report.
pub(crate) async fn apply(
    context: &Context,
    object: &DynamicObject,
    dependencies: &[(Kind, DynamicObject)],
) -> Result<Map<String, Value>, ActionError> {
    match context.kind {
        Kind::ContainerCluster => apply_cluster(context, object).await,
        Kind::ContainerNodePool => apply_pool(context, object, dependencies).await,
        kind => {
            // Config Connector writes these once; a later spec change only takes the API call's time.
            tokio::time::sleep(context.config.other_create).await;
            let project = project(context, object).await?;
            Ok(other_status(kind, object, dependencies, &project))
        }
    }
}

/// Deletes the cloud resource behind `object`.
pub(crate) async fn delete(context: &Context, object: &DynamicObject) -> Result<(), ActionError> {
    match context.kind {
        Kind::ContainerCluster => {
            let Ok(key) = cluster_key(context, object).await? else {
                // Without a location nothing was ever created.
                return Ok(());
            };
            let stopping = context.cloud.with_clusters(|records| {
                let record = records.get_mut(&key)?;
                record.status = ClusterStatus::Stopping;
                Some(())
            });
            if stopping.is_none() {
                return Ok(());
            }
            sleep_delete(context, &key.location).await;
            match context.cloud.delete_cluster(&key) {
                Ok(()) | Err(CloudError::NotFound(_)) => Ok(()),
                Err(error) => Err(ActionError::Failed(error.to_string())),
            }
        }
        Kind::ContainerNodePool => {
            let record = context.pools.lock().get(&uid(object)).map(|record| {
                (
                    record.key.clone(),
                    record.pool.clone(),
                    record.machine_type.clone(),
                    record.cluster.clone(),
                )
            });
            let Some((key, pool, machine_type, cluster)) = record else {
                return Ok(());
            };
            // A pool whose cluster is gone went with it.
            let live = context
                .cloud
                .cluster(&key)
                .is_some_and(|c| Weak::ptr_eq(&cluster, &Arc::downgrade(&c)));
            if live {
                sleep_delete(context, &key.location).await;
                match context
                    .cloud
                    .resize_pool(&key, &pool, &machine_type, 0)
                    .await
                {
                    Ok(()) | Err(CloudError::NotFound(_)) => {}
                    Err(error) => return Err(ActionError::Failed(error.to_string())),
                }
                context.cloud.with_clusters(|records| {
                    if let Some(record) = records.get_mut(&key) {
                        record.pools.retain(|p| p.name != pool);
                    }
                });
            }
            context.pools.lock().remove(&uid(object));
            Ok(())
        }
        _ => {
            tokio::time::sleep(context.config.delete).await;
            Ok(())
        }
    }
}

async fn sleep_delete(context: &Context, location: &str) {
    let delay = context.config.delete + context.cloud.faults().delete_delay(location);
    tokio::time::sleep(delay).await;
}

async fn apply_cluster(
    context: &Context,
    object: &DynamicObject,
) -> Result<Map<String, Value>, ActionError> {
    let key = match cluster_key(context, object).await? {
        Ok(key) => key,
        Err(message) => return Err(desired_state_error(&message)),
    };
    // An existing cluster is acquired, as Config Connector does; its settings are immutable here.
    if context.cloud.cluster(&key).is_some()
        && let Some(record) = context.cloud.cluster_record(&key)
    {
        return Ok(container::cluster_status(&record));
    }
    let spec = &object.data["spec"];
    let machine_type = machine_type(spec);
    let nodes = count(&spec["initialNodeCount"]).unwrap_or(1);
    let faults = context.cloud.faults();
    // Quota is checked when the create call is made, so it fails at once; a stockout only shows
    // when the operation ends.
    faults
        .quota_check(&key.project, &key.location, &machine_type, nodes)
        .map_err(|failure| desired_state_error(&googleapi_error(&failure)))?;
    // From the create call on, GKE shows the cluster PROVISIONING.
    let mut record = ClusterRecord::new(
        &key,
        container::cluster_spec(object, &key.project),
        Vec::new(),
    );
    if let Some(version) = spec["minMasterVersion"].as_str() {
        version.clone_into(&mut record.master_version);
    }
    let announced = context.cloud.with_clusters(|records| {
        if records.contains_key(&key) {
            return false;
        }
        records.insert(record);
        true
    });
    if !announced {
        return Err(desired_state_error(&format!(
            "googleapi: Error 409: {}, alreadyExists",
            CloudError::AlreadyExists(key.clone())
        )));
    }
    tokio::time::sleep(context.config.cluster_create + faults.create_delay(&key.location)).await;
    if let Err(failure) = faults.stockout_check(&key.location) {
        // Nothing outlives the failed creation: the next attempt starts afresh.
        let _ = context.cloud.delete_cluster(&key);
        return Err(desired_state_error(&format!(
            "Error waiting for creating GKE cluster: {}",
            failure.message()
        )));
    }
    match context
        .cloud
        .create_cluster(&key, Provider::ConfigConnector)
        .await
    {
        Ok(_) => {}
        Err(CloudError::AlreadyExists(_)) => {}
        Err(error) => return Err(desired_state_error(&error.to_string())),
    }
    tracing::debug!(%key, "ContainerCluster created its cloud cluster");
    let remove_default = object
        .annotations()
        .get(REMOVE_DEFAULT_POOL_ANNOTATION)
        .is_some_and(|v| v == "true");
    if !remove_default {
        context
            .cloud
            .resize_pool(&key, DEFAULT_POOL, &machine_type, nodes)
            .await
            .map_err(|error| desired_state_error(&error.to_string()))?;
    }
    let pool_spec = container::pool_spec(spec);
    let record = context.cloud.with_clusters(|records| {
        let record = records.get_mut(&key)?;
        record.status = ClusterStatus::Running;
        if let Some(pool) = record.pool_mut(DEFAULT_POOL) {
            pool.spec.extend(pool_spec);
        }
        Some(record.clone())
    });
    let record = record.ok_or_else(|| {
        desired_state_error(&format!("cluster {key} was deleted while being created"))
    })?;
    Ok(container::cluster_status(&record))
}

async fn apply_pool(
    context: &Context,
    object: &DynamicObject,
    dependencies: &[(Kind, DynamicObject)],
) -> Result<Map<String, Value>, ActionError> {
    let key = match pool_cluster_key(context, object, dependencies).await? {
        Ok(key) => key,
        Err(message) => return Err(desired_state_error(&message)),
    };
    let pool = resource_id(object);
    let machine_type = machine_type(&object.data["spec"]);
    let desired = desired_pool_size(object);
    let Some(cluster) = context.cloud.cluster(&key) else {
        return Err(desired_state_error(&format!(
            "error creating NodePool: googleapi: Error 404: Not found: {key}., notFound"
        )));
    };
    let current = context
        .pools
        .lock()
        .get(&uid(object))
        .filter(|record| Weak::ptr_eq(&record.cluster, &Arc::downgrade(&cluster)))
        .map(|record| record.size);
    let creating = current.is_none();
    if current != Some(desired) {
        let faults = context.cloud.faults();
        let added = desired.saturating_sub(current.unwrap_or(0));
        if added > 0 {
            faults
                .quota_check(&key.project, &key.location, &machine_type, added)
                .map_err(|failure| {
                    let verb = if creating {
                        "error creating NodePool"
                    } else {
                        "error resizing NodePool"
                    };
                    desired_state_error(&format!("{verb}: {}", googleapi_error(&failure)))
                })?;
        }
        let delay = context.config.node_pool_create
            + if added > 0 {
                faults.create_delay(&key.location)
            } else {
                Duration::ZERO
            };
        tokio::time::sleep(delay).await;
        if added > 0 {
            faults.stockout_check(&key.location).map_err(|failure| {
                let activity = if creating {
                    "creating GKE NodePool"
                } else {
                    "resizing GKE NodePool"
                };
                desired_state_error(&format!(
                    "Error waiting for {activity}: {}",
                    failure.message()
                ))
            })?;
        }
        context
            .cloud
            .resize_pool(&key, &pool, &machine_type, desired)
            .await
            .map_err(|error| desired_state_error(&error.to_string()))?;
        tracing::debug!(%key, %pool, nodes = desired, "ContainerNodePool sized");
        context.pools.lock().insert(
            uid(object),
            PoolRecord {
                key: key.clone(),
                pool: pool.clone(),
                machine_type,
                cluster: Arc::downgrade(&cluster),
                size: desired,
            },
        );
    }
    let pool_spec = container::pool_spec(&object.data["spec"]);
    let version = object.data["spec"]["version"].as_str().map(str::to_owned);
    let record = context.cloud.with_clusters(|records| {
        let found = records.get_mut(&key)?.pool_mut(&pool)?;
        if creating {
            found.spec.extend(pool_spec);
            if let Some(version) = version {
                found.version = version;
            }
        }
        Some(found.clone())
    });
    let record = record.ok_or_else(|| {
        desired_state_error(&format!(
            "error creating NodePool: googleapi: Error 404: Not found: {key}., notFound"
        ))
    })?;
    Ok(container::pool_status(&key, &record))
}

/// Status of the kinds that exist only as objects.
fn other_status(
    kind: Kind,
    object: &DynamicObject,
    dependencies: &[(Kind, DynamicObject)],
    project: &str,
) -> Map<String, Value> {
    let id = resource_id(object);
    let current = &object.data["status"];
    let status = match kind {
        Kind::ComputeNetwork => json!({
            "selfLink": format!("https://www.googleapis.com/compute/v1/projects/{project}/global/networks/{id}"),
        }),
        Kind::ComputeSubnetwork => {
            let region = object.data["spec"]["region"].as_str().unwrap_or_default();
            json!({
                "selfLink": format!(
                    "https://www.googleapis.com/compute/v1/projects/{project}/regions/{region}/subnetworks/{id}"
                ),
            })
        }
        Kind::IamServiceAccount => {
            let email = format!("{id}@{project}.iam.gserviceaccount.com");
            // The unique id is the cloud's, fixed at creation.
            let unique_id = current["uniqueId"]
                .as_str()
                .map_or_else(random_unique_id, str::to_owned);
            json!({
                "email": email,
                "member": format!("serviceAccount:{email}"),
                "name": format!("projects/{project}/serviceAccounts/{email}"),
                "uniqueId": unique_id,
            })
        }
        Kind::IamServiceAccountKey if current["name"].is_string() => {
            // A key is created once; its private key is never returned again.
            json!({})
        }
        Kind::IamServiceAccountKey => {
            let email = key_service_account(object, dependencies, project);
            let key_id = random_hex(40);
            let credentials = json!({
                "type": "service_account",
                "project_id": project,
                "private_key_id": key_id,
                "private_key": "",
                "client_email": email,
                "token_uri": "https://oauth2.googleapis.com/token",
            });
            json!({
                "name": format!("projects/{project}/serviceAccounts/{email}/keys/{key_id}"),
                "privateKey": base64::engine::general_purpose::STANDARD.encode(credentials.to_string()),
                "validAfter": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "validBefore": "9999-12-31T23:59:59Z",
            })
        }
        _ => json!({}),
    };
    match status {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The service account e-mail a key belongs to.
fn key_service_account(
    object: &DynamicObject,
    dependencies: &[(Kind, DynamicObject)],
    project: &str,
) -> String {
    if let Some(email) = dependencies
        .iter()
        .filter(|(kind, _)| *kind == Kind::IamServiceAccount)
        .find_map(|(_, d)| d.data["status"]["email"].as_str())
    {
        return email.to_owned();
    }
    let external = object.data["spec"]["serviceAccountRef"]["external"]
        .as_str()
        .unwrap_or_default();
    let email = external.rsplit('/').next().unwrap_or_default();
    if email.contains('@') {
        email.to_owned()
    } else {
        format!("{email}@{project}.iam.gserviceaccount.com")
    }
}

/// The cloud cluster a ContainerCluster stands for; `Err` carries why it cannot be named.
async fn cluster_key(
    context: &Context,
    object: &DynamicObject,
) -> Result<Result<ClusterKey, String>, kube::Error> {
    let Some(location) = object.data["spec"]["location"].as_str() else {
        return Ok(Err("spec.location is required".to_owned()));
    };
    Ok(Ok(ClusterKey {
        project: project(context, object).await?,
        location: location.to_owned(),
        name: resource_id(object),
    }))
}

/// The cloud cluster a ContainerNodePool belongs to: its referenced ContainerCluster, or the
/// cluster named by `clusterRef.external`.
async fn pool_cluster_key(
    context: &Context,
    object: &DynamicObject,
    dependencies: &[(Kind, DynamicObject)],
) -> Result<Result<ClusterKey, String>, kube::Error> {
    if let Some((_, cluster)) = dependencies
        .iter()
        .find(|(kind, _)| *kind == Kind::ContainerCluster)
    {
        return cluster_key(context, cluster).await;
    }
    let spec = &object.data["spec"];
    let external = spec["clusterRef"]["external"].as_str().unwrap_or_default();
    let parts: Vec<&str> = external.split('/').collect();
    let key = match parts.as_slice() {
        [
            "projects",
            project,
            "locations" | "zones",
            location,
            "clusters",
            name,
        ] => ClusterKey {
            project: (*project).to_owned(),
            location: (*location).to_owned(),
            name: (*name).to_owned(),
        },
        [name] if !name.is_empty() => {
            let Some(location) = spec["location"].as_str() else {
                return Ok(Err("spec.location is required".to_owned()));
            };
            ClusterKey {
                project: project(context, object).await?,
                location: location.to_owned(),
                name: (*name).to_owned(),
            }
        }
        _ => return Ok(Err("spec.clusterRef is required".to_owned())),
    };
    Ok(Ok(key))
}

/// The project: the object's `project-id` annotation, else its namespace's, else the namespace's
/// name (Config Connector's rules).
async fn project(context: &Context, object: &DynamicObject) -> Result<String, kube::Error> {
    if let Some(project) = object.annotations().get(PROJECT_ANNOTATION) {
        return Ok(project.clone());
    }
    let namespace = object.namespace().unwrap_or_default();
    let namespaces: Api<Namespace> = Api::all(context.client.clone());
    let annotated = namespaces
        .get_opt(&namespace)
        .await?
        .and_then(|ns| ns.annotations().get(PROJECT_ANNOTATION).cloned());
    Ok(annotated.unwrap_or(namespace))
}

pub(super) fn resource_id(object: &DynamicObject) -> String {
    object.data["spec"]["resourceID"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map_or_else(|| object.name_any(), str::to_owned)
}

fn machine_type(spec: &Value) -> String {
    spec["nodeConfig"]["machineType"]
        .as_str()
        .unwrap_or(DEFAULT_MACHINE_TYPE)
        .to_owned()
}

fn desired_pool_size(object: &DynamicObject) -> u32 {
    let spec = &object.data["spec"];
    count(&spec["nodeCount"])
        .or_else(|| count(&spec["initialNodeCount"]))
        .or_else(|| count(&spec["autoscaling"]["minNodeCount"]))
        .unwrap_or(1)
}

fn count(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn uid(object: &DynamicObject) -> String {
    object.uid().unwrap_or_else(|| object.name_any())
}

fn random_unique_id() -> String {
    let mut rng = rand::rng();
    let first = char::from(b'1' + rng.random_range(0..9u8));
    std::iter::once(first)
        .chain((0..20).map(|_| char::from(b'0' + rng.random_range(0..10u8))))
        .collect()
}

fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_failure_is_wrapped_as_config_connector_does() {
        let failure = CloudFailure::Quota {
            project: "p".into(),
            requested: 72.0,
            available: 24.0,
        };
        let ActionError::Failed(message) = desired_state_error(&googleapi_error(&failure)) else {
            panic!("not a failure");
        };
        assert_eq!(
            message,
            format!(
                "error applying desired state: summary: googleapi: Error 403: {}, forbidden, detail: ",
                failure.message()
            )
        );
    }

    #[test]
    fn pool_size_prefers_node_count() {
        let mut object = DynamicObject::new("p", &Kind::ContainerNodePool.api_resource());
        object.data = json!({"spec": {"initialNodeCount": 2, "nodeCount": 3}});
        assert_eq!(desired_pool_size(&object), 3);
        object.data = json!({"spec": {"initialNodeCount": 2}});
        assert_eq!(desired_pool_size(&object), 2);
        object.data = json!({"spec": {}});
        assert_eq!(desired_pool_size(&object), 1);
    }

    #[test]
    fn unique_ids_are_21_digits() {
        let id = random_unique_id();
        assert_eq!(id.len(), 21);
        assert!(id.chars().all(|c| c.is_ascii_digit()));
    }
}
