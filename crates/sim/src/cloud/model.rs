//! The one cluster model of the simulated cloud: every cluster and node pool as GKE knows it,
//! whichever API created or changed it (Config Connector or the GKE REST API).
//!
//! [`ClusterTable`] holds the records. It notices which records a change touched, so that
//! [`Cloud::with_clusters`](super::Cloud::with_clusters) can move the `etag` of each record that
//! really changed and tell the watchers of the cloud which clusters did.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::ClusterKey;

/// The Kubernetes version the simulated cloud runs unless told otherwise.
pub const VERSION: &str = "1.33.5-gke.1000000";
/// Machine type of a node pool that names none (GKE's default).
pub const DEFAULT_MACHINE_TYPE: &str = "e2-medium";

/// A protobuf enum with its JSON name and number.
pub trait GkeEnum: Copy {
    fn name(self) -> &'static str;
    fn number(self) -> i32;
}

macro_rules! gke_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $number:literal => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($variant,)* }

        impl $crate::cloud::model::GkeEnum for $name {
            fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
            fn number(self) -> i32 {
                match self { $($name::$variant => $number,)* }
            }
        }
    };
}
pub(crate) use gke_enum;

gke_enum!(
    /// `Cluster.status`.
    ClusterStatus {
        Provisioning = 1 => "PROVISIONING",
        Running = 2 => "RUNNING",
        Reconciling = 3 => "RECONCILING",
        Stopping = 4 => "STOPPING",
        Error = 5 => "ERROR",
    }
);

gke_enum!(
    /// `NodePool.status`.
    PoolStatus {
        Provisioning = 1 => "PROVISIONING",
        Running = 2 => "RUNNING",
        RunningWithError = 3 => "RUNNING_WITH_ERROR",
        Reconciling = 4 => "RECONCILING",
        Stopping = 5 => "STOPPING",
        Error = 6 => "ERROR",
    }
);

gke_enum!(
    /// `Operation.operationType`: what a GKE operation does (and what keeps a cluster busy).
    OpType {
        Unspecified = 0 => "TYPE_UNSPECIFIED",
        CreateCluster = 1 => "CREATE_CLUSTER",
        DeleteCluster = 2 => "DELETE_CLUSTER",
        UpgradeMaster = 3 => "UPGRADE_MASTER",
        UpgradeNodes = 4 => "UPGRADE_NODES",
        UpdateCluster = 6 => "UPDATE_CLUSTER",
        CreateNodePool = 7 => "CREATE_NODE_POOL",
        DeleteNodePool = 8 => "DELETE_NODE_POOL",
        SetLabels = 12 => "SET_LABELS",
        SetNodePoolSize = 14 => "SET_NODE_POOL_SIZE",
    }
);

gke_enum!(
    /// `google.rpc.Code`, as `StatusCondition.canonicalCode`; `error.code` is always the number.
    Code {
        AlreadyExists = 6 => "ALREADY_EXISTS",
        ResourceExhausted = 8 => "RESOURCE_EXHAUSTED",
        Internal = 13 => "INTERNAL",
    }
);

/// A `StatusCondition` on a cluster, node pool or operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// GKE's own code, e.g. `GCE_STOCKOUT`.
    pub code: &'static str,
    pub message: String,
    pub canonical: Code,
}

/// One node pool.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolRecord {
    pub name: String,
    pub machine_type: String,
    pub initial_node_count: u32,
    /// Nodes the pool has now (GKE shows it only through the cluster's `currentNodeCount`).
    pub node_count: u32,
    pub status: PoolStatus,
    pub status_message: String,
    pub conditions: Vec<Condition>,
    /// The nodes' Kubernetes version.
    pub version: String,
    /// The rest of the node pool as requested or updated (`config`, `autoscaling`, ...), echoed
    /// back as GKE does.
    pub spec: Map<String, Value>,
}

impl PoolRecord {
    /// A pool in `PROVISIONING`, about to get `nodes` machines of `machine_type`.
    pub fn new(name: &str, machine_type: &str, nodes: u32, spec: Map<String, Value>) -> PoolRecord {
        PoolRecord {
            name: name.to_owned(),
            machine_type: machine_type.to_owned(),
            initial_node_count: nodes,
            node_count: 0,
            status: PoolStatus::Provisioning,
            status_message: String::new(),
            conditions: Vec::new(),
            version: VERSION.to_owned(),
            spec,
        }
    }
}

/// One cluster as GKE knows it (it outlives a failed creation, in status `ERROR`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterRecord {
    pub key: ClusterKey,
    pub id: String,
    pub status: ClusterStatus,
    pub status_message: String,
    pub conditions: Vec<Condition>,
    pub pools: Vec<PoolRecord>,
    pub create_time: String,
    /// The GKE operation running on the cluster; GKE refuses others meanwhile.
    pub busy: Option<(String, OpType)>,
    /// `host:port` of the test cluster's API server, once it runs.
    pub endpoint: Option<String>,
    pub ca_pem: Option<String>,
    pub master_version: String,
    pub resource_labels: BTreeMap<String, String>,
    /// Bumped by [`ClusterTable`] on every change; the `etag` is made from it.
    pub revision: u64,
    /// The rest of the cluster as requested or updated (`ipAllocationPolicy`, `releaseChannel`,
    /// `network`, `loggingService`, ...), echoed back as GKE does.
    pub spec: Map<String, Value>,
}

impl ClusterRecord {
    /// A cluster in `PROVISIONING`, without a running control plane yet.
    pub fn new(key: &ClusterKey, spec: Map<String, Value>, pools: Vec<PoolRecord>) -> Self {
        let mut spec = spec;
        let resource_labels = spec
            .remove("resourceLabels")
            .and_then(|labels| serde_json::from_value(labels).ok())
            .unwrap_or_default();
        ClusterRecord {
            key: key.clone(),
            id: uuid::Uuid::new_v4().simple().to_string(),
            status: ClusterStatus::Provisioning,
            status_message: String::new(),
            conditions: Vec::new(),
            pools,
            create_time: now(),
            busy: None,
            endpoint: None,
            ca_pem: None,
            master_version: VERSION.to_owned(),
            resource_labels,
            revision: 0,
            spec,
        }
    }

    pub fn pool(&self, name: &str) -> Option<&PoolRecord> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn pool_mut(&mut self, name: &str) -> Option<&mut PoolRecord> {
        self.pools.iter_mut().find(|p| p.name == name)
    }

    pub fn node_count(&self) -> u32 {
        self.pools.iter().map(|p| p.node_count).sum()
    }

    /// GKE's `etag`: changes with every change of the cluster.
    pub fn etag(&self) -> String {
        use base64::Engine as _;
        let mut bytes = fnv1a(self.id.as_bytes()).to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.revision.to_be_bytes());
        base64::engine::general_purpose::STANDARD.encode(fnv1a(&bytes).to_be_bytes())
    }

    /// GKE's `labelFingerprint`: eight hex digits that change with the resource labels.
    pub fn label_fingerprint(&self) -> String {
        let text: String = self
            .resource_labels
            .iter()
            .map(|(k, v)| format!("{k}={v};"))
            .collect();
        format!("{:08x}", fnv1a(text.as_bytes()) as u32)
    }
}

/// FNV-1a: stable across runs, unlike the std hasher.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// RFC 3339 with microseconds, as GKE writes times.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Every cluster GKE knows, keyed by identity. Mutable access remembers the record as it was, so
/// that the end of a change can tell which records really changed.
#[derive(Default)]
pub struct ClusterTable {
    clusters: HashMap<ClusterKey, ClusterRecord>,
    /// Records as they were before this change touched them (`None`: absent).
    before: HashMap<ClusterKey, Option<ClusterRecord>>,
}

impl ClusterTable {
    pub fn get(&self, key: &ClusterKey) -> Option<&ClusterRecord> {
        self.clusters.get(key)
    }

    pub fn contains_key(&self, key: &ClusterKey) -> bool {
        self.clusters.contains_key(key)
    }

    pub fn values(&self) -> impl Iterator<Item = &ClusterRecord> {
        self.clusters.values()
    }

    pub fn get_mut(&mut self, key: &ClusterKey) -> Option<&mut ClusterRecord> {
        self.remember(key);
        self.clusters.get_mut(key)
    }

    pub fn insert(&mut self, record: ClusterRecord) {
        self.remember(&record.key);
        self.clusters.insert(record.key.clone(), record);
    }

    pub fn remove(&mut self, key: &ClusterKey) -> Option<ClusterRecord> {
        self.remember(key);
        self.clusters.remove(key)
    }

    fn remember(&mut self, key: &ClusterKey) {
        if !self.before.contains_key(key) {
            self.before
                .insert(key.clone(), self.clusters.get(key).cloned());
        }
    }

    /// Ends a change: bumps the revision of every record that differs from before and returns the
    /// keys of the clusters that changed (appeared, changed or disappeared).
    pub(super) fn settle(&mut self) -> Vec<ClusterKey> {
        let mut changed = Vec::new();
        for (key, before) in self.before.drain() {
            let after = self.clusters.get_mut(&key);
            match (before, after) {
                (None, None) => continue,
                (Some(before), Some(after)) if before == *after => continue,
                (Some(before), Some(after)) => after.revision = before.revision + 1,
                _ => {}
            }
            changed.push(key);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ClusterKey {
        ClusterKey {
            project: "p".into(),
            location: "us-central1-a".into(),
            name: name.into(),
        }
    }

    #[test]
    fn only_real_changes_move_the_etag() {
        let mut table = ClusterTable::default();
        table.insert(ClusterRecord::new(&key("a"), Map::new(), Vec::new()));
        assert_eq!(table.settle(), [key("a")]);
        let first = table.get(&key("a")).map(ClusterRecord::etag);

        // Looked at mutably but left as it was: no change.
        let _ = table.get_mut(&key("a"));
        assert!(table.settle().is_empty());
        assert_eq!(table.get(&key("a")).map(ClusterRecord::etag), first);

        if let Some(cluster) = table.get_mut(&key("a")) {
            cluster.master_version = "1.34.0-gke.1".into();
        }
        assert_eq!(table.settle(), [key("a")]);
        assert_ne!(table.get(&key("a")).map(ClusterRecord::etag), first);

        table.remove(&key("a"));
        table.remove(&key("b"));
        assert_eq!(table.settle(), [key("a")]);
    }

    #[test]
    fn label_fingerprints_follow_the_labels() {
        let mut spec = Map::new();
        spec.insert("resourceLabels".into(), serde_json::json!({"team": "ci"}));
        let mut cluster = ClusterRecord::new(&key("a"), spec, Vec::new());
        assert_eq!(
            cluster.resource_labels.get("team").map(String::as_str),
            Some("ci")
        );
        let before = cluster.label_fingerprint();
        assert_eq!(before.len(), 8);
        cluster.resource_labels.insert("team".into(), "qa".into());
        assert_ne!(cluster.label_fingerprint(), before);
    }
}
