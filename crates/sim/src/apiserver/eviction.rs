//! `pods/{name}/eviction`: a `policy/v1` Eviction, allowed only when every PodDisruptionBudget over
//! the pod still allows a disruption, as the real eviction REST handler decides.
//!
//! The budget is computed when the eviction arrives (there is no disruption controller writing
//! `status.disruptionsAllowed`): the expected pods are the budget's matching pods that are not
//! finished or being deleted, the healthy ones those of them that are Ready.

use serde_json::{Value, json};

use super::errors::ApiError;
use super::objects::{self, DeleteOptions};
use super::resources::ResourceType;
use super::selectors::{LabelSelector, selector_query};
use super::server::ServerState;

const PDB_TABLE: &str = "policy/poddisruptionbudgets";

/// Evicts the pod: checks its budget, marks it with the `DisruptionTarget` condition and deletes it
/// (gracefully, as the Eviction's `deleteOptions` say). Returns the Status for the 201 answer.
pub fn evict(
    state: &ServerState,
    pods: &ResourceType,
    namespace: &str,
    name: &str,
    eviction: &Value,
) -> Result<Value, ApiError> {
    let pod = state
        .store
        .get(&pods.storage_key(), namespace, name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if !finished && pod["metadata"]["deletionTimestamp"].is_null() {
        check_budgets(state, pods, namespace, &pod)?;
        mark_disruption_target(state, pods, namespace, name)?;
    }
    let options = DeleteOptions::from_body(&eviction["deleteOptions"])?;
    objects::delete(state, pods, namespace, name, &options)?;
    Ok(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "code": 201,
    }))
}

fn check_budgets(
    state: &ServerState,
    pods: &ResourceType,
    namespace: &str,
    pod: &Value,
) -> Result<(), ApiError> {
    let (budgets, _) = state.store.list(PDB_TABLE, Some(namespace));
    let matching: Vec<_> = budgets
        .iter()
        .filter(|pdb| selector(pdb).is_some_and(|s| s.matches(pod)))
        .collect();
    let budget = match matching.as_slice() {
        [] => return Ok(()),
        [one] => *one,
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    if !is_ready(pod) {
        // An unhealthy pod does not count against the budget.
        return Ok(());
    }
    let selector = selector(budget).ok_or_else(|| ApiError::internal("budget selector"))?;
    let (candidates, _) = state.store.list(&pods.storage_key(), Some(namespace));
    let expected: Vec<_> = candidates
        .iter()
        .filter(|p| selector.matches(p))
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .collect();
    let expected_count = i64::try_from(expected.len()).unwrap_or(i64::MAX);
    let healthy = i64::try_from(expected.iter().filter(|p| is_ready(p)).count()).unwrap_or(0);
    let spec = &budget["spec"];
    let desired = if !spec["minAvailable"].is_null() {
        scaled(&spec["minAvailable"], expected_count)
    } else if !spec["maxUnavailable"].is_null() {
        expected_count - scaled(&spec["maxUnavailable"], expected_count)
    } else {
        0
    };
    if healthy - desired > 0 {
        return Ok(());
    }
    let name = budget["metadata"]["name"].as_str().unwrap_or_default();
    Err(ApiError {
        details: Some(json!({"causes": [{
            "reason": "DisruptionBudget",
            "message": format!("The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"),
        }]})),
        ..ApiError::too_many_requests_because(
            "Cannot evict pod as it would violate the pod's disruption budget.",
        )
    })
}

fn selector(budget: &Value) -> Option<LabelSelector> {
    LabelSelector::parse(&selector_query(&budget["spec"]["selector"])).ok()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// An int-or-percent of `total`, percentages rounded up (as the disruption controller does).
fn scaled(value: &Value, total: i64) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(0, |percent| (percent * total + 99) / 100),
        _ => 0,
    }
}

/// The condition the eviction handler adds before it deletes the pod.
fn mark_disruption_target(
    state: &ServerState,
    pods: &ResourceType,
    namespace: &str,
    name: &str,
) -> Result<(), ApiError> {
    state
        .store
        .update(&pods.storage_key(), namespace, name, |current| {
            let mut next = current.clone();
            let mut conditions: Vec<Value> = next["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conditions.retain(|c| c["type"] != "DisruptionTarget");
            conditions.push(json!({
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
                "lastTransitionTime": objects::now(),
            }));
            next["status"]["conditions"] = Value::Array(conditions);
            Ok::<_, ApiError>(Some(next))
        })
        .map_err(|_| ApiError::not_found("", "pods", name))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&json!(2), 5), 2);
        assert_eq!(scaled(&json!("50%"), 3), 2);
        assert_eq!(scaled(&json!("100%"), 3), 3);
        assert_eq!(scaled(&json!("x"), 3), 0);
    }
}
