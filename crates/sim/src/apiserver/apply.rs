//! Server-side apply and field ownership (`metadata.managedFields`).
//!
//! Each manager owns a set of leaf fields. Maps are merged key by key; lists are atomic (owned and
//! replaced whole), which is how Kubernetes treats lists without a merge key. Applying a field that
//! another manager owns with a different value is a conflict unless `force` is set; fields a manager
//! applied before and omits now are removed unless someone else owns them.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::errors::ApiError;

type Path = Vec<String>;

/// Which part of the object a write may touch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scope {
    /// Everything but `status`, for a type with a status subresource.
    MainWithoutStatus,
    /// Everything, for a type without a status subresource.
    Main,
    /// Only `status`, through the status subresource.
    Status,
}

impl Scope {
    fn subresource(self) -> Option<&'static str> {
        (self == Scope::Status).then_some("status")
    }

    fn admits(self, path: &[String]) -> bool {
        let first = path.first().map(String::as_str);
        let identity = matches!(first, Some("apiVersion" | "kind"))
            || (first == Some("metadata")
                && matches!(
                    path.get(1).map(String::as_str),
                    Some(
                        "name"
                            | "namespace"
                            | "uid"
                            | "resourceVersion"
                            | "generation"
                            | "creationTimestamp"
                            | "managedFields"
                            | "deletionTimestamp"
                            | "deletionGracePeriodSeconds"
                            | "selfLink"
                    )
                ));
        !identity
            && match self {
                Scope::Main => true,
                Scope::MainWithoutStatus => first != Some("status"),
                Scope::Status => first == Some("status"),
            }
    }
}

struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: BTreeSet<Path>,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, scope: Scope) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == scope.subresource()
    }
}

/// Server-side apply of `config` by `manager` onto `live`.
pub fn apply(
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    scope: Scope,
    now: &str,
) -> Result<Value, ApiError> {
    let mut entries = read_entries(live);
    let applied = leaf_paths(config, scope);
    let mut conflicts = Vec::new();
    for entry in entries
        .iter_mut()
        .filter(|e| !e.is(manager, "Apply", scope))
    {
        let clashing: Vec<Path> = entry
            .fields
            .iter()
            .filter(|owned| {
                applied
                    .iter()
                    .any(|p| overlaps(p, owned) && value_at(live, p) != value_at(config, p))
            })
            .cloned()
            .collect();
        if force {
            for path in &clashing {
                entry.fields.remove(path);
            }
        } else {
            conflicts.extend(
                clashing
                    .into_iter()
                    .map(|p| (entry.manager.clone(), entry.api_version.clone(), p)),
            );
        }
    }
    if !conflicts.is_empty() {
        let list: Vec<String> = conflicts
            .iter()
            .map(|(m, v, p)| format!("conflict with \"{m}\" using {v}: .{}", p.join(".")))
            .collect();
        let noun = if list.len() == 1 {
            "conflict"
        } else {
            "conflicts"
        };
        let mut err = ApiError::conflict("", "", "", "");
        err.message = format!(
            "Apply failed with {} {noun}: {}",
            list.len(),
            list.join("\n")
        );
        err.details = None;
        return Err(err);
    }

    let mut result = live.clone();
    let previous = entries
        .iter()
        .find(|e| e.is(manager, "Apply", scope))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for dropped in previous.difference(&applied) {
        let owned_elsewhere = entries
            .iter()
            .filter(|e| !e.is(manager, "Apply", scope))
            .any(|e| e.fields.iter().any(|p| overlaps(p, dropped)));
        if !owned_elsewhere {
            remove_at(&mut result, dropped);
        }
    }
    merge_scoped(&mut result, config, scope, &mut Vec::new());
    entries.retain(|e| !e.is(manager, "Apply", scope));
    entries.push(Entry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        api_version: config["apiVersion"].as_str().unwrap_or_default().to_owned(),
        time: now.to_owned(),
        subresource: scope.subresource().map(str::to_owned),
        fields: applied,
    });
    write_entries(&mut result, entries);
    Ok(result)
}

/// Records an ordinary write (create, update, patch): `manager` takes over the fields it changed.
pub fn record_update(old: &Value, new: &mut Value, manager: &str, scope: Scope, now: &str) {
    let mut changed: BTreeSet<Path> = leaf_paths(new, scope)
        .into_iter()
        .filter(|p| value_at(old, p) != value_at(new, p))
        .collect();
    let removed: Vec<Path> = leaf_paths(old, scope)
        .into_iter()
        .filter(|p| value_at(new, p).is_none())
        .collect();
    if changed.is_empty() && removed.is_empty() {
        // Keep the ownership as it was (the body may carry stale managedFields).
        new["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
        return;
    }
    let mut entries = read_entries(old);
    for entry in entries.iter_mut() {
        entry
            .fields
            .retain(|owned| !changed.iter().chain(&removed).any(|p| overlaps(p, owned)));
    }
    if let Some(mine) = entries.iter_mut().find(|e| e.is(manager, "Update", scope)) {
        mine.fields.append(&mut changed);
        mine.time = now.to_owned();
    } else if !changed.is_empty() {
        entries.push(Entry {
            manager: manager.to_owned(),
            operation: "Update".into(),
            api_version: new["apiVersion"].as_str().unwrap_or_default().to_owned(),
            time: now.to_owned(),
            subresource: scope.subresource().map(str::to_owned),
            fields: changed,
        });
    }
    write_entries(new, entries);
}

/// Two paths overlap when one is a prefix of the other.
fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn leaf_paths(value: &Value, scope: Scope) -> BTreeSet<Path> {
    fn walk(value: &Value, path: &mut Path, out: &mut BTreeSet<Path>, scope: Scope) {
        match value.as_object() {
            Some(map) if !map.is_empty() => {
                for (key, child) in map {
                    path.push(key.clone());
                    if scope.admits(path) || (path.len() == 1 && key == "metadata") {
                        walk(child, path, out, scope);
                    }
                    path.pop();
                }
            }
            _ if !path.is_empty() && scope.admits(path) => {
                out.insert(path.clone());
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out, scope);
    out
}

fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn remove_at(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let parent = parents.iter().try_fold(value, |v, key| v.get_mut(key));
    if let Some(Value::Object(map)) = parent {
        map.remove(last);
    }
}

fn merge_scoped(target: &mut Value, config: &Value, scope: Scope, path: &mut Path) {
    let Some(config_map) = config.as_object() else {
        *target = config.clone();
        return;
    };
    if !target.is_object() || (config_map.is_empty() && !path.is_empty()) {
        *target = Value::Object(Map::new());
    }
    for (key, value) in config_map {
        path.push(key.clone());
        let inside = path.len() == 1 && key == "metadata";
        if (scope.admits(path) || inside)
            && let Some(map) = target.as_object_mut()
        {
            let slot = map.entry(key.clone()).or_insert(Value::Null);
            merge_scoped(slot, value, scope, path);
        }
        path.pop();
    }
}

fn read_entries(object: &Value) -> Vec<Entry> {
    let Some(list) = object["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let mut fields = BTreeSet::new();
            parse_fields(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            Entry {
                manager: e["manager"].as_str().unwrap_or_default().to_owned(),
                operation: e["operation"].as_str().unwrap_or_default().to_owned(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
                time: e["time"].as_str().unwrap_or_default().to_owned(),
                subresource: e["subresource"].as_str().map(str::to_owned),
                fields,
            }
        })
        .collect()
}

fn parse_fields(node: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(map) = node.as_object() else { return };
    if map.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (key, child) in map {
        if let Some(field) = key.strip_prefix("f:") {
            path.push(field.to_owned());
            parse_fields(child, path, out);
            path.pop();
        }
    }
}

fn write_entries(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut tree = Value::Object(Map::new());
            for path in &e.fields {
                let mut node = &mut tree;
                for key in path {
                    node = &mut node[format!("f:{key}")];
                    if node.is_null() {
                        *node = Value::Object(Map::new());
                    }
                }
            }
            let mut entry = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": tree,
            });
            if let Some(sub) = e.subresource {
                entry["subresource"] = Value::String(sub);
            }
            entry
        })
        .collect();
    if let Some(meta) = object["metadata"].as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": data})
    }

    /// The live object before the first apply: no fields, no managers.
    fn nothing() -> Value {
        json!({"metadata": {}})
    }

    /// `manager` applies a ConfigMap with `data` onto `live`, over the whole object.
    fn apply_data(
        live: &Value,
        data: Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        apply(live, &cm(data), manager, force, Scope::Main, NOW)
    }

    #[test]
    fn apply_removes_fields_the_manager_dropped_and_keeps_others() {
        let live =
            apply_data(&nothing(), json!({"a": "1", "b": "2"}), "one", false).expect("first");
        let live = apply_data(&live, json!({"c": "3"}), "two", false).expect("second");
        let live = apply_data(&live, json!({"a": "1"}), "one", false).expect("third");
        assert_eq!(live["data"], json!({"a": "1", "c": "3"}));
        let managers: Vec<&str> = live["metadata"]["managedFields"]
            .as_array()
            .expect("managed")
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, ["two", "one"]);
    }

    #[test]
    fn conflicting_apply_needs_force() {
        let live = apply_data(&nothing(), json!({"a": "1"}), "one", false).expect("first");
        let err = apply_data(&live, json!({"a": "2"}), "two", false).expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"one\" using v1: .data.a"
        );
        let forced = apply_data(&live, json!({"a": "2"}), "two", true).expect("forced");
        assert_eq!(forced["data"]["a"], "2");
        // The same value is shared ownership, not a conflict.
        apply_data(&live, json!({"a": "1"}), "two", false).expect("same value");
    }

    #[test]
    fn update_takes_ownership_of_changed_fields() {
        let live = apply_data(&nothing(), json!({"a": "1"}), "one", false).expect("apply");
        let mut updated = live.clone();
        updated["data"]["a"] = json!("9");
        record_update(&live, &mut updated, "editor", Scope::Main, NOW);
        let err = apply_data(&updated, json!({"a": "1"}), "one", false).expect_err("conflict");
        assert!(
            err.message.contains("conflict with \"editor\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn status_scope_touches_only_status() {
        let live =
            json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "spec": {"a": 1}});
        let config = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "spec": {"a": 2}, "status": {"ok": true}});
        let result = apply(&live, &config, "ctl", false, Scope::Status, NOW).expect("apply");
        assert_eq!(result["spec"]["a"], 1);
        assert_eq!(result["status"]["ok"], true);
    }
}
