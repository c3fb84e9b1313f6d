//! `events.k8s.io/v1` Events also appear as core `v1` Events, as on a real API server where both
//! are views of one stored object: controllers record the new kind (kube-rs' `Recorder` does), while
//! `kubectl describe` and `kubectl get events` read the old one.

use serde_json::{Value, json};

use super::resources::ResourceType;
use super::server::ServerState;
use super::store::WriteError;

/// Writes the core `v1` view of an `events.k8s.io/v1` Event just stored.
pub fn mirror_to_core(state: &ServerState, rt: &ResourceType, event: &Value) {
    if rt.group != "events.k8s.io" {
        return;
    }
    let Some(core) = state.resources.find_kind("v1", "Event") else {
        return;
    };
    let table = core.storage_key();
    let namespace = event["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = event["metadata"]["name"].as_str().unwrap_or_default();
    let view = core_view(event);
    let replaced = state
        .store
        .update::<()>(&table, namespace, name, |current| {
            let mut next = view.clone();
            next["metadata"]["uid"] = current["metadata"]["uid"].clone();
            Ok(Some(next))
        });
    if let Err(WriteError::NotFound) = replaced {
        let mut created = view;
        created["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        // A concurrent mirror of the same Event may have won; either copy is the same view.
        let _ = state.store.create::<()>(&table, created);
    }
}

/// The field mapping Kubernetes applies between the two Event versions.
fn core_view(event: &Value) -> Value {
    let meta = &event["metadata"];
    let series = &event["series"];
    let event_time = &event["eventTime"];
    let first = first_of(&event["deprecatedFirstTimestamp"], event_time);
    let last = first_of(
        &series["lastObservedTime"],
        &first_of(&event["deprecatedLastTimestamp"], event_time),
    );
    let count = series["count"]
        .as_i64()
        .or_else(|| event["deprecatedCount"].as_i64())
        .unwrap_or(1);
    without_nulls(json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "creationTimestamp": meta["creationTimestamp"],
            "labels": meta["labels"],
            "annotations": meta["annotations"],
        },
        "involvedObject": event["regarding"],
        "related": event["related"],
        "reason": event["reason"],
        "message": event["note"],
        "type": event["type"],
        "action": event["action"],
        "source": {"component": event["reportingController"]},
        "reportingComponent": event["reportingController"],
        "reportingInstance": event["reportingInstance"],
        "firstTimestamp": truncate_to_seconds(&first),
        "lastTimestamp": truncate_to_seconds(&last),
        "eventTime": event_time,
        "count": count,
    }))
}

/// Drops absent fields rather than storing them as `null`.
fn without_nulls(mut view: Value) -> Value {
    if let Some(metadata) = view["metadata"].as_object_mut() {
        metadata.retain(|_, v| !v.is_null());
    }
    if let Some(map) = view.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    view
}

fn first_of(preferred: &Value, fallback: &Value) -> Value {
    if preferred.is_null() {
        fallback.clone()
    } else {
        preferred.clone()
    }
}

/// `firstTimestamp`/`lastTimestamp` are second-precision `Time`; `eventTime` is `MicroTime`.
fn truncate_to_seconds(time: &Value) -> Value {
    match time
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        Some(t) => json!(t.to_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_new_fields_to_old() {
        let event = json!({
            "metadata": {"name": "e1", "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "regarding": {"kind": "Pod", "name": "p", "namespace": "ns"},
            "reason": "UpdateFailed",
            "note": "Update call failed",
            "type": "Warning",
            "action": "Reconcile",
            "reportingController": "containercluster-controller",
            "reportingInstance": "sim",
            "eventTime": "2026-01-01T00:00:01.123456Z",
            "series": {"count": 4, "lastObservedTime": "2026-01-01T00:05:00.000001Z"},
        });
        let core = core_view(&event);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "Update call failed");
        assert_eq!(core["source"]["component"], "containercluster-controller");
        assert_eq!(core["firstTimestamp"], "2026-01-01T00:00:01Z");
        assert_eq!(core["lastTimestamp"], "2026-01-01T00:05:00Z");
        assert_eq!(core["count"], 4);
    }
}
