//! Pruning and defaulting: fields the schema does not declare are dropped (unless
//! `x-kubernetes-preserve-unknown-fields` keeps them), and missing or null fields with a `default`
//! are filled in.

use serde_json::{Map, Value};

use super::{Additional, Schema};

/// Prunes and defaults a whole object; its `apiVersion`, `kind` and `metadata` are the server's.
pub fn prune_and_default(object: &mut Value, schema: &Schema) {
    if let Some(map) = object.as_object_mut() {
        fields(map, schema, true);
    }
}

fn walk(value: &mut Value, schema: &Schema) {
    match value {
        Value::Object(map) => fields(map, schema, schema.embedded_resource),
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for item in items {
                    walk(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// An object's fields: declared ones walked, undeclared ones pruned or kept, defaults filled in.
/// `keep_identity` keeps `apiVersion`, `kind` and `metadata` (the root, embedded resources).
fn fields(map: &mut Map<String, Value>, schema: &Schema, keep_identity: bool) {
    let is_identity =
        |key: &str| keep_identity && matches!(key, "apiVersion" | "kind" | "metadata");
    match &schema.additional {
        Additional::Schema(values) if schema.properties.is_empty() => {
            for value in map.values_mut() {
                walk(value, values);
            }
        }
        Additional::Any => {}
        _ => {
            if !schema.preserve_unknown {
                map.retain(|key, _| schema.properties.contains_key(key) || is_identity(key));
            }
            for (key, child) in &schema.properties {
                if let Some(value) = map.get_mut(key).filter(|_| !is_identity(key)) {
                    walk(value, child);
                }
            }
        }
    }
    for (key, child) in &schema.properties {
        let Some(default) = child.default.as_ref().filter(|_| !is_identity(key)) else {
            continue;
        };
        if map.get(key).is_none_or(|v| v.is_null() && !child.nullable) {
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
        let schema = Schema::compile(&json!({"type": "object", "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": {
                "nodes": {"type": "integer", "default": 2},
                "zone": {"type": "string", "default": "a"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "closed": {"type": "object"},
                "list": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}}
            }},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}));
        let mut object = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"typo": 1, "zone": null, "labels": {"a": "b"}, "free": {"anything": [1]},
                     "closed": {"gone": true}, "list": [{"n": "1", "m": 2}]},
            "extra": true});
        prune_and_default(&mut object, &schema);
        assert_eq!(
            object,
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}},
            "spec": {"nodes": 2, "zone": "a", "labels": {"a": "b"}, "free": {"anything": [1]},
                     "closed": {}, "list": [{"n": "1"}]}})
        );
    }
}
