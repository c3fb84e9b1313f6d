//! The background half of GKE's long-running operations: wait the configured time (plus the zone's
//! extra delay), do the work through [`Cloud`](crate::cloud::Cloud), then mark the operation DONE —
//! with `error` and `statusMessage` when it failed, as GKE reports stockouts.

use std::sync::Arc;

use super::model::{ClusterRecord, ClusterStatus, Code, Condition, Failure, PoolStatus};
use super::state::GkeState;
use super::updates::Change;
use crate::cloud::{CloudError, CloudFailure, ClusterKey, Provider, TestCluster};

/// A node pool to bring to a size.
#[derive(Clone, Debug)]
pub struct PoolPlan {
    pub name: String,
    pub machine_type: String,
    pub nodes: u32,
}

/// `CREATE_CLUSTER`: starts the test cluster and sizes its pools, or ends in ERROR on a stockout
/// (leaving no cloud cluster behind, as GKE cleans up a failed creation).
pub async fn create_cluster(
    state: Arc<GkeState>,
    key: ClusterKey,
    op: String,
    pools: Vec<PoolPlan>,
) {
    let delay = state.config.cluster_create + state.cloud.faults().create_delay(&key.location);
    if !state.sleep(delay).await {
        return;
    }
    let outcome = provision(&state, &key, &pools).await;
    state.with(|records| {
        if let Some(cluster) = records.clusters.get_mut(&key) {
            match &outcome {
                Ok(test_cluster) => {
                    cluster.status = ClusterStatus::Running;
                    cluster.endpoint = Some(test_cluster.endpoint());
                    cluster.ca_pem = Some(test_cluster.api().ca_pem().to_owned());
                    for (pool, plan) in cluster.pools.iter_mut().zip(&pools) {
                        pool.status = PoolStatus::Running;
                        pool.node_count = plan.nodes;
                    }
                }
                Err(failure) => {
                    cluster.status = ClusterStatus::Error;
                    cluster.status_message = failure.message.clone();
                    cluster.conditions = failure.condition.iter().cloned().collect();
                    for pool in &mut cluster.pools {
                        pool.status = PoolStatus::Error;
                    }
                }
            }
        }
        records.finish_operation(&op, &key, outcome.err());
    });
}

async fn provision(
    state: &GkeState,
    key: &ClusterKey,
    pools: &[PoolPlan],
) -> Result<Arc<TestCluster>, Failure> {
    state
        .cloud
        .faults()
        .stockout_check(&key.location)
        .map_err(stockout)?;
    let cluster = state
        .cloud
        .create_cluster(key, Provider::GkeApi)
        .await
        .map_err(|error| match error {
            CloudError::AlreadyExists(_) => Failure {
                code: Code::AlreadyExists,
                message: error.to_string(),
                condition: None,
            },
            other => Failure::internal(other),
        })?;
    for pool in pools {
        if let Err(error) = state
            .cloud
            .resize_pool(key, &pool.name, &pool.machine_type, pool.nodes)
            .await
        {
            // Nothing may outlive a failed creation (the inventory would show a leak).
            let _ = state.cloud.delete_cluster(key);
            return Err(Failure::internal(error));
        }
    }
    Ok(cluster)
}

/// `DELETE_CLUSTER`: stops the test cluster (if the creation got that far) and forgets the cluster.
pub async fn delete_cluster(state: Arc<GkeState>, key: ClusterKey, op: String) {
    let delay = state.config.cluster_delete + state.cloud.faults().delete_delay(&key.location);
    if !state.sleep(delay).await {
        return;
    }
    // NotFound: a cluster in ERROR never got a test cluster.
    let failure = match state.cloud.delete_cluster(&key) {
        Ok(()) | Err(CloudError::NotFound(_)) => None,
        Err(error) => Some(Failure::internal(error)),
    };
    state.with(|records| {
        if failure.is_none() {
            records.clusters.remove(&key);
        }
        records.finish_operation(&op, &key, failure);
    });
}

/// `CREATE_NODE_POOL`.
pub async fn create_pool(state: Arc<GkeState>, key: ClusterKey, op: String, plan: PoolPlan) {
    let delay = state.config.node_pool_create + state.cloud.faults().create_delay(&key.location);
    if !state.sleep(delay).await {
        return;
    }
    let outcome = grow(&state, &key, &plan).await;
    state.with(|records| {
        if let Some(cluster) = records.clusters.get_mut(&key) {
            settle(cluster, &plan.name, &outcome, PoolStatus::Error);
        }
        records.finish_operation(&op, &key, outcome.err());
    });
}

/// `DELETE_NODE_POOL`.
pub async fn delete_pool(state: Arc<GkeState>, key: ClusterKey, op: String, plan: PoolPlan) {
    let delay = state.config.node_pool_delete + state.cloud.faults().delete_delay(&key.location);
    if !state.sleep(delay).await {
        return;
    }
    let outcome = resize(
        &state,
        &key,
        &PoolPlan {
            nodes: 0,
            ..plan.clone()
        },
    )
    .await;
    state.with(|records| {
        if let Some(cluster) = records.clusters.get_mut(&key) {
            if outcome.is_ok() {
                cluster.pools.retain(|p| p.name != plan.name);
            }
            settle(cluster, &plan.name, &outcome, PoolStatus::Error);
        }
        records.finish_operation(&op, &key, outcome.err());
    });
}

/// `SET_NODE_POOL_SIZE`. Growing can hit a stockout; the pool keeps running at its old size.
pub async fn set_size(
    state: Arc<GkeState>,
    key: ClusterKey,
    op: String,
    plan: PoolPlan,
    growing: bool,
) {
    let faults = state.cloud.faults();
    let extra = if growing {
        faults.create_delay(&key.location)
    } else {
        faults.delete_delay(&key.location)
    };
    if !state.sleep(state.config.node_pool_resize + extra).await {
        return;
    }
    let outcome = if growing {
        grow(&state, &key, &plan).await
    } else {
        resize(&state, &key, &plan).await
    };
    state.with(|records| {
        if let Some(cluster) = records.clusters.get_mut(&key) {
            settle(cluster, &plan.name, &outcome, PoolStatus::RunningWithError);
        }
        records.finish_operation(&op, &key, outcome.err());
    });
}

/// `UPGRADE_MASTER`, `UPGRADE_NODES`, `UPDATE_CLUSTER`, `SET_LABELS` and node pool updates: the
/// change lands on the cloud's record when the operation ends.
pub async fn update(state: Arc<GkeState>, key: ClusterKey, op: String, change: Change) {
    if !state.sleep(state.config.update).await {
        return;
    }
    state.with(|records| {
        if let Some(cluster) = records.clusters.get_mut(&key) {
            change.apply(cluster);
            cluster.status = ClusterStatus::Running;
            if let Some(pool) = change.pool.as_deref().and_then(|p| cluster.pool_mut(p)) {
                pool.status = PoolStatus::Running;
            }
        }
        records.finish_operation(&op, &key, None);
    });
}

/// Adds nodes unless the zone is stocked out.
async fn grow(state: &GkeState, key: &ClusterKey, plan: &PoolPlan) -> Result<u32, Failure> {
    state
        .cloud
        .faults()
        .stockout_check(&key.location)
        .map_err(stockout)?;
    resize(state, key, plan).await
}

async fn resize(state: &GkeState, key: &ClusterKey, plan: &PoolPlan) -> Result<u32, Failure> {
    match state
        .cloud
        .resize_pool(key, &plan.name, &plan.machine_type, plan.nodes)
        .await
    {
        Ok(()) => Ok(plan.nodes),
        // The test cluster is already gone: a pool of nothing is as small as it gets.
        Err(CloudError::NotFound(_)) if plan.nodes == 0 => Ok(0),
        Err(error) => Err(Failure::internal(error)),
    }
}

/// Ends a node pool operation: the pool takes its new size or `failed_status`, the cluster runs.
fn settle(
    cluster: &mut ClusterRecord,
    pool: &str,
    outcome: &Result<u32, Failure>,
    failed_status: PoolStatus,
) {
    cluster.status = ClusterStatus::Running;
    let Some(pool) = cluster.pool_mut(pool) else {
        return;
    };
    match outcome {
        Ok(nodes) => {
            pool.node_count = *nodes;
            pool.status = PoolStatus::Running;
            pool.status_message.clear();
            pool.conditions.clear();
        }
        Err(failure) => {
            pool.status = failed_status;
            pool.status_message = failure.message.clone();
            pool.conditions = failure.condition.iter().cloned().collect();
        }
    }
}

/// A stockout as GKE reports it: `error.code` RESOURCE_EXHAUSTED, the zone's message, and a
/// `GCE_STOCKOUT` condition.
fn stockout(failure: CloudFailure) -> Failure {
    let message = failure.message();
    Failure {
        code: Code::ResourceExhausted,
        message: message.clone(),
        condition: Some(Condition {
            code: "GCE_STOCKOUT",
            message,
            canonical: Code::ResourceExhausted,
        }),
    }
}
