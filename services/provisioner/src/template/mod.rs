//! Cluster templates: a named recipe turning a `TestClusterGKE` spec into the Config Connector
//! objects that make its cluster. Templates are code, so a typo in one is a compile error, not a
//! failed run.
//!
//! Every rendered object is named after the cloud cluster (`status.clusterName`) and lives in the
//! `TestClusterGKE`'s namespace, so the provisioner can always find, re-apply and delete them from
//! the status alone, even after a restart.

mod basic;

use kube::core::ApiResource;
use serde_json::Value;

/// What a template needs to know about one request, defaults already applied.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateParams {
    /// Namespace of the `TestClusterGKE`; every rendered object lives there too.
    pub namespace: String,
    /// The cloud cluster's name (`status.clusterName`), also the name of every rendered object.
    pub cluster_name: String,
    pub project: String,
    pub location: String,
    pub region: String,
    pub machine_type: String,
    pub nodes: u32,
    pub kubernetes_version: Option<String>,
}

/// A Kubernetes kind a template may render, with what the API needs to address it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl ObjectKind {
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// The dynamic type kube's `Api<DynamicObject>` and `Controller::owns_with` take.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.to_owned(),
            version: self.version.to_owned(),
            api_version: self.api_version(),
            kind: self.kind.to_owned(),
            plural: self.plural.to_owned(),
        }
    }
}

pub const COMPUTE_NETWORK: ObjectKind = cnrm("compute", "ComputeNetwork", "computenetworks");
pub const COMPUTE_SUBNETWORK: ObjectKind =
    cnrm("compute", "ComputeSubnetwork", "computesubnetworks");
pub const IAM_SERVICE_ACCOUNT: ObjectKind = cnrm("iam", "IAMServiceAccount", "iamserviceaccounts");
pub const IAM_POLICY_MEMBER: ObjectKind = cnrm("iam", "IAMPolicyMember", "iampolicymembers");
pub const CONTAINER_CLUSTER: ObjectKind =
    cnrm("container", "ContainerCluster", "containerclusters");
pub const CONTAINER_NODE_POOL: ObjectKind =
    cnrm("container", "ContainerNodePool", "containernodepools");

const fn cnrm(service: &'static str, kind: &'static str, plural: &'static str) -> ObjectKind {
    let group = match service.as_bytes() {
        b"compute" => "compute.cnrm.cloud.google.com",
        b"iam" => "iam.cnrm.cloud.google.com",
        _ => "container.cnrm.cloud.google.com",
    };
    ObjectKind {
        group,
        version: "v1beta1",
        kind,
        plural,
    }
}

/// Every kind any template renders: the controller watches these for changes of the objects it
/// owns, and teardown looks for leftovers of each.
pub const OWNED_KINDS: [ObjectKind; 6] = [
    COMPUTE_NETWORK,
    COMPUTE_SUBNETWORK,
    IAM_SERVICE_ACCOUNT,
    IAM_POLICY_MEMBER,
    CONTAINER_CLUSTER,
    CONTAINER_NODE_POOL,
];

/// One object a template made: its kind and its manifest (without owner references, which the
/// controller adds).
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedObject {
    pub kind: ObjectKind,
    pub manifest: Value,
}

impl RenderedObject {
    fn new(kind: ObjectKind, params: &TemplateParams, spec: Value) -> RenderedObject {
        RenderedObject {
            kind,
            manifest: serde_json::json!({
                "apiVersion": kind.api_version(),
                "kind": kind.kind,
                "metadata": {
                    "name": params.cluster_name,
                    "namespace": params.namespace,
                    "annotations": {PROJECT_ANNOTATION: params.project},
                },
                "spec": spec,
            }),
        }
    }

    pub fn name(&self) -> &str {
        self.manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
    }
}

/// Config Connector's annotation choosing the project an object's cloud resource lives in.
pub const PROJECT_ANNOTATION: &str = "cnrm.cloud.google.com/project-id";

/// A built-in template.
pub struct Template {
    pub name: &'static str,
    pub description: &'static str,
    render: fn(&TemplateParams) -> Vec<RenderedObject>,
}

impl Template {
    /// The objects this template makes, in dependency order.
    pub fn render(&self, params: &TemplateParams) -> Vec<RenderedObject> {
        (self.render)(params)
    }
}

/// Every template this provisioner knows, ordered by name.
pub const TEMPLATES: &[Template] = &[Template {
    name: "basic",
    description: "A zonal GKE cluster on its own VPC network, with one node pool run by a dedicated service account",
    render: basic::render,
}];

/// The template called `name`.
pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// Names of all templates, for error messages.
pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rendered_kind_is_owned_and_templates_are_sorted() {
        let params = TemplateParams {
            namespace: "ns".into(),
            cluster_name: "c-abcde".into(),
            project: "p".into(),
            location: "europe-west2-b".into(),
            region: "europe-west2".into(),
            machine_type: "n1-standard-4".into(),
            nodes: 1,
            kubernetes_version: None,
        };
        for template in TEMPLATES {
            for object in template.render(&params) {
                assert!(OWNED_KINDS.contains(&object.kind), "{:?}", object.kind);
                assert_eq!(object.manifest["kind"], object.kind.kind);
                assert_eq!(object.manifest["apiVersion"], object.kind.api_version());
                assert_eq!(object.name(), "c-abcde");
            }
        }
        let names = names();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(find("basic").is_some());
        assert!(find("nope").is_none());
    }

    #[test]
    fn api_resources_address_config_connector() {
        let resource = CONTAINER_NODE_POOL.api_resource();
        assert_eq!(
            resource.api_version,
            "container.cnrm.cloud.google.com/v1beta1"
        );
        assert_eq!(resource.plural, "containernodepools");
        assert_eq!(IAM_POLICY_MEMBER.group, "iam.cnrm.cloud.google.com");
        assert_eq!(COMPUTE_SUBNETWORK.group, "compute.cnrm.cloud.google.com");
    }
}

/// Fuzz target (a property test; see `crates/resources/tests/fuzz.rs` for the longer run).
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any parameters render, never a panic, into objects named after the cluster, in its
        /// namespace, that carry the asked node count and machine type unchanged.
        #[test]
        fn fuzz_template_rendering(
            namespace in any::<String>(),
            cluster_name in any::<String>(),
            project in any::<String>(),
            location in any::<String>(),
            region in any::<String>(),
            machine_type in any::<String>(),
            nodes in any::<u32>(),
            kubernetes_version in proptest::option::of(any::<String>()),
        ) {
            let params = TemplateParams { namespace, cluster_name, project, location, region, machine_type, nodes, kubernetes_version };
            for template in TEMPLATES {
                let objects = template.render(&params);
                prop_assert!(!objects.is_empty());
                for object in objects {
                    prop_assert_eq!(object.name(), params.cluster_name.as_str());
                    prop_assert_eq!(object.manifest["metadata"]["namespace"].as_str(), Some(params.namespace.as_str()));
                    prop_assert_eq!(object.manifest["metadata"]["annotations"][PROJECT_ANNOTATION].as_str(), Some(params.project.as_str()));
                }
            }
        }
    }
}
