//! What the GKE fake remembers: its operations. The clusters are the cloud's ([`ClusterTable`]);
//! a request handler sees both through [`GkeState::with`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::GkeConfig;
use super::model::{Failure, OpStatus, OpType, OperationRecord, now};
use crate::cloud::model::ClusterTable;
use crate::cloud::{Cloud, ClusterKey};

/// Shared by the request handlers and the operations running in the background.
pub struct GkeState {
    pub cloud: Cloud,
    pub config: GkeConfig,
    /// Cancelled when the server stops; running operations then stop where they are.
    pub shutdown: CancellationToken,
    operations: Mutex<HashMap<String, OperationRecord>>,
}

/// The cloud's clusters and the fake's operations, locked together for one change.
pub struct Records<'a> {
    pub clusters: &'a mut ClusterTable,
    pub operations: &'a mut HashMap<String, OperationRecord>,
}

impl GkeState {
    pub fn new(cloud: Cloud, config: GkeConfig, shutdown: CancellationToken) -> GkeState {
        GkeState {
            cloud,
            config,
            shutdown,
            operations: Mutex::default(),
        }
    }

    /// Runs `change` with the operations and the cloud's clusters locked (always in this order).
    /// Never held across an await.
    pub fn with<R>(&self, change: impl FnOnce(&mut Records<'_>) -> R) -> R {
        let mut operations = self.operations.lock();
        self.cloud.with_clusters(|clusters| {
            change(&mut Records {
                clusters,
                operations: &mut operations,
            })
        })
    }

    /// Waits `delay`; `false` if the server stopped meanwhile.
    pub async fn sleep(&self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.shutdown.cancelled() => false,
        }
    }

    /// Runs an operation's work in the background.
    pub fn spawn<F>(self: &Arc<Self>, work: impl FnOnce(Arc<GkeState>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(work(self.clone()));
    }
}

impl Records<'_> {
    /// Records a new RUNNING operation on `key`'s cluster (or one of its pools, `target` says which)
    /// and marks the cluster busy with it.
    pub fn start_operation(
        &mut self,
        op_type: OpType,
        key: &ClusterKey,
        target: String,
    ) -> OperationRecord {
        let op = OperationRecord {
            name: operation_name(),
            op_type,
            project: key.project.clone(),
            location: key.location.clone(),
            target,
            status: OpStatus::Running,
            start_time: now(),
            end_time: None,
            failure: None,
        };
        if let Some(cluster) = self.clusters.get_mut(key) {
            cluster.busy = Some((op.name.clone(), op_type));
        }
        self.operations.insert(op.name.clone(), op.clone());
        op
    }

    /// Marks the operation DONE (with its failure, if any) and frees the cluster.
    pub fn finish_operation(&mut self, name: &str, key: &ClusterKey, failure: Option<Failure>) {
        if let Some(op) = self.operations.get_mut(name) {
            op.status = OpStatus::Done;
            op.end_time = Some(now());
            op.failure = failure;
        }
        if let Some(cluster) = self.clusters.get_mut(key)
            && cluster.busy.as_ref().is_some_and(|(op, _)| op == name)
        {
            cluster.busy = None;
        }
    }
}

/// GKE's operation names: `operation-<epoch millis>-<uuid>`.
fn operation_name() -> String {
    format!(
        "operation-{}-{}",
        chrono::Utc::now().timestamp_millis(),
        uuid::Uuid::new_v4()
    )
}
