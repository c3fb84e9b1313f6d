//! The seven Config Connector kinds the simulator serves, and the references between them.

use kube::ResourceExt as _;
use kube::core::{ApiResource, DynamicObject};
use serde_json::Value;

/// A Config Connector kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    ComputeNetwork,
    ComputeSubnetwork,
    ContainerCluster,
    ContainerNodePool,
    IamServiceAccount,
    IamPolicyMember,
    IamServiceAccountKey,
}

impl Kind {
    pub(crate) const ALL: [Kind; 7] = [
        Kind::ComputeNetwork,
        Kind::ComputeSubnetwork,
        Kind::ContainerCluster,
        Kind::ContainerNodePool,
        Kind::IamServiceAccount,
        Kind::IamPolicyMember,
        Kind::IamServiceAccountKey,
    ];

    /// The `kind` as Kubernetes spells it (and as reference messages name it).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::ComputeNetwork => "ComputeNetwork",
            Kind::ComputeSubnetwork => "ComputeSubnetwork",
            Kind::ContainerCluster => "ContainerCluster",
            Kind::ContainerNodePool => "ContainerNodePool",
            Kind::IamServiceAccount => "IAMServiceAccount",
            Kind::IamPolicyMember => "IAMPolicyMember",
            Kind::IamServiceAccountKey => "IAMServiceAccountKey",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub(crate) fn group(self) -> &'static str {
        match self {
            Kind::ComputeNetwork | Kind::ComputeSubnetwork => "compute.cnrm.cloud.google.com",
            Kind::ContainerCluster | Kind::ContainerNodePool => "container.cnrm.cloud.google.com",
            Kind::IamServiceAccount | Kind::IamPolicyMember | Kind::IamServiceAccountKey => {
                "iam.cnrm.cloud.google.com"
            }
        }
    }

    pub(crate) fn plural(self) -> String {
        format!("{}s", self.name().to_lowercase())
    }

    /// The name of the CRD that serves this kind.
    pub(crate) fn crd_name(self) -> String {
        format!("{}.{}", self.plural(), self.group())
    }

    pub(crate) fn api_resource(self) -> ApiResource {
        ApiResource {
            group: self.group().to_owned(),
            version: "v1beta1".to_owned(),
            api_version: format!("{}/v1beta1", self.group()),
            kind: self.name().to_owned(),
            plural: self.plural(),
        }
    }

    /// The controller name Config Connector reports events under (`containercluster-controller`).
    pub(crate) fn controller_name(self) -> String {
        format!("{}-controller", self.name().to_lowercase())
    }

    /// Kinds whose objects this kind may reference, so that their changes re-trigger it.
    pub(crate) fn dependency_kinds(self) -> &'static [Kind] {
        match self {
            Kind::ComputeNetwork | Kind::IamServiceAccount => &[],
            Kind::ComputeSubnetwork => &[Kind::ComputeNetwork],
            Kind::ContainerCluster => &[
                Kind::ComputeNetwork,
                Kind::ComputeSubnetwork,
                Kind::IamServiceAccount,
            ],
            Kind::ContainerNodePool => &[Kind::ContainerCluster, Kind::IamServiceAccount],
            Kind::IamPolicyMember | Kind::IamServiceAccountKey => &[Kind::IamServiceAccount],
        }
    }

    /// The in-namespace objects `object` depends on, in the order Config Connector resolves them.
    /// References by `external` name something outside Kubernetes and never block.
    pub(crate) fn references(self, object: &DynamicObject) -> Vec<Reference> {
        let spec = &object.data["spec"];
        let namespace = object.namespace().unwrap_or_default();
        let fixed: &[(&[&str], Kind)] = match self {
            Kind::ComputeNetwork | Kind::IamServiceAccount => &[],
            Kind::ComputeSubnetwork => &[(&["networkRef"], Kind::ComputeNetwork)],
            Kind::ContainerCluster => &[
                (&["networkRef"], Kind::ComputeNetwork),
                (&["subnetworkRef"], Kind::ComputeSubnetwork),
                (
                    &["nodeConfig", "serviceAccountRef"],
                    Kind::IamServiceAccount,
                ),
            ],
            Kind::ContainerNodePool => &[
                (&["clusterRef"], Kind::ContainerCluster),
                (
                    &["nodeConfig", "serviceAccountRef"],
                    Kind::IamServiceAccount,
                ),
            ],
            Kind::IamPolicyMember => &[(
                &["memberFrom", "serviceAccountRef"],
                Kind::IamServiceAccount,
            )],
            Kind::IamServiceAccountKey => &[(&["serviceAccountRef"], Kind::IamServiceAccount)],
        };
        let mut references: Vec<Reference> = fixed
            .iter()
            .filter_map(|(path, kind)| {
                let value = path.iter().fold(spec, |v, key| &v[*key]);
                Reference::from_value(*kind, value, &namespace)
            })
            .collect();
        // An IAMPolicyMember's target may be one of the simulated kinds (for example the service
        // account that Workload Identity binds); other targets are outside the simulation.
        if self == Kind::IamPolicyMember
            && let Some(kind) = spec["resourceRef"]["kind"]
                .as_str()
                .and_then(Kind::from_name)
            && self.dependency_kinds().contains(&kind)
            && let Some(reference) = Reference::from_value(kind, &spec["resourceRef"], &namespace)
        {
            references.push(reference);
        }
        references
    }
}

/// A reference from one Config Connector object to another in Kubernetes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Reference {
    fn from_value(kind: Kind, value: &Value, default_namespace: &str) -> Option<Reference> {
        let name = value["name"].as_str().filter(|n| !n.is_empty())?;
        Some(Reference {
            kind,
            namespace: value["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(default_namespace)
                .to_owned(),
            name: name.to_owned(),
        })
    }

    /// Whether this reference names `object` of kind `kind`.
    pub(crate) fn names(&self, kind: Kind, object: &DynamicObject) -> bool {
        self.kind == kind
            && object.namespace().as_deref() == Some(self.namespace.as_str())
            && object.metadata.name.as_deref() == Some(self.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(kind: Kind, spec: Value) -> DynamicObject {
        let mut object = DynamicObject::new("x", &kind.api_resource()).within("ns");
        object.data = json!({ "spec": spec });
        object
    }

    #[test]
    fn node_pool_references_its_cluster_and_service_account() {
        let pool = object(
            Kind::ContainerNodePool,
            json!({"clusterRef": {"name": "c"}, "nodeConfig": {"serviceAccountRef": {"name": "sa", "namespace": "other"}}}),
        );
        assert_eq!(
            Kind::ContainerNodePool.references(&pool),
            vec![
                Reference {
                    kind: Kind::ContainerCluster,
                    namespace: "ns".into(),
                    name: "c".into()
                },
                Reference {
                    kind: Kind::IamServiceAccount,
                    namespace: "other".into(),
                    name: "sa".into()
                },
            ]
        );
    }

    #[test]
    fn external_references_do_not_block() {
        let cluster = object(
            Kind::ContainerCluster,
            json!({"networkRef": {"external": "projects/p/global/networks/default"}}),
        );
        assert!(Kind::ContainerCluster.references(&cluster).is_empty());
    }

    #[test]
    fn policy_member_waits_for_service_account_targets_only() {
        let member = object(
            Kind::IamPolicyMember,
            json!({"memberFrom": {"serviceAccountRef": {"name": "a"}},
                   "resourceRef": {"kind": "IAMServiceAccount", "name": "b"}}),
        );
        let names: Vec<String> = Kind::IamPolicyMember
            .references(&member)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let on_project = object(
            Kind::IamPolicyMember,
            json!({"resourceRef": {"kind": "Project", "name": "p"}}),
        );
        assert!(Kind::IamPolicyMember.references(&on_project).is_empty());
    }

    #[test]
    fn api_resources_match_the_crds() {
        assert_eq!(
            Kind::IamServiceAccountKey.crd_name(),
            "iamserviceaccountkeys.iam.cnrm.cloud.google.com"
        );
        assert_eq!(
            Kind::ContainerNodePool.api_resource().api_version,
            "container.cnrm.cloud.google.com/v1beta1"
        );
    }
}
