//! The `scale` subresource of Deployments, ReplicaSets and StatefulSets: an `autoscaling/v1` Scale
//! read from, and written to, the parent's `spec.replicas` (what `kubectl scale` uses).

use std::sync::Arc;

use serde_json::{Value, json};

use super::errors::ApiError;
use super::objects::{self, Write, Writer};
use super::patch::{self, PatchKind};
use super::resources::ResourceType;
use super::selectors::selector_query;
use super::server::ServerState;

/// A change to a Scale: a whole one (PUT) or a patch of one (PATCH).
pub enum ScaleWrite {
    Replace(Value),
    Patch(PatchKind, Value),
}

/// `GET .../{name}/scale`.
pub fn get(
    state: &ServerState,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
) -> Result<Value, ApiError> {
    Ok(scale_of(&*parent(state, rt, namespace, name)?))
}

/// `PUT` or `PATCH .../{name}/scale`: sets the parent's `spec.replicas`, honouring a
/// `resourceVersion` the Scale carries as a precondition. Returns the new Scale.
pub fn write(
    state: &ServerState,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    change: ScaleWrite,
    writer: Writer,
) -> Result<Value, ApiError> {
    let current = scale_of(&*parent(state, rt, namespace, name)?);
    let next = match change {
        ScaleWrite::Replace(body) => body,
        ScaleWrite::Patch(PatchKind::Apply, _) => {
            return Err(ApiError::unsupported_media_type(&[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ]));
        }
        ScaleWrite::Patch(kind, body) => patch::apply_patch(kind, &current, &body)?,
    };
    let replicas = next["spec"]["replicas"].as_i64().unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            name,
            format!("spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let mut parent_patch = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = next["metadata"]["resourceVersion"].as_str() {
        parent_patch["metadata"] = json!({"resourceVersion": rv});
    }
    let (updated, _) = objects::update(
        state,
        rt,
        namespace,
        name,
        Write::Patch(PatchKind::Merge, parent_patch),
        false,
        writer,
    )?;
    Ok(scale_of(&updated))
}

fn parent(
    state: &ServerState,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
) -> Result<Arc<Value>, ApiError> {
    state
        .store
        .get(&rt.storage_key(), namespace, name)
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
}

/// The Scale of a workload object: its desired and observed replicas, and its selector as a string.
fn scale_of(object: &Value) -> Value {
    let meta = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": object["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector_query(&object["spec"]["selector"]),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_shape() {
        let deployment = json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u", "resourceVersion": "7", "creationTimestamp": "t"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
            "status": {"replicas": 1},
        });
        let scale = scale_of(&deployment);
        assert_eq!(scale["spec"]["replicas"], 2);
        assert_eq!(
            scale["status"],
            json!({"replicas": 1, "selector": "app=web,tier in (a,b)"})
        );
        assert_eq!(scale["metadata"]["resourceVersion"], "7");
    }
}
