//! Which resources the server serves: the built-in kinds, and the kinds of every established CRD.

use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use super::schema::Schema;

/// One served group/version/resource.
#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether `status` is a subresource (written only through `/status`).
    pub has_status: bool,
    /// Further subresources such as `log` or `token`, served by dedicated handlers.
    pub subresources: Vec<&'static str>,
    /// `additionalPrinterColumns` of a CRD version: `(name, type, jsonPath)`.
    pub printer_columns: Vec<PrinterColumn>,
    /// The CRD version's `openAPIV3Schema`, compiled for pruning, defaulting and validation. Shared,
    /// since a type is cloned on every request and Config Connector schemas are large.
    pub schema: Option<Arc<Schema>>,
    /// Only `create` is served (the review APIs: answered, never stored).
    pub create_only: bool,
    /// Served for a CRD rather than built in.
    pub custom: bool,
    /// Whether `metadata.generation` is kept: for every custom resource, and for the built-in
    /// kinds whose spec a controller acts on; ConfigMaps, Secrets, Services and the like have none.
    pub has_generation: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub column_type: String,
    pub json_path: String,
}

impl ResourceType {
    /// The key objects are stored under: one storage per group and resource, whatever the version.
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            kind: kind.to_owned(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            has_status: false,
            subresources: Vec::new(),
            printer_columns: Vec::new(),
            schema: None,
            custom: false,
            has_generation: matches!(
                plural,
                "deployments"
                    | "replicasets"
                    | "statefulsets"
                    | "daemonsets"
                    | "jobs"
                    | "cronjobs"
                    | "replicationcontrollers"
                    | "poddisruptionbudgets"
                    | "networkpolicies"
                    | "ingresses"
                    | "horizontalpodautoscalers"
                    | "customresourcedefinitions"
            ),
            create_only: false,
        }
    }

    fn create_only(mut self) -> Self {
        self.create_only = true;
        self
    }

    fn with_status(mut self) -> Self {
        self.has_status = true;
        self
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|name| (*name).to_owned()).collect();
        self
    }

    /// In the `all` category, which `kubectl get all` lists.
    fn in_all(mut self) -> Self {
        self.categories = vec!["all".to_owned()];
        self
    }

    fn sub(mut self, subresources: &[&'static str]) -> Self {
        self.subresources = subresources.to_vec();
        self
    }
}

/// The registry of served resources.
pub struct Resources {
    types: RwLock<Vec<ResourceType>>,
}

impl Resources {
    pub fn with_builtins() -> Self {
        use ResourceType as R;
        let types = vec![
            R::builtin("", "v1", "namespaces", "Namespace", false)
                .with_status()
                .short(&["ns"])
                .sub(&["finalize"]),
            R::builtin("", "v1", "nodes", "Node", false)
                .with_status()
                .short(&["no"]),
            R::builtin("", "v1", "pods", "Pod", true)
                .with_status()
                .short(&["po"])
                .in_all()
                .sub(&["log", "eviction"]),
            R::builtin("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
            R::builtin("", "v1", "secrets", "Secret", true),
            R::builtin("", "v1", "serviceaccounts", "ServiceAccount", true)
                .short(&["sa"])
                .sub(&["token"]),
            R::builtin("", "v1", "services", "Service", true)
                .with_status()
                .short(&["svc"])
                .in_all()
                .sub(&["proxy"]),
            R::builtin("", "v1", "endpoints", "Endpoints", true).short(&["ep"]),
            R::builtin("", "v1", "events", "Event", true).short(&["ev"]),
            R::builtin(
                "",
                "v1",
                "persistentvolumeclaims",
                "PersistentVolumeClaim",
                true,
            )
            .with_status()
            .short(&["pvc"]),
            R::builtin("apps", "v1", "deployments", "Deployment", true)
                .with_status()
                .short(&["deploy"])
                .in_all()
                .sub(&["scale"]),
            R::builtin("apps", "v1", "replicasets", "ReplicaSet", true)
                .with_status()
                .short(&["rs"])
                .in_all()
                .sub(&["scale"]),
            R::builtin("apps", "v1", "statefulsets", "StatefulSet", true)
                .with_status()
                .short(&["sts"])
                .in_all()
                .sub(&["scale"]),
            R::builtin("apps", "v1", "daemonsets", "DaemonSet", true)
                .with_status()
                .short(&["ds"])
                .in_all(),
            R::builtin("batch", "v1", "jobs", "Job", true)
                .with_status()
                .in_all(),
            R::builtin("batch", "v1", "cronjobs", "CronJob", true)
                .with_status()
                .short(&["cj"])
                .in_all(),
            R::builtin("coordination.k8s.io", "v1", "leases", "Lease", true),
            R::builtin("events.k8s.io", "v1", "events", "Event", true).short(&["ev"]),
            R::builtin(
                "discovery.k8s.io",
                "v1",
                "endpointslices",
                "EndpointSlice",
                true,
            ),
            R::builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
            R::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
            ),
            R::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                false,
            ),
            R::builtin(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
            ),
            R::builtin(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
            )
            .short(&["netpol"]),
            R::builtin(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
            )
            .with_status()
            .short(&["pdb"]),
            R::builtin(
                "scheduling.k8s.io",
                "v1",
                "priorityclasses",
                "PriorityClass",
                false,
            )
            .short(&["pc"]),
            R::builtin(
                "authentication.k8s.io",
                "v1",
                "tokenreviews",
                "TokenReview",
                false,
            )
            .create_only(),
            R::builtin(
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
                false,
            )
            .create_only(),
            R::builtin(
                "authorization.k8s.io",
                "v1",
                "subjectaccessreviews",
                "SubjectAccessReview",
                false,
            )
            .create_only(),
            R::builtin(
                "authorization.k8s.io",
                "v1",
                "localsubjectaccessreviews",
                "LocalSubjectAccessReview",
                true,
            )
            .create_only(),
            R::builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
            )
            .with_status()
            .short(&["crd", "crds"]),
        ];
        Resources {
            types: RwLock::new(types),
        }
    }

    /// The type served at `group/version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .read()
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// The type of an object from its `apiVersion` and `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        let (group, version) = split_api_version(api_version);
        self.types
            .read()
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    pub fn all(&self) -> Vec<ResourceType> {
        self.types.read().clone()
    }

    /// Serves the versions of a CRD (replacing what an earlier version of it served). Returns the
    /// storage key of the CRD's resource.
    pub fn register_crd(&self, crd: &Value) -> Result<String, String> {
        let served = crd_types(crd)?;
        let key = served
            .first()
            .map(ResourceType::storage_key)
            .ok_or("spec.versions: Required value: must have at least one served version")?;
        let mut types = self.types.write();
        types.retain(|t| t.storage_key() != key);
        types.extend(served);
        Ok(key)
    }

    /// Stops serving a CRD's resource.
    pub fn unregister(&self, storage_key: &str) {
        self.types
            .write()
            .retain(|t| t.storage_key() != storage_key);
    }
}

pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// The served resource types a CRD declares.
fn crd_types(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().ok_or("spec.group: Required value")?;
    let names = &spec["names"];
    let plural = names["plural"]
        .as_str()
        .ok_or("spec.names.plural: Required value")?;
    let kind = names["kind"]
        .as_str()
        .ok_or("spec.names.kind: Required value")?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let versions = spec["versions"]
        .as_array()
        .ok_or("spec.versions: Required value")?;
    Ok(versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            let printer_columns = v["additionalPrinterColumns"]
                .as_array()
                .map(|cols| {
                    cols.iter()
                        .filter_map(|c| {
                            Some(PrinterColumn {
                                name: c["name"].as_str()?.to_owned(),
                                column_type: c["type"].as_str().unwrap_or("string").to_owned(),
                                json_path: c["jsonPath"].as_str()?.to_owned(),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(ResourceType {
                group: group.to_owned(),
                version: version.to_owned(),
                plural: plural.to_owned(),
                singular: names["singular"]
                    .as_str()
                    .map_or_else(|| kind.to_lowercase(), str::to_owned),
                kind: kind.to_owned(),
                namespaced,
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                has_status: v["subresources"]["status"].is_object(),
                subresources: Vec::new(),
                printer_columns,
                create_only: false,
                schema: Some(&v["schema"]["openAPIV3Schema"])
                    .filter(|s| s.is_object())
                    .map(|s| Arc::new(Schema::compile(s))),
                custom: true,
                has_generation: true,
            })
        })
        .collect())
}
