//! The objects a test cluster is made of, as the provisioner's `basic` template renders them: the
//! seven Config Connector objects behind one TestClusterGKE.

use kube::api::ApiResource;
use serde_json::{Value, json};

pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The Config Connector objects of one test cluster, all named `cluster`, carrying `labels`:
/// network, subnetwork, cluster, a node pool of `nodes`, and a service account with its role and key.
pub fn config_connector_objects(
    namespace: &str,
    cluster: &str,
    labels: &Value,
    nodes: u32,
) -> Vec<(ApiResource, String, Value)> {
    let object = |group: &str, kind: &str, plural: &str, spec: Value| {
        (
            resource(
                &format!("{group}.cnrm.cloud.google.com"),
                "v1beta1",
                kind,
                plural,
            ),
            namespace.to_owned(),
            json!({"apiVersion": format!("{group}.cnrm.cloud.google.com/v1beta1"), "kind": kind,
                   "metadata": {"name": cluster, "namespace": namespace, "labels": labels}, "spec": spec}),
        )
    };
    vec![
        object(
            "container",
            "ContainerCluster",
            "containerclusters",
            json!({"location": "europe-west2-b", "initialNodeCount": 1, "removeDefaultNodePool": true,
                   "networkRef": {"name": cluster}, "subnetworkRef": {"name": cluster},
                   "releaseChannel": {"channel": "REGULAR"}, "loggingService": "none", "monitoringService": "none"}),
        ),
        object(
            "container",
            "ContainerNodePool",
            "containernodepools",
            json!({"location": "europe-west2-b", "nodeCount": nodes, "clusterRef": {"name": cluster},
                   "nodeConfig": {"machineType": "n1-standard-4", "diskSizeGb": 100, "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"]}}),
        ),
        object(
            "compute",
            "ComputeNetwork",
            "computenetworks",
            json!({"autoCreateSubnetworks": false, "routingMode": "REGIONAL"}),
        ),
        object(
            "compute",
            "ComputeSubnetwork",
            "computesubnetworks",
            json!({"region": "europe-west2", "ipCidrRange": "10.0.0.0/16", "networkRef": {"name": cluster}}),
        ),
        object(
            "iam",
            "IAMServiceAccount",
            "iamserviceaccounts",
            json!({"displayName": format!("test cluster {cluster}")}),
        ),
        object(
            "iam",
            "IAMPolicyMember",
            "iampolicymembers",
            json!({"member": format!("serviceAccount:{cluster}@cilium-ci.iam.gserviceaccount.com"),
                   "role": "roles/container.admin",
                   "resourceRef": {"kind": "Project", "external": "projects/cilium-ci"}}),
        ),
        object(
            "iam",
            "IAMServiceAccountKey",
            "iamserviceaccountkeys",
            json!({"serviceAccountRef": {"name": cluster}}),
        ),
    ]
}
