//! Structural-schema defaulting and pruning for custom resources, as the API server does them on
//! every write: unknown fields are dropped, missing fields with a `default` are filled in.

use serde_json::{Map, Value};

/// Applies a CRD version's `openAPIV3Schema` to a whole object.
pub fn default_and_prune(object: &mut Value, schema: &Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let properties = &schema["properties"];
    let preserve = schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true);
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match properties.get(&key) {
            Some(child) => {
                if let Some(value) = map.get_mut(&key) {
                    walk(value, child);
                }
            }
            None if !preserve => {
                map.remove(&key);
            }
            None => {}
        }
    }
    fill_defaults(map, schema);
}

fn walk(value: &mut Value, schema: &Value) {
    if schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
        && schema["properties"].is_null()
    {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema["properties"].as_object() {
                map.retain(|k, _| {
                    properties.contains_key(k)
                        || schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
                });
                for (key, child) in properties {
                    if let Some(v) = map.get_mut(key) {
                        walk(v, child);
                    }
                }
                fill_defaults(map, schema);
            } else if let Some(items) = schema.get("additionalProperties").filter(|s| s.is_object())
            {
                for v in map.values_mut() {
                    walk(v, items);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    walk(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn fill_defaults(map: &mut Map<String, Value>, schema: &Value) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (key, child) in properties {
        if !map.contains_key(key)
            && let Some(default) = child.get("default")
        {
            let mut value = default.clone();
            walk(&mut value, child);
            map.insert(key.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_unknown_and_fills_defaults() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "nodes": {"type": "integer", "default": 2},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }});
        let mut object = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"typo": 1, "labels": {"a": "b"}, "free": {"anything": [1]}}, "extra": true});
        default_and_prune(&mut object, &schema);
        assert_eq!(
            object,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"nodes": 2, "labels": {"a": "b"}, "free": {"anything": [1]}}})
        );
    }
}
