//! The GKE resources the fake keeps (clusters, node pools, operations) and their JSON form.

use serde_json::{Map, Value, json};

use crate::cloud::ClusterKey;

/// The Kubernetes version the fake claims to run.
pub const VERSION: &str = "1.33.5-gke.1000000";
/// Machine type of a node pool that names none (GKE's default).
pub const DEFAULT_MACHINE_TYPE: &str = "e2-medium";

/// How enums are written: GKE writes names unless the request says
/// `$alt=json;enum-encoding=int`, as the official Rust client always does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Names,
    Ints,
}

impl Encoding {
    /// Reads `$alt` from a raw query string.
    pub fn from_query(query: Option<&str>) -> Encoding {
        let ints = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .any(|(key, value)| key == "$alt" && value.contains("enum-encoding=int"));
        if ints {
            Encoding::Ints
        } else {
            Encoding::Names
        }
    }

    fn render<E: GkeEnum>(self, value: E) -> Value {
        match self {
            Encoding::Names => json!(value.name()),
            Encoding::Ints => json!(value.number()),
        }
    }
}

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

        impl GkeEnum for $name {
            fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
            fn number(self) -> i32 {
                match self { $($name::$variant => $number,)* }
            }
        }
    };
}

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
    /// `Operation.status`.
    OpStatus {
        Running = 2 => "RUNNING",
        Done = 3 => "DONE",
    }
);

gke_enum!(
    /// `Operation.operationType`.
    OpType {
        CreateCluster = 1 => "CREATE_CLUSTER",
        DeleteCluster = 2 => "DELETE_CLUSTER",
        CreateNodePool = 7 => "CREATE_NODE_POOL",
        DeleteNodePool = 8 => "DELETE_NODE_POOL",
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

/// Why an operation failed: what ends up in `error` and `statusMessage`.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    pub condition: Option<Condition>,
}

impl Failure {
    pub fn internal(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: Code::Internal,
            message: message.to_string(),
            condition: None,
        }
    }
}

/// One node pool.
#[derive(Clone, Debug)]
pub struct PoolRecord {
    pub name: String,
    pub machine_type: String,
    pub initial_node_count: u32,
    /// Nodes the pool has now (GKE shows it only through the cluster's `currentNodeCount`).
    pub node_count: u32,
    pub status: PoolStatus,
    pub status_message: String,
    pub conditions: Vec<Condition>,
    /// The node pool as requested, echoed back as GKE does.
    pub spec: Map<String, Value>,
}

/// One cluster as GKE knows it (it outlives a failed creation, in status `ERROR`).
#[derive(Clone, Debug)]
pub struct ClusterRecord {
    pub key: ClusterKey,
    pub id: String,
    pub status: ClusterStatus,
    pub status_message: String,
    pub conditions: Vec<Condition>,
    pub pools: Vec<PoolRecord>,
    pub create_time: String,
    /// The operation running on the cluster; GKE refuses others meanwhile.
    pub busy: Option<(String, OpType)>,
    /// `host:port` of the test cluster's API server, once it runs.
    pub endpoint: Option<String>,
    pub ca_pem: Option<String>,
    /// The cluster as requested, echoed back as GKE does.
    pub spec: Map<String, Value>,
}

impl ClusterRecord {
    pub fn pool(&self, name: &str) -> Option<&PoolRecord> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn pool_mut(&mut self, name: &str) -> Option<&mut PoolRecord> {
        self.pools.iter_mut().find(|p| p.name == name)
    }

    pub fn node_count(&self) -> u32 {
        self.pools.iter().map(|p| p.node_count).sum()
    }
}

/// One long-running operation.
#[derive(Clone, Debug)]
pub struct OperationRecord {
    pub name: String,
    pub op_type: OpType,
    pub project: String,
    pub location: String,
    /// Path of the target below the location, e.g. `clusters/c/nodePools/np`.
    pub target: String,
    pub status: OpStatus,
    pub start_time: String,
    pub end_time: Option<String>,
    pub failure: Option<Failure>,
}

/// RFC 3339 with microseconds, as GKE writes times.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Whether a location is a zone (`us-central1-a`) rather than a region (`us-central1`).
pub fn is_zone(location: &str) -> bool {
    let parts: Vec<&str> = location.split('-').collect();
    parts.len() >= 3
        && parts
            .last()
            .is_some_and(|z| z.len() == 1 && z.chars().all(|c| c.is_ascii_lowercase()))
}

/// `projects/P/zones/Z` for a zone, `projects/P/locations/L` for a region, as GKE writes names
/// in links and messages.
pub fn location_path(project: &str, location: &str) -> String {
    let kind = if is_zone(location) {
        "zones"
    } else {
        "locations"
    };
    format!("projects/{project}/{kind}/{location}")
}

/// A stable, made-up project number: GKE's operation links carry the number, not the id.
pub fn project_number(project: &str) -> String {
    if !project.is_empty() && project.chars().all(|c| c.is_ascii_digit()) {
        return project.to_owned();
    }
    // FNV-1a: stable across runs, unlike the std hasher.
    let hash = project.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (100_000_000_000 + hash % 900_000_000_000).to_string()
}

fn link(path: &str) -> String {
    format!("https://container.googleapis.com/v1/{path}")
}

fn conditions_json(conditions: &[Condition], enc: Encoding) -> Value {
    conditions
        .iter()
        .map(|c| json!({"code": c.code, "message": c.message, "canonicalCode": enc.render(c.canonical)}))
        .collect()
}

/// `projects/P/{zones|locations}/L/clusters/C`, the cluster's path in links and messages.
pub fn cluster_path(key: &ClusterKey) -> String {
    format!(
        "{}/clusters/{}",
        location_path(&key.project, &key.location),
        key.name
    )
}

/// `statusMessage` and `conditions` of a cluster or node pool: GKE omits them while empty.
fn set_status_details(
    out: &mut Map<String, Value>,
    status_message: &str,
    conditions: &[Condition],
    enc: Encoding,
) {
    if !status_message.is_empty() {
        out.insert("statusMessage".to_owned(), json!(status_message));
    }
    if !conditions.is_empty() {
        out.insert("conditions".to_owned(), conditions_json(conditions, enc));
    }
}

/// `Cluster` JSON.
pub fn cluster_json(cluster: &ClusterRecord, enc: Encoding) -> Value {
    let key = &cluster.key;
    let mut out = cluster.spec.clone();
    let pools: Vec<Value> = cluster
        .pools
        .iter()
        .map(|p| pool_json(key, p, enc))
        .collect();
    let mut set = |k: &str, v: Value| {
        out.insert(k.to_owned(), v);
    };
    set("name", json!(key.name));
    set("location", json!(key.location));
    set("zone", json!(key.location));
    let locations = if is_zone(&key.location) {
        vec![key.location.clone()]
    } else {
        ["a", "b", "c"]
            .iter()
            .map(|z| format!("{}-{z}", key.location))
            .collect()
    };
    set("locations", json!(locations));
    set("id", json!(cluster.id));
    set("selfLink", json!(link(&cluster_path(key))));
    set("status", enc.render(cluster.status));
    set("createTime", json!(cluster.create_time));
    set("initialClusterVersion", json!(VERSION));
    set("currentMasterVersion", json!(VERSION));
    set("currentNodeVersion", json!(VERSION));
    set("currentNodeCount", json!(cluster.node_count()));
    set("network", json!("default"));
    set("subnetwork", json!("default"));
    if let Some(first) = pools.first() {
        set("nodeConfig", first["config"].clone());
    }
    set("nodePools", json!(pools));
    if let Some(endpoint) = &cluster.endpoint {
        set("endpoint", json!(endpoint));
    }
    let mut master_auth = json!({"clientCertificateConfig": {}});
    if let Some(ca) = &cluster.ca_pem {
        use base64::Engine as _;
        master_auth["clusterCaCertificate"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ca));
    }
    set("masterAuth", master_auth);
    set_status_details(&mut out, &cluster.status_message, &cluster.conditions, enc);
    out.remove("initialNodeCount");
    Value::Object(out)
}

/// `NodePool` JSON.
pub fn pool_json(key: &ClusterKey, pool: &PoolRecord, enc: Encoding) -> Value {
    let mut out = pool.spec.clone();
    let mut config = out
        .remove("config")
        .and_then(|c| match c {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    config.insert("machineType".into(), json!(pool.machine_type));
    config.entry("diskSizeGb").or_insert(json!(100));
    config.entry("diskType").or_insert(json!("pd-balanced"));
    config.entry("imageType").or_insert(json!("COS_CONTAINERD"));
    config.entry("serviceAccount").or_insert(json!("default"));
    let mut set = |k: &str, v: Value| {
        out.insert(k.to_owned(), v);
    };
    set("name", json!(pool.name));
    set("config", Value::Object(config));
    set("initialNodeCount", json!(pool.initial_node_count));
    set("status", enc.render(pool.status));
    set("version", json!(VERSION));
    set(
        "selfLink",
        json!(link(&format!(
            "{}/nodePools/{}",
            cluster_path(key),
            pool.name
        ))),
    );
    set(
        "instanceGroupUrls",
        json!([format!(
            "https://www.googleapis.com/compute/v1/projects/{}/zones/{}/instanceGroupManagers/gke-{}-{}-grp",
            key.project, key.location, key.name, pool.name
        )]),
    );
    set_status_details(&mut out, &pool.status_message, &pool.conditions, enc);
    Value::Object(out)
}

/// `Operation` JSON. Links use the project number, as GKE's do.
pub fn operation_json(op: &OperationRecord, enc: Encoding) -> Value {
    let scope = location_path(&project_number(&op.project), &op.location);
    let mut out = json!({
        "name": op.name,
        "zone": op.location,
        "operationType": enc.render(op.op_type),
        "status": enc.render(op.status),
        "selfLink": link(&format!("{scope}/operations/{}", op.name)),
        "targetLink": link(&format!("{scope}/{}", op.target)),
        "startTime": op.start_time,
    });
    if let Some(end) = &op.end_time {
        out["endTime"] = json!(end);
    }
    if let Some(failure) = &op.failure {
        // Both the current `error` and the deprecated `statusMessage` (which Config Connector reads).
        out["statusMessage"] = json!(failure.message);
        out["error"] = json!({"code": failure.code.number(), "message": failure.message});
        if let Some(condition) = &failure.condition {
            out["clusterConditions"] = conditions_json(std::slice::from_ref(condition), enc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_follows_alt() {
        assert_eq!(
            Encoding::from_query(Some("projectId=&zone=&%24alt=json%3Benum-encoding%3Dint")),
            Encoding::Ints
        );
        assert_eq!(Encoding::from_query(Some("alt=json")), Encoding::Names);
        assert_eq!(Encoding::from_query(None), Encoding::Names);
    }

    #[test]
    fn zones_and_regions() {
        assert!(is_zone("us-central1-a"));
        assert!(!is_zone("us-central1"));
        assert_eq!(
            location_path("p", "europe-west2-b"),
            "projects/p/zones/europe-west2-b"
        );
        assert_eq!(
            location_path("p", "europe-west2"),
            "projects/p/locations/europe-west2"
        );
    }

    #[test]
    fn project_numbers_are_stable_twelve_digits() {
        let n = project_number("my-project");
        assert_eq!(n.len(), 12);
        assert_eq!(n, project_number("my-project"));
        assert_eq!(project_number("123"), "123");
    }
}
