//! The `basic` template, after the seed operator's: a VPC network and subnetwork, a node service
//! account with the one role nodes need, a cluster without its default pool, and a node pool of
//! `nodes` machines.

use serde_json::json;

use super::{
    COMPUTE_NETWORK, COMPUTE_SUBNETWORK, CONTAINER_CLUSTER, CONTAINER_NODE_POOL, IAM_POLICY_MEMBER,
    IAM_SERVICE_ACCOUNT, RenderedObject, TemplateParams,
};

/// Tells Config Connector to drop GKE's default pool once the cluster exists: the template's own
/// pool, with the requested size and machine type, replaces it.
const REMOVE_DEFAULT_NODE_POOL: &str = "cnrm.cloud.google.com/remove-default-node-pool";

pub(super) fn render(p: &TemplateParams) -> Vec<RenderedObject> {
    let name = p.cluster_name.as_str();
    let mut cluster_spec = json!({
        "location": p.location,
        // GKE requires a default pool at creation; it is removed right after (see annotation).
        "initialNodeCount": 1,
        "networkRef": {"name": name},
        "subnetworkRef": {"name": name},
        "releaseChannel": {"channel": "REGULAR"},
        "ipAllocationPolicy": {"clusterIpv4CidrBlock": "/16", "servicesIpv4CidrBlock": "/22"},
        "workloadIdentityConfig": {"workloadPool": format!("{}.svc.id.goog", p.project)},
    });
    if let Some(version) = &p.kubernetes_version {
        cluster_spec["minMasterVersion"] = json!(version);
    }
    let mut cluster = RenderedObject::new(CONTAINER_CLUSTER, p, cluster_spec);
    cluster.manifest["metadata"]["annotations"][REMOVE_DEFAULT_NODE_POOL] = json!("true");
    vec![
        RenderedObject::new(
            COMPUTE_NETWORK,
            p,
            json!({
                "autoCreateSubnetworks": false,
                "routingMode": "REGIONAL",
            }),
        ),
        RenderedObject::new(
            COMPUTE_SUBNETWORK,
            p,
            json!({
                "region": p.region,
                "ipCidrRange": "10.128.0.0/20",
                "networkRef": {"name": name},
            }),
        ),
        RenderedObject::new(
            IAM_SERVICE_ACCOUNT,
            p,
            json!({
                "resourceID": service_account_id(name),
                "displayName": format!("nodes of test cluster {name}"),
            }),
        ),
        RenderedObject::new(
            IAM_POLICY_MEMBER,
            p,
            json!({
                "memberFrom": {"serviceAccountRef": {"name": name}},
                "role": "roles/container.defaultNodeServiceAccount",
                "resourceRef": {"kind": "Project", "external": format!("projects/{}", p.project)},
            }),
        ),
        cluster,
        RenderedObject::new(
            CONTAINER_NODE_POOL,
            p,
            json!({
                "location": p.location,
                "clusterRef": {"name": name},
                "nodeCount": p.nodes,
                "nodeConfig": {
                    "machineType": p.machine_type,
                    "serviceAccountRef": {"name": name},
                    "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"],
                },
                // GKE refuses to turn these off on the REGULAR channel (the seed's issue #11).
                "management": {"autoRepair": true, "autoUpgrade": true},
            }),
        ),
    ]
}

/// GCP service account IDs have 6 to 30 characters; cluster names may have 40. The cluster
/// name's random suffix is kept, so IDs stay unique.
fn service_account_id(cluster_name: &str) -> String {
    const MAX: usize = 30;
    if cluster_name.len() <= MAX {
        return cluster_name.to_owned();
    }
    let (stem, suffix) = cluster_name.rsplit_once('-').unwrap_or((cluster_name, ""));
    let keep = MAX.saturating_sub(suffix.len() + 1);
    // Names are validated ASCII, but counting chars keeps this panic-free on anything else.
    let stem: String = stem.chars().take(keep).collect();
    format!("{}-{suffix}", stem.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::super::PROJECT_ANNOTATION;
    use super::*;

    fn params() -> TemplateParams {
        TemplateParams {
            namespace: "test-clusters".into(),
            cluster_name: "testme-1-fn86p".into(),
            project: "cilium-ci".into(),
            location: "europe-west2-b".into(),
            region: "europe-west2".into(),
            machine_type: "n1-standard-4".into(),
            nodes: 2,
            kubernetes_version: None,
        }
    }

    #[test]
    fn renders_the_seed_objects_in_dependency_order() {
        let objects: Vec<_> = render(&params()).into_iter().map(|o| o.manifest).collect();
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ComputeNetwork",
                "ComputeSubnetwork",
                "IAMServiceAccount",
                "IAMPolicyMember",
                "ContainerCluster",
                "ContainerNodePool"
            ]
        );
        for object in &objects {
            assert_eq!(object["metadata"]["name"], "testme-1-fn86p");
            assert_eq!(object["metadata"]["namespace"], "test-clusters");
            assert_eq!(
                object["metadata"]["annotations"][PROJECT_ANNOTATION],
                "cilium-ci"
            );
        }
        let pool = &objects[5];
        assert_eq!(pool["spec"]["nodeCount"], 2);
        assert_eq!(pool["spec"]["nodeConfig"]["machineType"], "n1-standard-4");
        assert_eq!(pool["spec"]["clusterRef"]["name"], "testme-1-fn86p");
        assert_eq!(
            objects[4]["metadata"]["annotations"][REMOVE_DEFAULT_NODE_POOL],
            "true"
        );
        assert_eq!(objects[1]["spec"]["region"], "europe-west2");
        assert_eq!(objects[2]["spec"]["resourceID"], "testme-1-fn86p");
        assert!(objects[4]["spec"].get("minMasterVersion").is_none());
    }

    #[test]
    fn kubernetes_version_pins_the_master() {
        let objects = render(&TemplateParams {
            kubernetes_version: Some("1.33".into()),
            ..params()
        });
        assert_eq!(objects[4].manifest["spec"]["minMasterVersion"], "1.33");
    }

    #[test]
    fn service_account_ids_fit_gcp_limits_and_keep_the_suffix() {
        assert_eq!(service_account_id("testme-1-fn86p"), "testme-1-fn86p");
        let long = "a-very-long-test-cluster-name-here-fn86p";
        let id = service_account_id(long);
        assert!(id.len() <= 30, "{id}");
        assert!(id.ends_with("-fn86p"), "{id}");
        assert_eq!(id, "a-very-long-test-cluster-fn86p");
    }
}
