//! `meta.k8s.io/v1` Tables, which `kubectl get` asks for: name, the CRD's printer columns, age.

use std::sync::Arc;

use serde_json::{Value, json};

use super::resources::ResourceType;

pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

fn columns(rt: &ResourceType) -> Vec<Value> {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in &rt.printer_columns {
        if c.name != "Age" {
            columns.push(json!({"name": c.name, "type": c.column_type, "format": "", "description": "", "priority": 0}));
        }
    }
    if rt.kind == "Pod" {
        for name in ["Ready", "Status", "Restarts"] {
            columns.push(json!({"name": name, "type": "string", "format": "", "description": "", "priority": 0}));
        }
    }
    columns.push(
        json!({"name": "Age", "type": "string", "format": "", "description": "", "priority": 0}),
    );
    columns
}

fn row(rt: &ResourceType, object: &Value) -> Value {
    let mut cells = vec![object["metadata"]["name"].clone()];
    for c in rt.printer_columns.iter().filter(|c| c.name != "Age") {
        cells.push(
            json_path(object, &c.json_path)
                .cloned()
                .unwrap_or(Value::Null),
        );
    }
    if rt.kind == "Pod" {
        let statuses = object["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let total = object["spec"]["containers"].as_array().map_or(0, Vec::len);
        let ready = statuses
            .iter()
            .filter(|s| s["ready"].as_bool() == Some(true))
            .count();
        let restarts: i64 = statuses
            .iter()
            .filter_map(|s| s["restartCount"].as_i64())
            .sum();
        let reason = statuses
            .iter()
            .find_map(|s| {
                s["state"]["waiting"]["reason"]
                    .as_str()
                    .or(s["state"]["terminated"]["reason"].as_str())
            })
            .or(object["status"]["phase"].as_str())
            .unwrap_or("Pending");
        cells.extend([
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts),
        ]);
    }
    cells.push(json!(age(object["metadata"]["creationTimestamp"].as_str())));
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object["metadata"],
        }
    })
}

pub fn render(rt: &ResourceType, objects: &[Arc<Value>], metadata: Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns(rt),
        "rows": objects.iter().map(|o| row(rt, o)).collect::<Vec<_>>(),
    })
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, and `.a[?(@.k=="v")].b`.
fn json_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = object;
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let (field, tail) = rest.split_at(end);
        if !field.is_empty() {
            current = current.get(field)?;
        }
        rest = tail;
        if let Some(filter) = rest.strip_prefix("[?(@.") {
            let close = filter.find(")]")?;
            let (key, value) = filter[..close].split_once("==")?;
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            current = current
                .as_array()?
                .iter()
                .find(|item| item[key].as_str() == Some(value))?;
            rest = &filter[close + 2..];
        } else if let Some(index) = rest.strip_prefix('[') {
            let close = index.find(']')?;
            current = current.get(index[..close].parse::<usize>().ok()?)?;
            rest = &index[close + 1..];
        }
        rest = rest.trim_start_matches('.');
    }
    Some(current)
}

/// `kubectl`'s short age: 42s, 5m, 3h, 2d.
fn age(created: Option<&str>) -> String {
    let Some(created) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "<unknown>".into();
    };
    let seconds = (chrono::Utc::now() - created.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_subset() {
        let object = json!({"status": {"phase": "Ready", "conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(json_path(&object, ".status.phase"), Some(&json!("Ready")));
        assert_eq!(
            json_path(&object, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(
            json_path(&object, ".status.conditions[0].type"),
            Some(&json!("A"))
        );
        assert_eq!(json_path(&object, ".spec.missing"), None);
    }
}
