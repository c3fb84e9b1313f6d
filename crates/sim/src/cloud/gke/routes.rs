//! Request handling for the container v1 subset: validation, synchronous errors, and starting
//! operations (whose work [`super::operations`] does in the background).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::errors::GoogleError;
use super::model::{
    ClusterRecord, ClusterStatus, DEFAULT_MACHINE_TYPE, Encoding, GkeEnum as _, OpType, PoolRecord,
    PoolStatus, cluster_json, cluster_path, location_path, operation_json, pool_json,
};
use super::operations::{self, PoolPlan};
use super::paths::{self, Scope, Target};
use super::state::{GkeState, Records};
use super::updates::Change;
use crate::cloud::{CloudError, ClusterKey, vcpus_of};

type Answer = Result<Value, GoogleError>;

pub fn router(state: Arc<GkeState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(
    State(state): State<Arc<GkeState>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let enc = Encoding::from_query(uri.query());
    let answer = match paths::parse(uri.path()) {
        Some(target) => handle(&state, &method, target, &body, enc),
        None => Err(GoogleError::not_found(format!(
            "The requested URL {} was not found on this server.",
            uri.path()
        ))),
    };
    tracing::debug!(%method, path = uri.path(), ok = answer.is_ok(), "GKE API request");
    match answer {
        Ok(value) => Json(value).into_response(),
        Err(error) => error.into_response(),
    }
}

fn handle(
    state: &Arc<GkeState>,
    method: &Method,
    target: Target,
    body: &[u8],
    enc: Encoding,
) -> Answer {
    use Target::*;
    match (method.as_str(), target) {
        ("GET", Clusters(scope)) => list_clusters(state, &scope, enc),
        ("POST", Clusters(scope)) => create_cluster(state, scope, &parse_body(body)?, enc),
        ("GET", Cluster(scope, name)) => state.with(|r| {
            let cluster = find_cluster(r, &scope, &name)?;
            Ok(cluster_json(cluster, enc))
        }),
        ("DELETE", Cluster(scope, name)) => delete_cluster(state, key(scope, name)?, enc),
        ("PUT", Cluster(scope, name)) => {
            let update = object(parse_body(body)?.get("update"));
            update_cluster(state, key(scope, name)?, None, enc, |cluster| {
                Change::cluster_update(&update, cluster)
            })
        }
        ("POST", SetResourceLabels(scope, name)) => {
            let request = object(Some(&parse_body(body)?));
            update_cluster(state, key(scope, name)?, None, enc, |cluster| {
                Change::set_labels(&request, cluster)
            })
        }
        ("PUT", NodePool(scope, name, pool)) => {
            let request = object(Some(&parse_body(body)?));
            update_cluster(state, key(scope, name)?, Some(&pool), enc, |cluster| {
                Change::pool_update(&request, cluster, &pool)
            })
        }
        ("GET", NodePools(scope, name)) => state.with(|r| {
            let cluster = find_cluster(r, &scope, &name)?;
            let pools: Vec<Value> = cluster
                .pools
                .iter()
                .map(|p| pool_json(&cluster.key, p, enc))
                .collect();
            Ok(json!({"nodePools": pools}))
        }),
        ("POST", NodePools(scope, name)) => {
            create_pool(state, key(scope, name)?, &parse_body(body)?, enc)
        }
        ("GET", NodePool(scope, name, pool)) => state.with(|r| {
            let cluster = find_cluster(r, &scope, &name)?;
            let found = find_pool(cluster, &pool)?;
            Ok(pool_json(&cluster.key, found, enc))
        }),
        ("DELETE", NodePool(scope, name, pool)) => {
            delete_pool(state, key(scope, name)?, &pool, enc)
        }
        ("POST", SetSize(scope, name, pool)) => {
            set_size(state, key(scope, name)?, &pool, &parse_body(body)?, enc)
        }
        ("GET", Operations(scope)) => state.with(|r| {
            let mut ops: Vec<_> = r
                .operations
                .values()
                .filter(|op| in_scope(&scope, &op.project, &op.location))
                .collect();
            ops.sort_by(|a, b| a.start_time.cmp(&b.start_time));
            let ops: Vec<Value> = ops.into_iter().map(|op| operation_json(op, enc)).collect();
            Ok(json!({"operations": ops}))
        }),
        ("GET", Operation(scope, name)) => state.with(|r| {
            r.operations
                .get(&name)
                .filter(|op| in_scope(&scope, &op.project, &op.location))
                .map(|op| operation_json(op, enc))
                .ok_or_else(|| {
                    GoogleError::not_found(format!(
                        "Not found: {}/operations/{name}.",
                        location_path(&scope.project, &scope.location)
                    ))
                })
        }),
        // Google answers an unsupported method on a known path as an unknown URL.
        (_, _) => Err(GoogleError::not_found(format!(
            "Method {method} is not supported for this resource."
        ))),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, GoogleError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| GoogleError::invalid_argument(format!("Invalid JSON payload received. {e}")))
}

/// `-` (all locations) is only good for listing.
fn in_scope(scope: &Scope, project: &str, location: &str) -> bool {
    scope.project == project && (scope.location == "-" || scope.location == location)
}

fn key(scope: Scope, name: String) -> Result<ClusterKey, GoogleError> {
    if scope.location == "-" {
        return Err(GoogleError::invalid_argument(
            "Location \"-\" is only supported for listing.",
        ));
    }
    Ok(ClusterKey {
        project: scope.project,
        location: scope.location,
        name,
    })
}

fn not_found(key: &ClusterKey) -> GoogleError {
    GoogleError::not_found(format!("Not found: {}.", cluster_path(key)))
}

/// The cluster `name` in `scope`; with location `-`, in any location of the project.
fn find_cluster<'r>(
    records: &'r Records,
    scope: &Scope,
    name: &str,
) -> Result<&'r ClusterRecord, GoogleError> {
    records
        .clusters
        .values()
        .find(|c| c.key.name == name && in_scope(scope, &c.key.project, &c.key.location))
        .ok_or_else(|| {
            not_found(&ClusterKey {
                project: scope.project.clone(),
                location: scope.location.clone(),
                name: name.to_owned(),
            })
        })
}

fn find_pool<'c>(cluster: &'c ClusterRecord, pool: &str) -> Result<&'c PoolRecord, GoogleError> {
    cluster.pool(pool).ok_or_else(|| {
        let key = &cluster.key;
        GoogleError::not_found(format!(
            "nodePool \"projects/{}/locations/{}/clusters/{}/nodePools/{pool}\" not found",
            key.project, key.location, key.name
        ))
    })
}

/// GKE runs one operation on a cluster at a time.
fn ensure_idle(cluster: &ClusterRecord) -> Result<(), GoogleError> {
    let Some((op, op_type)) = &cluster.busy else {
        return Ok(());
    };
    let name = &cluster.key.name;
    Err(GoogleError::failed_precondition(match op_type {
        OpType::CreateCluster => format!(
            "Operation {op} is currently creating cluster {name}. Please wait and try again once it is done."
        ),
        OpType::DeleteCluster => format!(
            "Operation {op} is currently deleting cluster {name}. Please wait and try again once it is done."
        ),
        OpType::UpgradeMaster | OpType::UpgradeNodes => format!(
            "Operation {op} is currently upgrading cluster {name}. Please wait and try again once it is done."
        ),
        _ => format!("Cluster is running incompatible operation {op}."),
    }))
}

/// GKE's rule for cluster and node pool names.
fn validate_name(field: &str, name: &str) -> Result<(), GoogleError> {
    let valid = (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        return Ok(());
    }
    Err(GoogleError::invalid_argument(format!(
        "Invalid value for field \"{field}\": \"{name}\". Must be a match of regex \
         '(?:[a-z](?:[-a-z0-9]{{0,38}}[a-z0-9])?)' (only alphanumerics and '-' allowed, must start \
         with a letter and end with an alphanumeric, and must be no longer than 40 characters)."
    )))
}

/// An int32 field; the JSON mapping allows a number or a decimal string.
fn count(value: Option<&Value>) -> Option<u32> {
    match value? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn object(value: Option<&Value>) -> Map<String, Value> {
    value
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// A node pool as requested: its plan and the spec to echo back.
fn pool_request(
    field: &str,
    spec: Map<String, Value>,
) -> Result<(PoolPlan, Map<String, Value>), GoogleError> {
    let name = spec
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    validate_name(&format!("{field}.name"), &name)?;
    let autoscaling = spec
        .get("autoscaling")
        .and_then(|a| a.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let nodes = count(spec.get("initialNodeCount")).unwrap_or(0);
    if nodes == 0 && !autoscaling {
        return Err(GoogleError::invalid_argument(format!(
            "{field}.initial_node_count must be greater than zero."
        )));
    }
    let machine_type = spec
        .get("config")
        .and_then(|c| c.get("machineType"))
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or(DEFAULT_MACHINE_TYPE)
        .to_owned();
    Ok((
        PoolPlan {
            name,
            machine_type,
            nodes,
        },
        spec,
    ))
}

/// GKE checks quota for the whole request at once, synchronously.
fn quota_check(state: &GkeState, key: &ClusterKey, plans: &[PoolPlan]) -> Result<(), GoogleError> {
    let vcpus: u32 = plans
        .iter()
        .map(|p| p.nodes * vcpus_of(&p.machine_type))
        .sum();
    // One synthetic machine of the total size: the check sees the request's sum in one go.
    state
        .cloud
        .faults()
        .quota_check(&key.project, &key.location, &format!("sim-{vcpus}"), 1)
        .map_err(|failure| GoogleError::permission_denied(failure.message()))
}

fn new_pool(plan: &PoolPlan, spec: Map<String, Value>) -> PoolRecord {
    PoolRecord::new(&plan.name, &plan.machine_type, plan.nodes, spec)
}

fn list_clusters(state: &GkeState, scope: &Scope, enc: Encoding) -> Answer {
    state.with(|r| {
        let mut clusters: Vec<&ClusterRecord> = r
            .clusters
            .values()
            .filter(|c| in_scope(scope, &c.key.project, &c.key.location))
            .collect();
        clusters
            .sort_by(|a, b| (&a.key.location, &a.key.name).cmp(&(&b.key.location, &b.key.name)));
        let clusters: Vec<Value> = clusters.into_iter().map(|c| cluster_json(c, enc)).collect();
        Ok(json!({"clusters": clusters}))
    })
}

fn create_cluster(state: &Arc<GkeState>, scope: Scope, body: &Value, enc: Encoding) -> Answer {
    let spec = object(body.get("cluster"));
    let name = spec
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    validate_name("cluster.name", &name)?;
    let key = key(scope, name)?;
    let requested: Vec<Map<String, Value>> = spec
        .get("nodePools")
        .and_then(Value::as_array)
        .map(|pools| pools.iter().map(|p| object(Some(p))).collect())
        .unwrap_or_default();
    let pools = if requested.is_empty() {
        // The legacy form: one pool, `default-pool`, from `initialNodeCount` and `nodeConfig`.
        let mut legacy = Map::new();
        legacy.insert("name".into(), json!("default-pool"));
        if let Some(n) = spec.get("initialNodeCount") {
            legacy.insert("initialNodeCount".into(), n.clone());
        }
        if let Some(config) = spec.get("nodeConfig") {
            legacy.insert("config".into(), config.clone());
        }
        vec![pool_request("Cluster", legacy)?]
    } else {
        requested
            .into_iter()
            .enumerate()
            .map(|(i, p)| pool_request(&format!("Cluster.node_pools[{i}]"), p))
            .collect::<Result<_, _>>()?
    };
    for (i, (plan, _)) in pools.iter().enumerate() {
        if pools[..i].iter().any(|(p, _)| p.name == plan.name) {
            return Err(GoogleError::invalid_argument(format!(
                "Node pool names must be unique; \"{}\" is used twice.",
                plan.name
            )));
        }
    }
    let plans: Vec<PoolPlan> = pools.iter().map(|(p, _)| p.clone()).collect();
    let op = state.with(|r| {
        if r.clusters.contains_key(&key) || state.cloud.cluster(&key).is_some() {
            return Err(GoogleError::already_exists(
                CloudError::AlreadyExists(key.clone()).to_string(),
            ));
        }
        quota_check(state, &key, &plans)?;
        let mut spec = spec;
        spec.remove("nodePools");
        let pools = pools
            .into_iter()
            .map(|(plan, spec)| new_pool(&plan, spec))
            .collect();
        r.clusters.insert(ClusterRecord::new(&key, spec, pools));
        Ok(r.start_operation(
            OpType::CreateCluster,
            &key,
            format!("clusters/{}", key.name),
        ))
    })?;
    let op_name = op.name.clone();
    state.spawn(move |s| operations::create_cluster(s, key, op_name, plans));
    Ok(operation_json(&op, enc))
}

fn delete_cluster(state: &Arc<GkeState>, key: ClusterKey, enc: Encoding) -> Answer {
    let op = state.with(|r| {
        let cluster = r.clusters.get_mut(&key).ok_or_else(|| not_found(&key))?;
        ensure_idle(cluster)?;
        cluster.status = ClusterStatus::Stopping;
        Ok(r.start_operation(
            OpType::DeleteCluster,
            &key,
            format!("clusters/{}", key.name),
        ))
    })?;
    let op_name = op.name.clone();
    state.spawn(move |s| operations::delete_cluster(s, key, op_name));
    Ok(operation_json(&op, enc))
}

/// Node pool operations and updates need a running cluster with nothing else in progress.
fn ready_cluster<'r>(
    records: &'r mut Records,
    key: &ClusterKey,
) -> Result<&'r mut ClusterRecord, GoogleError> {
    let cluster = records
        .clusters
        .get_mut(key)
        .ok_or_else(|| not_found(key))?;
    ensure_idle(cluster)?;
    if cluster.status != ClusterStatus::Running {
        return Err(GoogleError::failed_precondition(format!(
            "Cluster {} is not in a state that allows changes (status {}).",
            key.name,
            cluster.status.name()
        )));
    }
    Ok(cluster)
}

/// Starts an update operation on the cluster (or on one of its pools): `plan` reads the request
/// against the cluster as it is now; the change is made when the operation ends.
fn update_cluster(
    state: &Arc<GkeState>,
    key: ClusterKey,
    pool: Option<&str>,
    enc: Encoding,
    plan: impl FnOnce(&ClusterRecord) -> Result<Change, GoogleError>,
) -> Answer {
    let (op, change) = state.with(|r| {
        let cluster = ready_cluster(r, &key)?;
        if let Some(pool) = pool {
            find_pool(cluster, pool)?;
        }
        let change = plan(cluster)?;
        cluster.status = ClusterStatus::Reconciling;
        if let Some(found) = change.pool.as_deref().and_then(|p| cluster.pool_mut(p)) {
            found.status = PoolStatus::Reconciling;
        }
        let target = match pool {
            Some(pool) => pool_target(&key, pool),
            None => format!("clusters/{}", key.name),
        };
        Ok((r.start_operation(change.op_type(), &key, target), change))
    })?;
    let op_name = op.name.clone();
    state.spawn(move |s| operations::update(s, key, op_name, change));
    Ok(operation_json(&op, enc))
}

fn pool_target(key: &ClusterKey, pool: &str) -> String {
    format!("clusters/{}/nodePools/{pool}", key.name)
}

fn create_pool(state: &Arc<GkeState>, key: ClusterKey, body: &Value, enc: Encoding) -> Answer {
    let (plan, spec) = pool_request("NodePool", object(body.get("nodePool")))?;
    let op = state.with(|r| {
        let cluster = ready_cluster(r, &key)?;
        if cluster.pool(&plan.name).is_some() {
            return Err(GoogleError::already_exists(format!(
                "Already exists: projects/{}/locations/{}/clusters/{}/nodePools/{}.",
                key.project, key.location, key.name, plan.name
            )));
        }
        quota_check(state, &key, std::slice::from_ref(&plan))?;
        cluster.pools.push(new_pool(&plan, spec));
        cluster.status = ClusterStatus::Reconciling;
        Ok(r.start_operation(OpType::CreateNodePool, &key, pool_target(&key, &plan.name)))
    })?;
    let op_name = op.name.clone();
    state.spawn(move |s| operations::create_pool(s, key, op_name, plan));
    Ok(operation_json(&op, enc))
}

fn delete_pool(state: &Arc<GkeState>, key: ClusterKey, pool: &str, enc: Encoding) -> Answer {
    let (op, plan) = state.with(|r| {
        let cluster = ready_cluster(r, &key)?;
        let plan = {
            let found = find_pool(cluster, pool)?;
            PoolPlan {
                name: found.name.clone(),
                machine_type: found.machine_type.clone(),
                nodes: 0,
            }
        };
        if let Some(found) = cluster.pool_mut(pool) {
            found.status = PoolStatus::Stopping;
        }
        cluster.status = ClusterStatus::Reconciling;
        let op = r.start_operation(OpType::DeleteNodePool, &key, pool_target(&key, pool));
        Ok((op, plan))
    })?;
    let op_name = op.name.clone();
    state.spawn(move |s| operations::delete_pool(s, key, op_name, plan));
    Ok(operation_json(&op, enc))
}

fn set_size(
    state: &Arc<GkeState>,
    key: ClusterKey,
    pool: &str,
    body: &Value,
    enc: Encoding,
) -> Answer {
    let nodes = count(body.get("nodeCount")).ok_or_else(|| {
        GoogleError::invalid_argument("Invalid value for field \"nodeCount\": must be 0 or more.")
    })?;
    let (op, plan, growing) = state.with(|r| {
        let cluster = ready_cluster(r, &key)?;
        let (plan, current) = {
            let found = find_pool(cluster, pool)?;
            let plan = PoolPlan {
                name: found.name.clone(),
                machine_type: found.machine_type.clone(),
                nodes,
            };
            (plan, found.node_count)
        };
        let growing = nodes > current;
        if growing {
            let extra = PoolPlan {
                nodes: nodes - current,
                ..plan.clone()
            };
            quota_check(state, &key, std::slice::from_ref(&extra))?;
        }
        if let Some(found) = cluster.pool_mut(pool) {
            found.status = PoolStatus::Reconciling;
        }
        cluster.status = ClusterStatus::Reconciling;
        let op = r.start_operation(OpType::SetNodePoolSize, &key, pool_target(&key, pool));
        Ok((op, plan, growing))
    })?;
    let op_name = op.name.clone();
    state.spawn(move |s| operations::set_size(s, key, op_name, plan, growing));
    Ok(operation_json(&op, enc))
}
