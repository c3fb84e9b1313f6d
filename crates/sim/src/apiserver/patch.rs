//! JSON merge patch, JSON patch and strategic merge patch.

use serde_json::{Map, Value};

use super::errors::ApiError;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// The patch media types of built-in kinds. Custom resources take all but the strategic merge
/// patch, which needs the Go types' patch strategies.
const BUILTIN_PATCH_TYPES: [&str; 4] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
const CUSTOM_PATCH_TYPES: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

impl PatchKind {
    /// The patch a Content-Type names, on a built-in kind or a custom resource (`custom`).
    pub fn from_content_type(content_type: &str, custom: bool) -> Result<Self, ApiError> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" if !custom => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            _ if custom => Err(ApiError::unsupported_media_type(&CUSTOM_PATCH_TYPES)),
            _ => Err(ApiError::unsupported_media_type(&BUILTIN_PATCH_TYPES)),
        }
    }
}

/// Applies a JSON, merge or strategic merge patch to `target`.
pub fn apply_patch(kind: PatchKind, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut result = target.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            for op in ops.0 {
                // As in Kubernetes' JSON patch, `test` of an absent field against `null` passes
                // (kube-rs' finalizer helper adds the first finalizer so).
                if let json_patch::PatchOperation::Test(test) = &op
                    && test.value.is_null()
                    && result.pointer(test.path.as_str()).is_none()
                    && test
                        .path
                        .as_str()
                        .rsplit_once('/')
                        .is_some_and(|(parent, _)| result.pointer(parent).is_some())
                {
                    continue;
                }
                json_patch::patch(&mut result, &[op]).map_err(|e| {
                    ApiError::invalid(
                        "",
                        "",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
            }
        }
        PatchKind::Merge => json_patch::merge(&mut result, patch),
        PatchKind::Strategic => strategic_merge(&mut result, patch, ""),
        PatchKind::Apply => {
            return Err(ApiError::internal(
                "apply patches go through server-side apply",
            ));
        }
    }
    Ok(result)
}

/// The merge key of the lists that built-in kinds merge by key rather than replace.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "hostAliases" => Some("name"),
        "volumeMounts" | "volumeDevices" => Some("mountPath"),
        "ports" => Some("containerPort"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Lists of strings merged as sets.
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

fn strategic_merge(target: &mut Value, patch: &Value, _field: &str) {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch_map.clone();
        replacement.remove("$patch");
        *target = Value::Object(replacement);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(target_map) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch_map {
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) =
                (target_map.get_mut(list), value.as_array())
            {
                items.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue; // $setElementOrder, $retainKeys: ordering and pruning hints
        }
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Array(items) => {
                let merged = match (merge_key(key), target_map.get(key)) {
                    (Some(merge_key), Some(Value::Array(existing))) => {
                        merge_list(existing, items, merge_key)
                    }
                    _ if is_set_list(key) => {
                        let mut set = target_map
                            .get(key)
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        for item in items {
                            if !set.contains(item) {
                                set.push(item.clone());
                            }
                        }
                        set
                    }
                    _ => items.clone(),
                };
                target_map.insert(key.clone(), Value::Array(merged));
            }
            Value::Object(_) => {
                let entry = target_map.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(entry, value, key);
            }
            scalar => {
                target_map.insert(key.clone(), scalar.clone());
            }
        }
    }
}

fn merge_list(existing: &[Value], patch: &[Value], key: &str) -> Vec<Value> {
    let mut merged = existing.to_vec();
    for item in patch {
        let id = item.get(key);
        let position = merged.iter().position(|e| id.is_some() && e.get(key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                merged.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut merged[i], item, ""),
            (None, false) => merged.push(item.clone()),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name_and_finalizers_as_set() {
        let target = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "c", "image": "x"}, {"name": "d", "image": "y"}]}});
        let patch = json!({
            "metadata": {"finalizers": ["b"], "labels": {"l": "1"}},
            "spec": {"$setElementOrder/containers": [{"name": "c"}], "containers": [{"name": "c", "image": "z"}, {"name": "d", "$patch": "delete"}]}
        });
        let result = apply_patch(PatchKind::Strategic, &target, &patch).expect("patch");
        assert_eq!(
            result["spec"]["containers"],
            json!([{"name": "c", "image": "z"}])
        );
        assert_eq!(result["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(result["metadata"]["labels"], json!({"l": "1"}));
    }

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let target = json!({"spec": {"list": [1, 2], "gone": true}});
        let result = apply_patch(
            PatchKind::Merge,
            &target,
            &json!({"spec": {"list": [3], "gone": null}}),
        )
        .expect("patch");
        assert_eq!(result, json!({"spec": {"list": [3]}}));
    }

    #[test]
    fn json_patch_test_op_failure_is_invalid() {
        let target = json!({"spec": {"a": 1}});
        let err = apply_patch(
            PatchKind::Json,
            &target,
            &json!([{"op": "test", "path": "/spec/a", "value": 2}]),
        )
        .expect_err("test fails");
        assert_eq!(err.code, 422);
    }
}
