//! ContainerCluster and ContainerNodePool in terms of the cloud's one cluster model: the record a
//! spec becomes (as Config Connector translates it into its GKE create call), and the status
//! fields a record shows (as Config Connector reads them back).

use std::collections::BTreeMap;

use kube::ResourceExt as _;
use kube::core::DynamicObject;
use serde_json::{Map, Value, json};

use crate::cloud::ClusterKey;
use crate::cloud::model::{ClusterRecord, PoolRecord};

/// Config Connector labels every resource it manages (seen in the recorded create call).
const MANAGED_LABEL: &str = "managed-by-cnrm";

/// The cluster fields (besides name and location) Config Connector sends when it creates the
/// cluster: the object's labels as `resourceLabels`, and the spec's settings under GKE's names.
pub(super) fn cluster_spec(object: &DynamicObject, project: &str) -> Map<String, Value> {
    let spec = &object.data["spec"];
    let mut labels: BTreeMap<String, String> = object.labels().clone().into_iter().collect();
    labels.insert(MANAGED_LABEL.to_owned(), "true".to_owned());
    let mut out = Map::new();
    out.insert("resourceLabels".into(), json!(labels));
    for field in [
        "initialNodeCount",
        "loggingService",
        "monitoringService",
        "releaseChannel",
        "description",
        "clusterIpv4Cidr",
    ] {
        if let Some(value) = spec.get(field).filter(|v| !v.is_null()) {
            out.insert(field.into(), value.clone());
        }
    }
    if let Some(Value::Object(policy)) = spec.get("ipAllocationPolicy") {
        let mut policy = policy.clone();
        policy.insert("useIpAliases".into(), json!(true));
        out.insert("ipAllocationPolicy".into(), Value::Object(policy));
    }
    if let Some(network) = reference(spec, "networkRef") {
        out.insert(
            "network".into(),
            json!(format!("projects/{project}/global/networks/{network}")),
        );
    }
    if let Some(subnetwork) = reference(spec, "subnetworkRef") {
        out.insert("subnetwork".into(), json!(subnetwork));
    }
    out
}

/// The name a `*Ref` points to: the last segment of `external`, or `name`.
fn reference<'s>(spec: &'s Value, field: &str) -> Option<&'s str> {
    let reference = &spec[field];
    reference["external"]
        .as_str()
        .and_then(|e| e.rsplit('/').next())
        .or_else(|| reference["name"].as_str())
        .filter(|name| !name.is_empty())
}

/// The node pool fields a ContainerCluster's default pool or a ContainerNodePool is created with:
/// `config` from `nodeConfig`, `autoscaling` in GKE's form.
pub(super) fn pool_spec(spec: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(Value::Object(config)) = spec.get("nodeConfig") {
        out.insert("config".into(), Value::Object(config.clone()));
    }
    if let Some(Value::Object(autoscaling)) = spec.get("autoscaling") {
        let mut autoscaling = autoscaling.clone();
        autoscaling.insert("enabled".into(), json!(true));
        out.insert("autoscaling".into(), Value::Object(autoscaling));
    }
    out
}

/// A ContainerCluster's status fields, read from the cloud's record.
pub(super) fn cluster_status(record: &ClusterRecord) -> Map<String, Value> {
    use base64::Engine as _;
    let key = &record.key;
    let ca = record
        .ca_pem
        .as_deref()
        .map(|ca| base64::engine::general_purpose::STANDARD.encode(ca))
        .unwrap_or_default();
    into_map(json!({
        "endpoint": record.endpoint.clone().unwrap_or_default(),
        "labelFingerprint": record.label_fingerprint(),
        "masterVersion": record.master_version,
        "selfLink": format!(
            "https://container.googleapis.com/v1beta1/projects/{}/locations/{}/clusters/{}",
            key.project, key.location, key.name
        ),
        "servicesIpv4Cidr": "34.118.224.0/20",
        "observedState": {"masterAuth": {"clusterCaCertificate": ca}},
    }))
}

/// A ContainerNodePool's status fields, read from the cloud's record of its pool.
pub(super) fn pool_status(key: &ClusterKey, pool: &PoolRecord) -> Map<String, Value> {
    let group = format!("gke-{}-{}-grp", key.name, pool.name);
    into_map(json!({
        "instanceGroupUrls": [format!(
            "https://www.googleapis.com/compute/v1/projects/{}/zones/{}/instanceGroupManagers/{group}",
            key.project, key.location
        )],
        "managedInstanceGroupUrls": [format!(
            "https://www.googleapis.com/compute/v1beta1/projects/{}/zones/{}/instanceGroups/{group}",
            key.project, key.location
        )],
        "observedState": {"version": pool.version},
    }))
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::connector::kinds::Kind;

    #[test]
    fn the_spec_becomes_gkes_fields() {
        let mut object = DynamicObject::new("c", &Kind::ContainerCluster.api_resource());
        object.metadata.labels = Some([("team".to_owned(), "ci".to_owned())].into());
        object.data = json!({"spec": {
            "location": "us-central1-a",
            "releaseChannel": {"channel": "RAPID"},
            "ipAllocationPolicy": {"clusterIpv4CidrBlock": "/16"},
            "networkRef": {"name": "net"},
            "subnetworkRef": {"external": "projects/p/regions/us-central1/subnetworks/sub"},
        }});
        let spec = cluster_spec(&object, "p");
        assert_eq!(
            spec["resourceLabels"],
            json!({"managed-by-cnrm": "true", "team": "ci"})
        );
        assert_eq!(spec["releaseChannel"], json!({"channel": "RAPID"}));
        assert_eq!(
            spec["ipAllocationPolicy"],
            json!({"clusterIpv4CidrBlock": "/16", "useIpAliases": true})
        );
        assert_eq!(spec["network"], "projects/p/global/networks/net");
        assert_eq!(spec["subnetwork"], "sub");
        assert_eq!(
            pool_spec(&json!({"autoscaling": {"minNodeCount": 1, "maxNodeCount": 3}}))["autoscaling"],
            json!({"enabled": true, "minNodeCount": 1, "maxNodeCount": 3})
        );
    }
}
