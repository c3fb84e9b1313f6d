//! From the Config Connector objects' conditions to the test cluster's `Ready` condition.
//! Pure functions, so every rule is a row in a table test.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use testcluster_resources::Condition;
use testcluster_resources::metadata::{
    CONDITION_READY, MESSAGE_DEPENDENCIES_NOT_READY, REASON_ALL_DEPENDENCIES_READY,
    REASON_DEPENDENCIES_NOT_READY, all_dependencies_ready_message,
};

/// What the provisioner knows about one rendered object.
#[derive(Clone, Debug, PartialEq)]
pub struct Dependency {
    /// `<Kind>:<namespace>/<name>`.
    pub key: String,
    /// The object's conditions as Config Connector wrote them; empty if it does not exist yet.
    pub conditions: Vec<Condition>,
    /// Whether Config Connector has seen the object's current spec (`status.observedGeneration`
    /// equals `metadata.generation`). A Ready condition about an older spec says nothing about
    /// the one just applied.
    pub observed: bool,
}

impl Dependency {
    pub fn is_ready(&self) -> bool {
        self.observed
            && self
                .conditions
                .iter()
                .any(|c| c.type_ == CONDITION_READY && c.status == "True")
    }
}

/// The aggregate over all dependencies.
#[derive(Clone, Debug, PartialEq)]
pub struct Readiness {
    pub all_ready: bool,
    /// The `Ready` condition, without `lastTransitionTime` (see [`set_condition`]).
    pub condition: Condition,
}

/// `Ready` is True only when every one of `expected` dependencies exists and is ready, with the
/// seed's reasons and messages.
pub fn aggregate(dependencies: &[Dependency], expected: usize) -> Readiness {
    let all_ready = expected > 0
        && dependencies.len() == expected
        && dependencies.iter().all(Dependency::is_ready);
    let condition = if all_ready {
        condition(
            "True",
            REASON_ALL_DEPENDENCIES_READY,
            &all_dependencies_ready_message(expected),
        )
    } else {
        condition(
            "False",
            REASON_DEPENDENCIES_NOT_READY,
            MESSAGE_DEPENDENCIES_NOT_READY,
        )
    };
    Readiness {
        all_ready,
        condition,
    }
}

/// A `Ready` condition without a transition time.
pub fn condition(status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: CONDITION_READY.to_owned(),
        status: status.to_owned(),
        last_transition_time: None,
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}

/// `conditions` with `new` in place of the condition of its type. `lastTransitionTime` is `now`
/// only when the status changed (or the condition is new); otherwise the old time is kept.
pub fn set_condition(conditions: &[Condition], mut new: Condition, now: &Time) -> Vec<Condition> {
    let old = conditions.iter().find(|c| c.type_ == new.type_);
    new.last_transition_time = match old {
        Some(old) if old.status == new.status => old
            .last_transition_time
            .clone()
            .or_else(|| Some(now.clone())),
        _ => Some(now.clone()),
    };
    let mut result: Vec<Condition> = conditions
        .iter()
        .filter(|c| c.type_ != new.type_)
        .cloned()
        .collect();
    result.push(new);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn time(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    fn ready(status: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            last_transition_time: Some(time(1)),
            reason: if status == "True" {
                "UpToDate"
            } else {
                "Updating"
            }
            .into(),
            message: String::new(),
        }
    }

    fn dependency(key: &str, conditions: Vec<Condition>, observed: bool) -> Dependency {
        Dependency {
            key: key.into(),
            conditions,
            observed,
        }
    }

    #[test]
    fn aggregate_table() {
        let up = |k: &str| dependency(k, vec![ready("True")], true);
        // What, dependencies, expected count, all ready, reason, message.
        type Case = (
            &'static str,
            Vec<Dependency>,
            usize,
            bool,
            &'static str,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "all ready",
                vec![up("A:ns/a"), up("B:ns/b")],
                2,
                true,
                "AllDependenciesReady",
                "All 2 dependencies are ready",
            ),
            (
                "one updating",
                vec![
                    up("A:ns/a"),
                    dependency("B:ns/b", vec![ready("False")], true),
                ],
                2,
                false,
                "DependenciesNotReady",
                "Some dependencies are not ready yet",
            ),
            (
                "one without conditions yet",
                vec![up("A:ns/a"), dependency("B:ns/b", vec![], false)],
                2,
                false,
                "DependenciesNotReady",
                "Some dependencies are not ready yet",
            ),
            (
                "ready about an older spec",
                vec![
                    up("A:ns/a"),
                    dependency("B:ns/b", vec![ready("True")], false),
                ],
                2,
                false,
                "DependenciesNotReady",
                "Some dependencies are not ready yet",
            ),
            (
                "one missing",
                vec![up("A:ns/a")],
                2,
                false,
                "DependenciesNotReady",
                "Some dependencies are not ready yet",
            ),
            (
                "nothing expected is not ready",
                vec![],
                0,
                false,
                "DependenciesNotReady",
                "Some dependencies are not ready yet",
            ),
            (
                "six ready",
                (0..6).map(|i| up(&format!("K:ns/{i}"))).collect(),
                6,
                true,
                "AllDependenciesReady",
                "All 6 dependencies are ready",
            ),
        ];
        for (what, dependencies, expected, all_ready, reason, message) in cases {
            let readiness = aggregate(&dependencies, expected);
            assert_eq!(readiness.all_ready, all_ready, "{what}");
            assert_eq!(readiness.condition.type_, "Ready", "{what}");
            assert_eq!(
                readiness.condition.status,
                if all_ready { "True" } else { "False" },
                "{what}"
            );
            assert_eq!(readiness.condition.reason, reason, "{what}");
            assert_eq!(readiness.condition.message, message, "{what}");
        }
    }

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let before = vec![Condition {
            last_transition_time: Some(time(10)),
            ..condition(
                "False",
                "DependenciesNotReady",
                "Some dependencies are not ready yet",
            )
        }];
        // Same status, new message: the time stays.
        let same = set_condition(&before, condition("False", "Other", "other"), &time(20));
        assert_eq!(same.len(), 1);
        assert_eq!(same[0].last_transition_time, Some(time(10)));
        assert_eq!(same[0].reason, "Other");
        // New status: the time moves.
        let flipped = set_condition(
            &before,
            condition(
                "True",
                "AllDependenciesReady",
                "All 6 dependencies are ready",
            ),
            &time(30),
        );
        assert_eq!(flipped[0].last_transition_time, Some(time(30)));
        // A new condition type is added, others are kept.
        let mut other = condition("True", "X", "x");
        other.type_ = "Other".into();
        let both = set_condition(&flipped, other, &time(40));
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].type_, "Ready");
        assert_eq!(both[1].last_transition_time, Some(time(40)));
    }
}
