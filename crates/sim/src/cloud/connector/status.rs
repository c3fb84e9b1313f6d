//! Config Connector's `Ready` condition: its reasons, messages and transition rules.

use serde_json::{Map, Value, json};

pub(crate) const UP_TO_DATE: &str = "UpToDate";
pub(crate) const UP_TO_DATE_MESSAGE: &str = "The resource is up to date";
pub(crate) const UPDATING: &str = "Updating";
pub(crate) const UPDATING_MESSAGE: &str = "Update in progress";
pub(crate) const UPDATE_FAILED: &str = "UpdateFailed";
pub(crate) const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
pub(crate) const DEPENDENCY_NOT_FOUND: &str = "DependencyNotFound";
pub(crate) const DELETING: &str = "Deleting";
pub(crate) const DELETING_MESSAGE: &str = "Deletion in progress";
pub(crate) const DELETE_FAILED: &str = "DeleteFailed";

/// What the `Ready` condition should say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Readiness {
    pub(crate) fn up_to_date() -> Readiness {
        Readiness {
            ready: true,
            reason: UP_TO_DATE,
            message: UP_TO_DATE_MESSAGE.to_owned(),
        }
    }

    pub(crate) fn updating() -> Readiness {
        Readiness {
            ready: false,
            reason: UPDATING,
            message: UPDATING_MESSAGE.to_owned(),
        }
    }

    pub(crate) fn update_failed(error: &str) -> Readiness {
        Readiness {
            ready: false,
            reason: UPDATE_FAILED,
            message: format!("Update call failed: {error}"),
        }
    }

    pub(crate) fn dependency_not_ready(kind: &str, namespace: &str, name: &str) -> Readiness {
        Readiness {
            ready: false,
            reason: DEPENDENCY_NOT_READY,
            message: format!("reference {kind} {namespace}/{name} is not ready"),
        }
    }

    pub(crate) fn dependency_not_found(kind: &str, namespace: &str, name: &str) -> Readiness {
        Readiness {
            ready: false,
            reason: DEPENDENCY_NOT_FOUND,
            message: format!("reference {kind} {namespace}/{name} is not found"),
        }
    }

    pub(crate) fn deleting() -> Readiness {
        Readiness {
            ready: false,
            reason: DELETING,
            message: DELETING_MESSAGE.to_owned(),
        }
    }

    pub(crate) fn delete_failed(error: &str) -> Readiness {
        Readiness {
            ready: false,
            reason: DELETE_FAILED,
            message: format!("Delete call failed: {error}"),
        }
    }

    /// Whether the condition is a failure worth a Warning event.
    pub(crate) fn is_warning(&self) -> bool {
        matches!(
            self.reason,
            UPDATE_FAILED | DEPENDENCY_NOT_READY | DEPENDENCY_NOT_FOUND | DELETE_FAILED
        )
    }
}

/// The object's current `Ready` condition, if any.
pub(crate) fn ready_condition(status: &Value) -> Option<&Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

/// Whether `status` reports the object Ready for `generation` (what dependents wait for).
pub(crate) fn is_ready(status: &Value, generation: Option<i64>) -> bool {
    let ready = ready_condition(status).is_some_and(|c| c["status"] == "True");
    let observed = status["observedGeneration"].as_i64();
    ready && (observed.is_none() || observed == generation)
}

/// Whether `status` already says exactly `readiness` for `generation`.
pub(crate) fn says(status: &Value, readiness: &Readiness, generation: Option<i64>) -> bool {
    let Some(condition) = ready_condition(status) else {
        return false;
    };
    condition["status"] == status_word(readiness.ready)
        && condition["reason"] == readiness.reason
        && condition["message"] == readiness.message.as_str()
        && status["observedGeneration"].as_i64() == generation
}

/// The status to merge in: the single `Ready` condition (keeping `lastTransitionTime` unless the
/// status flips between True and False), `observedGeneration`, and kind-specific `extra` fields.
pub(crate) fn status_patch(
    current: &Value,
    readiness: &Readiness,
    generation: Option<i64>,
    extra: Map<String, Value>,
    now: &str,
) -> Value {
    let new_status = status_word(readiness.ready);
    let last_transition = ready_condition(current)
        .filter(|c| c["status"] == new_status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    let mut status = extra;
    status.insert(
        "conditions".into(),
        json!([{
            "type": "Ready",
            "status": new_status,
            "reason": readiness.reason,
            "message": readiness.message,
            "lastTransitionTime": last_transition,
        }]),
    );
    if let Some(generation) = generation {
        status.insert("observedGeneration".into(), json!(generation));
    }
    Value::Object(status)
}

fn status_word(ready: bool) -> &'static str {
    if ready { "True" } else { "False" }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EARLIER: &str = "2025-01-01T00:00:00Z";
    const NOW: &str = "2025-01-01T00:05:00Z";

    fn with_condition(status: &str, reason: &str) -> Value {
        json!({"conditions": [{"type": "Ready", "status": status, "reason": reason,
            "message": "m", "lastTransitionTime": EARLIER}], "observedGeneration": 1})
    }

    #[test]
    fn transition_time_changes_only_on_flips() {
        let failing = with_condition("False", UPDATING);
        let still_false = status_patch(
            &failing,
            &Readiness::update_failed("boom"),
            Some(1),
            Map::new(),
            NOW,
        );
        assert_eq!(still_false["conditions"][0]["lastTransitionTime"], EARLIER);
        assert_eq!(
            still_false["conditions"][0]["message"],
            "Update call failed: boom"
        );
        let flipped = status_patch(&failing, &Readiness::up_to_date(), Some(2), Map::new(), NOW);
        assert_eq!(flipped["conditions"][0]["lastTransitionTime"], NOW);
        assert_eq!(flipped["conditions"][0]["status"], "True");
        assert_eq!(flipped["observedGeneration"], 2);
        let first = status_patch(
            &Value::Null,
            &Readiness::updating(),
            Some(1),
            Map::new(),
            NOW,
        );
        assert_eq!(first["conditions"][0]["lastTransitionTime"], NOW);
    }

    #[test]
    fn messages_are_config_connectors() {
        assert_eq!(
            Readiness::dependency_not_ready("ContainerCluster", "ns", "c").message,
            "reference ContainerCluster ns/c is not ready"
        );
        assert_eq!(
            Readiness::dependency_not_found("ComputeNetwork", "ns", "n").message,
            "reference ComputeNetwork ns/n is not found"
        );
        assert_eq!(Readiness::updating().message, "Update in progress");
        assert_eq!(
            Readiness::up_to_date().message,
            "The resource is up to date"
        );
    }

    #[test]
    fn readiness_needs_the_current_generation() {
        let ready = with_condition("True", UP_TO_DATE);
        assert!(is_ready(&ready, Some(1)));
        assert!(!is_ready(&ready, Some(2)));
        assert!(!is_ready(&with_condition("False", UPDATING), Some(1)));
        assert!(!is_ready(&Value::Null, Some(1)));
    }
}
