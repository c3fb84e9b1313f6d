//! The GKE resources the fake keeps (clusters, node pools, operations) and their JSON form.

use serde_json::{Map, Value, json};

use crate::cloud::ClusterKey;
pub use crate::cloud::model::{
    ClusterRecord, ClusterStatus, Code, Condition, DEFAULT_MACHINE_TYPE, GkeEnum, OpType,
    PoolRecord, PoolStatus, VERSION, now,
};
use crate::cloud::model::{fnv1a, gke_enum};

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

gke_enum!(
    /// `Operation.status`.
    OpStatus {
        Running = 2 => "RUNNING",
        Done = 3 => "DONE",
    }
);

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
    let hash = fnv1a(project.as_bytes());
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
    set("currentMasterVersion", json!(cluster.master_version));
    let node_version = oldest_version(cluster.pools.iter().map(|p| p.version.as_str()));
    set(
        "currentNodeVersion",
        json!(node_version.unwrap_or(&cluster.master_version)),
    );
    set("currentNodeCount", json!(cluster.node_count()));
    set("resourceLabels", json!(cluster.resource_labels));
    set("labelFingerprint", json!(cluster.label_fingerprint()));
    set("etag", json!(cluster.etag()));
    // GKE names the network and subnetwork briefly, whatever form the request used.
    for field in ["network", "subnetwork"] {
        let given = cluster
            .spec
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("default");
        set(field, json!(given.rsplit('/').next().unwrap_or(given)));
    }
    let mut ip_allocation = json!({
        "useIpAliases": true,
        "stackType": "IPV4",
        "clusterIpv4Cidr": "10.112.0.0/14",
        "clusterIpv4CidrBlock": "10.112.0.0/14",
        "servicesIpv4Cidr": "34.118.224.0/20",
        "servicesIpv4CidrBlock": "34.118.224.0/20",
    });
    if let Some(Value::Object(requested)) = cluster.spec.get("ipAllocationPolicy") {
        for (k, v) in requested {
            ip_allocation[k] = v.clone();
        }
    }
    set("ipAllocationPolicy", ip_allocation);
    set("servicesIpv4Cidr", json!("34.118.224.0/20"));
    if !cluster.spec.contains_key("releaseChannel") {
        set("releaseChannel", json!({"channel": "REGULAR"}));
    }
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

/// The oldest of Kubernetes versions such as `1.33.5-gke.1000000` (numbers compared as numbers).
fn oldest_version<'v>(versions: impl Iterator<Item = &'v str>) -> Option<&'v str> {
    let numbers = |v: &str| -> Vec<u64> {
        v.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    versions.min_by_key(|v| numbers(v))
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
    set("version", json!(pool.version));
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
        "status": enc.render(op.status),
        "selfLink": link(&format!("{scope}/operations/{}", op.name)),
        "targetLink": link(&format!("{scope}/{}", op.target)),
        "startTime": op.start_time,
    });
    // Proto3 JSON leaves out a default: node pool updates carry no type (as recorded).
    if op.op_type != OpType::Unspecified {
        out["operationType"] = enc.render(op.op_type);
    }
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
    fn the_oldest_version_compares_numbers() {
        let versions = ["1.33.10-gke.1", "1.33.9-gke.2", "1.34.0-gke.1"];
        assert_eq!(oldest_version(versions.into_iter()), Some("1.33.9-gke.2"));
        assert_eq!(oldest_version(std::iter::empty()), None);
    }

    #[test]
    fn project_numbers_are_stable_twelve_digits() {
        let n = project_number("my-project");
        assert_eq!(n.len(), 12);
        assert_eq!(n, project_number("my-project"));
        assert_eq!(project_number("123"), "123");
    }
}
