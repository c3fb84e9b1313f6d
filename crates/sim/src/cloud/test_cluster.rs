//! One cloud cluster: its own simulated API server and the Nodes of its node pools.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use rand::Rng;
use serde_json::json;

use super::ClusterKey;
use crate::apiserver::{ApiServer, ApiServerConfig};
use crate::workloads::{ApiServerAccess, WorkloadConfig, Workloads};

/// GKE's node pool label.
pub const NODE_POOL_LABEL: &str = "cloud.google.com/gke-nodepool";

/// A running test cluster.
pub struct TestCluster {
    key: ClusterKey,
    // Field order is drop order: the workloads stop before the API server they talk to.
    workloads: Option<Workloads>,
    api: ApiServer,
    /// Node names per pool.
    pools: Mutex<BTreeMap<String, Vec<String>>>,
}

impl TestCluster {
    /// Starts the cluster's API server and, given a configuration, its workloads.
    pub(super) async fn start(
        key: &ClusterKey,
        workloads: Option<WorkloadConfig>,
    ) -> anyhow::Result<TestCluster> {
        let api = ApiServer::start(ApiServerConfig {
            name: key.name.clone(),
            ..ApiServerConfig::default()
        })
        .await?;
        let workloads = match workloads {
            Some(config) => {
                let workloads = Workloads::start(
                    api.internal_client(),
                    api.pod_logs().clone(),
                    WorkloadConfig {
                        api_server: ApiServerAccess::of(&api),
                        register_node: false,
                        ..config
                    },
                )?;
                api.set_service_resolver(workloads.service_resolver());
                Some(workloads)
            }
            None => None,
        };
        Ok(TestCluster {
            key: key.clone(),
            workloads,
            api,
            pools: Mutex::default(),
        })
    }

    pub fn key(&self) -> &ClusterKey {
        &self.key
    }

    /// The cluster's API server (its endpoint, CA and admin credentials).
    pub fn api(&self) -> &ApiServer {
        &self.api
    }

    /// The cluster's controllers and kubelet, when it runs workloads.
    pub fn workloads(&self) -> Option<&Workloads> {
        self.workloads.as_ref()
    }

    /// `host:port` of the HTTPS listener, as GKE's `endpoint` (GKE gives an IP; clients use https).
    pub fn endpoint(&self) -> String {
        self.api
            .https_url()
            .trim_start_matches("https://")
            .to_owned()
    }

    /// Names of the nodes of every pool.
    pub fn node_names(&self) -> Vec<String> {
        self.pools.lock().values().flatten().cloned().collect()
    }

    /// Brings `pool` to `size` Nodes; returns the cluster's total node count.
    pub(super) async fn resize_pool(
        &self,
        pool: &str,
        machine_type: &str,
        size: u32,
    ) -> anyhow::Result<u32> {
        let nodes: Api<Node> = Api::all(self.api.internal_client());
        let current = self.pools.lock().get(pool).cloned().unwrap_or_default();
        let size = size as usize;
        let group = random_hex(8);
        for _ in current.len()..size {
            let name = node_name(&self.key.name, pool, &group);
            let node = node_object(&name, pool, machine_type, &self.key.location);
            nodes
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(node.clone())?,
                )
                .await?;
            nodes
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": node["status"]})),
                )
                .await?;
            self.pools
                .lock()
                .entry(pool.to_owned())
                .or_default()
                .push(name);
        }
        for name in current.iter().skip(size) {
            nodes.delete(name, &DeleteParams::default()).await?;
        }
        let mut pools = self.pools.lock();
        pools.entry(pool.to_owned()).or_default().truncate(size);
        if size == 0 {
            pools.remove(pool);
        }
        Ok(pools.values().map(|p| p.len() as u32).sum())
    }

    /// Nodes currently stored in the cluster's API server (what `kubectl get nodes` shows).
    pub async fn list_nodes(&self) -> anyhow::Result<Vec<String>> {
        let nodes: Api<Node> = Api::all(self.api.internal_client());
        Ok(nodes
            .list(&ListParams::default())
            .await?
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect())
    }
}

/// GKE's node naming: `gke-<cluster>-<pool>-<instance group hash>-<instance suffix>`.
fn node_name(cluster: &str, pool: &str, group: &str) -> String {
    let prefix: String = format!("gke-{cluster}-{pool}").chars().take(40).collect();
    format!(
        "{}-{group}-{}",
        prefix.trim_end_matches('-'),
        random_alnum(4)
    )
}

fn node_object(name: &str, pool: &str, machine_type: &str, location: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                NODE_POOL_LABEL: pool,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": machine_type,
                "topology.kubernetes.io/zone": location,
            },
        },
        "spec": {"providerID": format!("gce://sim/{location}/{name}")},
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status. AppArmor enabled",
            }],
            "nodeInfo": {"kubeletVersion": "v1.33.5-gke.1000000", "osImage": "Container-Optimized OS from Google"},
        },
    })
}

fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

fn random_alnum(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}
