//! `meta.k8s.io/v1` Tables, which `kubectl get` asks for: the real server's columns for the common
//! built-in kinds, and name, printer columns and age for custom resources.

use std::sync::Arc;

use serde_json::{Value, json};

use super::resources::ResourceType;

pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

/// How a column's cell is computed from an object.
type Cell = Box<dyn Fn(&Value) -> Value>;

/// One column of a table: its header, its type, and its cell.
struct Column {
    name: String,
    column_type: &'static str,
    cell: Cell,
}

impl Column {
    fn new(
        name: &str,
        column_type: &'static str,
        cell: impl Fn(&Value) -> Value + 'static,
    ) -> Self {
        Column {
            name: name.to_owned(),
            column_type,
            cell: Box::new(cell),
        }
    }
}

/// The columns `kubectl get` prints for a kind: the real server's for the common built-ins, else
/// the name, a CRD's printer columns (dates printed as ages, as the real server does) and the age.
fn columns(rt: &ResourceType) -> Vec<Column> {
    let name = || Column::new("Name", "string", |o| o["metadata"]["name"].clone());
    let age_column = || {
        Column::new("Age", "string", |o| {
            json!(age(o["metadata"]["creationTimestamp"].as_str()))
        })
    };
    let int = |path: &'static [&'static str]| {
        move |o: &Value| json!(path.iter().fold(o, |v, key| &v[*key]).as_i64().unwrap_or(0))
    };
    let text = |path: &'static [&'static str]| {
        move |o: &Value| path.iter().fold(o, |v, key| &v[*key]).clone()
    };
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => vec![
            name(),
            Column::new("Ready", "string", pod_ready),
            Column::new("Status", "string", pod_status),
            Column::new("Restarts", "integer", pod_restarts),
            age_column(),
        ],
        ("", "namespaces") => vec![
            name(),
            Column::new("Status", "string", text(&["status", "phase"])),
            age_column(),
        ],
        ("", "nodes") => vec![
            name(),
            Column::new("Status", "string", node_status),
            Column::new("Roles", "string", node_roles),
            age_column(),
            Column::new(
                "Version",
                "string",
                text(&["status", "nodeInfo", "kubeletVersion"]),
            ),
        ],
        ("", "configmaps") => vec![
            name(),
            Column::new("Data", "integer", |o| {
                json!(entries(&o["data"]) + entries(&o["binaryData"]))
            }),
            age_column(),
        ],
        ("", "secrets") => vec![
            name(),
            Column::new("Type", "string", text(&["type"])),
            Column::new("Data", "integer", |o| json!(entries(&o["data"]))),
            age_column(),
        ],
        ("", "serviceaccounts") => vec![
            name(),
            Column::new("Secrets", "integer", |o| {
                json!(o["secrets"].as_array().map_or(0, Vec::len))
            }),
            age_column(),
        ],
        ("", "services") => vec![
            name(),
            Column::new("Type", "string", text(&["spec", "type"])),
            Column::new("Cluster-IP", "string", text(&["spec", "clusterIP"])),
            Column::new("External-IP", "string", |_| json!("<none>")),
            Column::new("Port(s)", "string", service_ports),
            age_column(),
        ],
        ("" | "events.k8s.io", "events") => vec![
            Column::new("Last Seen", "string", |o| {
                let seen = o["lastTimestamp"]
                    .as_str()
                    .or(o["eventTime"].as_str())
                    .or(o["metadata"]["creationTimestamp"].as_str());
                json!(age(seen))
            }),
            Column::new("Type", "string", text(&["type"])),
            Column::new("Reason", "string", text(&["reason"])),
            Column::new("Object", "string", |o| {
                let involved = if o["regarding"].is_object() {
                    &o["regarding"]
                } else {
                    &o["involvedObject"]
                };
                json!(format!(
                    "{}/{}",
                    involved["kind"].as_str().unwrap_or_default().to_lowercase(),
                    involved["name"].as_str().unwrap_or_default()
                ))
            }),
            Column::new("Message", "string", |o| {
                o.get("message")
                    .or(o.get("note"))
                    .cloned()
                    .unwrap_or(Value::Null)
            }),
        ],
        ("apps", "deployments") => vec![
            name(),
            Column::new("Ready", "string", |o| {
                json!(format!(
                    "{}/{}",
                    o["status"]["readyReplicas"].as_i64().unwrap_or(0),
                    o["spec"]["replicas"].as_i64().unwrap_or(1)
                ))
            }),
            Column::new("Up-to-date", "integer", int(&["status", "updatedReplicas"])),
            Column::new(
                "Available",
                "integer",
                int(&["status", "availableReplicas"]),
            ),
            age_column(),
        ],
        ("apps", "replicasets") => vec![
            name(),
            Column::new("Desired", "integer", |o| {
                json!(o["spec"]["replicas"].as_i64().unwrap_or(1))
            }),
            Column::new("Current", "integer", int(&["status", "replicas"])),
            Column::new("Ready", "integer", int(&["status", "readyReplicas"])),
            age_column(),
        ],
        ("batch", "jobs") => vec![
            name(),
            Column::new("Status", "string", job_status),
            Column::new("Completions", "string", job_completions),
            Column::new("Duration", "string", job_duration),
            age_column(),
        ],
        _ => {
            let mut columns = vec![name()];
            for c in rt.printer_columns.iter().filter(|c| c.name != "Age") {
                let path = c.json_path.clone();
                let is_date = c.column_type == "date";
                columns.push(Column {
                    name: c.name.clone(),
                    column_type: if is_date {
                        "string"
                    } else {
                        column_type(&c.column_type)
                    },
                    cell: Box::new(move |o| {
                        let value = json_path(o, &path).cloned().unwrap_or(Value::Null);
                        match value.as_str() {
                            Some(date) if is_date => json!(age(Some(date))),
                            _ => value,
                        }
                    }),
                });
            }
            columns.push(age_column());
            columns
        }
    }
}

/// The table column types a CRD may declare.
fn column_type(declared: &str) -> &'static str {
    match declared {
        "integer" => "integer",
        "number" => "number",
        "boolean" => "boolean",
        _ => "string",
    }
}

fn entries(map: &Value) -> usize {
    map.as_object().map_or(0, |m| m.len())
}

fn container_statuses(pod: &Value) -> Vec<Value> {
    pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn pod_ready(pod: &Value) -> Value {
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = container_statuses(pod)
        .iter()
        .filter(|s| s["ready"].as_bool() == Some(true))
        .count();
    json!(format!("{ready}/{total}"))
}

fn pod_status(pod: &Value) -> Value {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return json!("Terminating");
    }
    let statuses = container_statuses(pod);
    let reason = statuses
        .iter()
        .find_map(|s| {
            s["state"]["waiting"]["reason"]
                .as_str()
                .or(s["state"]["terminated"]["reason"].as_str())
        })
        .or(pod["status"]["reason"].as_str())
        .or(pod["status"]["phase"].as_str())
        .unwrap_or("Pending");
    json!(reason)
}

fn pod_restarts(pod: &Value) -> Value {
    json!(
        container_statuses(pod)
            .iter()
            .filter_map(|s| s["restartCount"].as_i64())
            .sum::<i64>()
    )
}

fn node_status(node: &Value) -> Value {
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    let mut status = if ready { "Ready" } else { "NotReady" }.to_owned();
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    json!(status)
}

fn node_roles(node: &Value) -> Value {
    let roles: Vec<&str> = node["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, _)| key.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    json!(if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.join(",")
    })
}

fn service_ports(service: &Value) -> Value {
    let ports: Vec<String> = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64().filter(|port| *port != 0) {
                Some(node_port) => format!("{}:{node_port}/{protocol}", p["port"]),
                None => format!("{}/{protocol}", p["port"]),
            }
        })
        .collect();
    json!(if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    })
}

fn job_condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

fn job_status(job: &Value) -> Value {
    let status = ["Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"]
        .into_iter()
        .find(|kind| job_condition(job, kind))
        .unwrap_or(if job["spec"]["suspend"].as_bool() == Some(true) {
            "Suspended"
        } else if job["metadata"]["deletionTimestamp"].is_string() {
            "Terminating"
        } else {
            "Running"
        });
    json!(status)
}

fn job_completions(job: &Value) -> Value {
    let succeeded = job["status"]["succeeded"].as_i64().unwrap_or(0);
    let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1);
    json!(match job["spec"]["completions"].as_i64() {
        Some(completions) => format!("{succeeded}/{completions}"),
        None if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
        None => format!("{succeeded}/1"),
    })
}

fn job_duration(job: &Value) -> Value {
    let time = |key: &str| {
        job["status"][key]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let Some(start) = time("startTime") else {
        return json!("");
    };
    let end = time("completionTime").unwrap_or_else(chrono::Utc::now);
    json!(short_duration((end - start).num_seconds().max(0)))
}

fn row(columns: &[Column], object: &Value) -> Value {
    let cells: Vec<Value> = columns.iter().map(|c| (c.cell)(object)).collect();
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
    let columns = columns(rt);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            let (format, description) = if c.name == "Name" {
                ("name", "Name must be unique within a namespace.")
            } else {
                ("", "")
            };
            json!({"name": c.name, "type": c.column_type, "format": format, "description": description, "priority": 0})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": objects.iter().map(|o| row(&columns, o)).collect::<Vec<_>>(),
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
    short_duration(
        (chrono::Utc::now() - created.with_timezone(&chrono::Utc))
            .num_seconds()
            .max(0),
    )
}

fn short_duration(seconds: i64) -> String {
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
