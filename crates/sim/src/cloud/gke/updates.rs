//! `clusters.update`, `nodePools.update` and `clusters.setResourceLabels`: what a request asks to
//! change, and the change itself, made on the cloud's record when the operation ends.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::errors::GoogleError;
use super::model::{ClusterRecord, OpType, VERSION};

/// The changes one update request asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Change {
    /// `UPGRADE_MASTER`, `UPGRADE_NODES`, `UPDATE_CLUSTER`, `SET_LABELS`, or unspecified (a node
    /// pool update that changes no version, as GKE reports it).
    pub op_type: Option<OpType>,
    pub master_version: Option<String>,
    /// The node pool the pool fields and node version apply to; `None` for cluster fields only.
    pub pool: Option<String>,
    pub node_version: Option<String>,
    /// Fields of the pool's `config` (`imageType`, `machineType`, `taints`, `labels`, ...).
    pub pool_config: Map<String, Value>,
    /// Top-level fields of the pool (`autoscaling`, `locations`, `upgradeSettings`, ...).
    pub pool_fields: Map<String, Value>,
    /// Top-level fields of the cluster (`loggingService`, `releaseChannel`, ...).
    pub cluster_fields: Map<String, Value>,
    pub resource_labels: Option<BTreeMap<String, String>>,
}

impl Change {
    pub fn op_type(&self) -> OpType {
        self.op_type.unwrap_or(OpType::Unspecified)
    }

    /// A `ClusterUpdate` (the `update` of `PUT clusters/{c}`), checked against `cluster`. Each
    /// `desiredX` sets the cluster's `x`, except those that address versions and node pools.
    pub fn cluster_update(
        update: &Map<String, Value>,
        cluster: &ClusterRecord,
    ) -> Result<Change, GoogleError> {
        if let Some(etag) = update.get("etag").and_then(Value::as_str)
            && !etag.is_empty()
            && etag != cluster.etag()
        {
            return Err(GoogleError::aborted(format!(
                "Cluster \"{}\" has been modified (etag \"{etag}\" does not match \"{}\"); get \
                 the cluster and try again.",
                cluster.key.name,
                cluster.etag()
            )));
        }
        let mut change = Change::default();
        for (field, value) in set_fields(update) {
            match field.as_str() {
                "etag" | "desiredNodePoolId" => {}
                "desiredMasterVersion" => {
                    change.master_version = Some(version(field, value, VERSION)?);
                }
                "desiredNodeVersion" => {
                    change.node_version = Some(version(field, value, &cluster.master_version)?);
                }
                "desiredImageType" => {
                    change.pool_config.insert("imageType".into(), value.clone());
                }
                "desiredNodePoolAutoscaling" => {
                    change
                        .pool_fields
                        .insert("autoscaling".into(), value.clone());
                }
                other => {
                    let Some(name) = other.strip_prefix("desired").map(lower_first) else {
                        continue;
                    };
                    change.cluster_fields.insert(name, value.clone());
                }
            }
        }
        let touches_pool = change.node_version.is_some()
            || !change.pool_config.is_empty()
            || !change.pool_fields.is_empty();
        if touches_pool {
            let named = update.get("desiredNodePoolId").and_then(Value::as_str);
            change.pool = match (named, cluster.pools.as_slice()) {
                (Some(pool), _) if !pool.is_empty() => Some(pool.to_owned()),
                (_, [only]) => Some(only.name.clone()),
                _ => {
                    return Err(GoogleError::invalid_argument(
                        "desired_node_pool_id must be specified when the cluster has more than \
                         one node pool.",
                    ));
                }
            };
        }
        if change == Change::default() {
            return Err(GoogleError::invalid_argument(
                "Update cluster request must specify at least one field to update.",
            ));
        }
        change.op_type = Some(if change.master_version.is_some() {
            OpType::UpgradeMaster
        } else if change.node_version.is_some() {
            OpType::UpgradeNodes
        } else {
            OpType::UpdateCluster
        });
        Ok(change)
    }

    /// An `UpdateNodePoolRequest` (the body of `PUT nodePools/{np}`) for `pool` of `cluster`.
    pub fn pool_update(
        request: &Map<String, Value>,
        cluster: &ClusterRecord,
        pool: &str,
    ) -> Result<Change, GoogleError> {
        let mut change = Change {
            pool: Some(pool.to_owned()),
            ..Change::default()
        };
        for (field, value) in set_fields(request) {
            match field.as_str() {
                "name" | "projectId" | "zone" | "clusterId" | "nodePoolId" | "etag" => {}
                "nodeVersion" => {
                    change.node_version = Some(version(field, value, &cluster.master_version)?);
                }
                "locations" | "upgradeSettings" => {
                    change.pool_fields.insert(field.clone(), value.clone());
                }
                // Wrapper messages: `{"taints": {"taints": [...]}}` sets `config.taints`.
                "taints" | "tags" | "labels" | "resourceLabels" => {
                    let inner = value.get(field).cloned().unwrap_or_else(|| value.clone());
                    change.pool_config.insert(field.clone(), inner);
                }
                _ => {
                    change.pool_config.insert(field.clone(), value.clone());
                }
            }
        }
        if change.node_version.is_none()
            && change.pool_config.is_empty()
            && change.pool_fields.is_empty()
        {
            return Err(GoogleError::invalid_argument(
                "Update node pool request must specify at least one field to update.",
            ));
        }
        change.op_type = change.node_version.as_ref().map(|_| OpType::UpgradeNodes);
        Ok(change)
    }

    /// `SetLabelsRequest`: GKE refuses a stale `labelFingerprint`.
    pub fn set_labels(
        request: &Map<String, Value>,
        cluster: &ClusterRecord,
    ) -> Result<Change, GoogleError> {
        let given = request
            .get("labelFingerprint")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let expected = cluster.label_fingerprint();
        if given != expected {
            return Err(GoogleError::failed_precondition(format!(
                "Labels could not be set due to fingerprint mismatch; try again with the proper \
                 fingerprint: incorrect fingerprint supplied was \"{given}\", the expected one is \
                 \"{expected}\"."
            )));
        }
        let labels = request
            .get("resourceLabels")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| {
                GoogleError::invalid_argument(format!(
                    "Invalid value for field \"resourceLabels\": {e}"
                ))
            })?
            .unwrap_or_default();
        Ok(Change {
            op_type: Some(OpType::SetLabels),
            resource_labels: Some(labels),
            ..Change::default()
        })
    }

    /// Makes the change on the cluster's record (when its operation ends).
    pub fn apply(&self, cluster: &mut ClusterRecord) {
        if let Some(version) = &self.master_version {
            cluster.master_version.clone_from(version);
        }
        if let Some(labels) = &self.resource_labels {
            cluster.resource_labels.clone_from(labels);
        }
        for (field, value) in &self.cluster_fields {
            if field == "resourceLabels" {
                // v1beta1's `desiredResourceLabels` is a `ResourceLabels` message.
                if let Some(Ok(labels)) = value.get("labels").cloned().map(serde_json::from_value) {
                    cluster.resource_labels = labels;
                }
                continue;
            }
            cluster.spec.insert(field.clone(), value.clone());
        }
        let Some(pool) = self.pool.as_deref().and_then(|p| cluster.pool_mut(p)) else {
            return;
        };
        if let Some(version) = &self.node_version {
            pool.version.clone_from(version);
        }
        for (field, value) in &self.pool_fields {
            pool.spec.insert(field.clone(), value.clone());
        }
        if let Some(machine_type) = self.pool_config.get("machineType").and_then(Value::as_str) {
            machine_type.clone_into(&mut pool.machine_type);
        }
        if !self.pool_config.is_empty() {
            let config = pool
                .spec
                .entry("config")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(config) = config {
                for (field, value) in &self.pool_config {
                    config.insert(field.clone(), value.clone());
                }
            }
        }
    }
}

/// The fields a request sets: proto3 JSON may spell an unset field as `""` or `null`.
fn set_fields(request: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    request
        .iter()
        .filter(|(_, value)| !matches!(value, Value::Null) && value.as_str() != Some(""))
}

/// A version or one of GKE's aliases: `-` is `default`, `latest` the newest the fake has.
fn version(field: &str, value: &Value, default: &str) -> Result<String, GoogleError> {
    let given = value.as_str().unwrap_or_default();
    match given {
        "-" => Ok(default.to_owned()),
        "latest" => Ok(VERSION.to_owned()),
        v if v.starts_with(|c: char| c.is_ascii_digit()) => Ok(v.to_owned()),
        _ => Err(GoogleError::invalid_argument(format!(
            "Invalid value for field \"{field}\": \"{given}\"."
        ))),
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cloud::ClusterKey;
    use crate::cloud::model::PoolRecord;

    fn cluster(pools: &[&str]) -> ClusterRecord {
        let key = ClusterKey {
            project: "p".into(),
            location: "us-central1-a".into(),
            name: "c".into(),
        };
        let pools = pools
            .iter()
            .map(|p| PoolRecord::new(p, "e2-medium", 1, Map::new()))
            .collect();
        ClusterRecord::new(&key, Map::new(), pools)
    }

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_recorded_autoscaling_update_addresses_the_named_pool() {
        let mut record = cluster(&["default-pool", "np"]);
        let update = map(json!({
            "desiredNodePoolAutoscaling": {"enabled": true, "maxNodeCount": 5, "minNodeCount": 1},
            "desiredNodePoolId": "np",
        }));
        let change = Change::cluster_update(&update, &record).expect("valid");
        assert_eq!(change.op_type(), OpType::UpdateCluster);
        change.apply(&mut record);
        assert_eq!(
            record
                .pool("np")
                .map(|p| p.spec["autoscaling"]["maxNodeCount"].clone()),
            Some(json!(5))
        );
        assert_eq!(record.pool("default-pool").map(|p| p.spec.len()), Some(0));
    }

    #[test]
    fn versions_and_generic_fields() {
        let mut record = cluster(&["default-pool"]);
        let update = map(json!({
            "desiredMasterVersion": "1.34.1-gke.100",
            "desiredLoggingService": "none",
        }));
        let change = Change::cluster_update(&update, &record).expect("valid");
        assert_eq!(change.op_type(), OpType::UpgradeMaster);
        change.apply(&mut record);
        assert_eq!(record.master_version, "1.34.1-gke.100");
        assert_eq!(record.spec["loggingService"], "none");

        let nodes = Change::cluster_update(&map(json!({"desiredNodeVersion": "-"})), &record)
            .expect("valid");
        assert_eq!(nodes.op_type(), OpType::UpgradeNodes);
        nodes.apply(&mut record);
        assert_eq!(
            record.pool("default-pool").map(|p| p.version.as_str()),
            Some("1.34.1-gke.100")
        );
    }

    #[test]
    fn refusals() {
        let record = cluster(&["a", "b"]);
        let ambiguous = Change::cluster_update(&map(json!({"desiredNodeVersion": "-"})), &record);
        assert_eq!(ambiguous.map_err(|e| e.status), Err("INVALID_ARGUMENT"));
        let stale = Change::cluster_update(
            &map(json!({"etag": "stale", "desiredLoggingService": "none"})),
            &record,
        );
        assert_eq!(
            stale.map_err(|e| (e.http.as_u16(), e.status)),
            Err((409, "ABORTED"))
        );
        let empty = Change::cluster_update(&Map::new(), &record);
        assert_eq!(empty.map_err(|e| e.status), Err("INVALID_ARGUMENT"));
        let labels = Change::set_labels(&map(json!({"resourceLabels": {"a": "b"}})), &record)
            .map_err(|e| e.message);
        assert_eq!(
            labels,
            Err(format!(
                "Labels could not be set due to fingerprint mismatch; try again with the proper \
                 fingerprint: incorrect fingerprint supplied was \"\", the expected one is \"{}\".",
                record.label_fingerprint()
            ))
        );
    }

    #[test]
    fn the_recorded_taints_update_sets_the_pool_config() {
        let mut record = cluster(&["np"]);
        let request = map(json!({
            "name": "np",
            "taints": {"taints": [{"effect": "NO_SCHEDULE", "key": "k", "value": "v"}]},
            "machineType": "e2-standard-8",
        }));
        let change = Change::pool_update(&request, &record, "np").expect("valid");
        assert_eq!(change.op_type(), OpType::Unspecified);
        change.apply(&mut record);
        let pool = record.pool("np").expect("pool");
        assert_eq!(pool.machine_type, "e2-standard-8");
        assert_eq!(pool.spec["config"]["taints"][0]["key"], "k");
    }
}
