//! The default roles and bindings every cluster starts with (a subset of the real bootstrap
//! policy): `cluster-admin` for `system:masters`; discovery, health and version for every
//! authenticated user, so that kubectl works with any ServiceAccount token; the aggregated
//! `view`, `edit` and `admin` roles to bind in a namespace.

use serde_json::{Value, json};

const READ: [&str; 3] = ["get", "list", "watch"];
const WRITE: [&str; 5] = ["create", "delete", "deletecollection", "patch", "update"];

/// The default ClusterRoles and ClusterRoleBindings, as objects to create.
pub fn objects() -> Vec<Value> {
    let discovery = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ];
    let public_info = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    // What `view` may read and `edit` may also write, per API group.
    let workload_resources = json!([
        {"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "pods", "pods/log", "pods/status", "services", "services/status", "serviceaccounts", "events"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale", "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status", "daemonsets", "daemonsets/status"]},
        {"apiGroups": ["batch"], "resources": ["jobs", "jobs/status", "cronjobs", "cronjobs/status"]},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"]},
    ]);
    let with_verbs = |rules: &Value, verbs: &[&str]| -> Vec<Value> {
        rules
            .as_array()
            .into_iter()
            .flatten()
            .map(|rule| {
                let mut rule = rule.clone();
                rule["verbs"] = json!(verbs);
                rule
            })
            .collect()
    };
    let mut view = with_verbs(&workload_resources, &READ);
    view.push(
        json!({"apiGroups": [""], "resources": ["namespaces", "namespaces/status"], "verbs": READ}),
    );
    let mut edit = with_verbs(&workload_resources, &WRITE);
    edit.push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create", "delete", "deletecollection", "patch", "update"]}));
    edit.push(
        json!({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}),
    );
    let admin = vec![
        json!({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["get", "list", "watch", "create", "delete", "deletecollection", "patch", "update"]}),
        json!({"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]}),
    ];
    let aggregate_label = |to: &str| format!("rbac.authorization.k8s.io/aggregate-to-{to}");
    vec![
        cluster_role(
            "cluster-admin",
            json!([
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["*"], "verbs": ["*"]},
            ]),
            &[],
        ),
        cluster_role(
            "system:discovery",
            json!([{"nonResourceURLs": discovery, "verbs": ["get"]}]),
            &[],
        ),
        cluster_role(
            "system:public-info-viewer",
            json!([{"nonResourceURLs": public_info, "verbs": ["get"]}]),
            &[],
        ),
        cluster_role(
            "system:basic-user",
            json!([
                {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ]),
            &[],
        ),
        aggregated("view", &aggregate_label("view"), &[aggregate_label("edit")]),
        aggregated(
            "edit",
            &aggregate_label("edit"),
            &[aggregate_label("admin")],
        ),
        aggregated("admin", &aggregate_label("admin"), &[]),
        cluster_role(
            "system:aggregate-to-view",
            json!(view),
            &[aggregate_label("view")],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            json!(edit),
            &[aggregate_label("edit")],
        ),
        cluster_role(
            "system:aggregate-to-admin",
            json!(admin),
            &[aggregate_label("admin")],
        ),
        binding("cluster-admin", &["system:masters"]),
        binding("system:discovery", &["system:authenticated"]),
        binding(
            "system:public-info-viewer",
            &["system:authenticated", "system:unauthenticated"],
        ),
        binding("system:basic-user", &["system:authenticated"]),
    ]
}

/// The labels and annotation of the real bootstrap policy's objects.
fn bootstrap_metadata(name: &str) -> Value {
    json!({
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

fn cluster_role(name: &str, rules: Value, aggregate_to: &[String]) -> Value {
    let mut metadata = bootstrap_metadata(name);
    for label in aggregate_to {
        metadata["labels"][label] = json!("true");
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata,
        "rules": rules,
    })
}

/// A ClusterRole made of every ClusterRole labelled `selects`.
fn aggregated(name: &str, selects: &str, aggregate_to: &[String]) -> Value {
    let mut role = cluster_role(name, json!([]), aggregate_to);
    role["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]});
    role
}

/// A ClusterRoleBinding of the ClusterRole `name`, under the same name, to `groups`.
fn binding(name: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": bootstrap_metadata(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    })
}
