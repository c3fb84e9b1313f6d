//! Discovery documents (`/api`, `/apis`, group/version resource lists, `/version`) in the legacy
//! JSON form, which both old and current kubectl and kube-rs accept.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::resources::ResourceType;

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-testcluster-sim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// Versions served per named group, in the order they were registered.
fn groups(types: &[ResourceType]) -> BTreeMap<&str, Vec<&str>> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in types.iter().filter(|t| !t.group.is_empty()) {
        let versions = groups.entry(&t.group).or_default();
        if !versions.contains(&t.version.as_str()) {
            versions.push(&t.version);
        }
    }
    groups
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": list,
        "preferredVersion": list.first().cloned().unwrap_or(Value::Null),
    })
}

pub fn group_list(types: &[ResourceType]) -> Value {
    let groups: Vec<Value> = groups(types)
        .iter()
        .map(|(name, versions)| group_json(name, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(types: &[ResourceType], name: &str) -> Option<Value> {
    let groups = groups(types);
    let versions = groups.get(name)?;
    let mut doc = group_json(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

pub fn resource_list(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for t in served {
        resources.push(json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": if t.create_only { &["create"][..] } else { &VERBS[..] },
            "shortNames": t.short_names,
            "categories": t.categories,
        }));
        let subresources = t
            .has_status
            .then_some("status")
            .into_iter()
            .chain(t.subresources.iter().copied());
        for sub in subresources {
            // Subresources whose kind lives in another group say so (kubectl scale looks it up).
            let (group, version) = match sub {
                "scale" => ("autoscaling", "v1"),
                "eviction" => ("policy", "v1"),
                _ => ("", ""),
            };
            let (kind, verbs): (&str, &[&str]) = match sub {
                "status" => (&t.kind, &["get", "patch", "update"]),
                "scale" => ("Scale", &["get", "patch", "update"]),
                "eviction" => ("Eviction", &["create"]),
                "log" => ("Pod", &["get"]),
                "token" => ("TokenRequest", &["create"]),
                "proxy" => (
                    "ServiceProxyOptions",
                    &["create", "delete", "get", "patch", "update"],
                ),
                _ => (&t.kind, &["update"]),
            };
            let mut resource = json!({
                "name": format!("{}/{sub}", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if !group.is_empty() {
                resource["group"] = json!(group);
                resource["version"] = json!(version);
            }
            resources.push(resource);
        }
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}
