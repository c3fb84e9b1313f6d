//! The Deployment controller's decisions, free of I/O: the pod-template hash that names a revision's
//! ReplicaSet, how many replicas each ReplicaSet gets next (RollingUpdate within `maxSurge` /
//! `maxUnavailable`, or Recreate), and the Deployment status and conditions that follow.

use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// The alphabet Kubernetes encodes generated names with (no vowels, no look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template: FNV-1a (32 bit) over the template and the collision
/// count, printed in decimal and each digit mapped onto the safe alphabet, as
/// `controller.ComputeHash` and `rand.SafeEncodeString` do (the bytes hashed differ: Go hashes its
/// own printing of the struct, this its JSON).
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(count) = collision_count {
        feed(&count.to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// A ReplicaSet as the rollout sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaSetView {
    pub name: String,
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.replicas`, `readyReplicas`, `availableReplicas`.
    pub current: i32,
    pub ready: i32,
    pub available: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Recreate,
    RollingUpdate {
        max_surge: i32,
        max_unavailable: i32,
    },
}

impl Strategy {
    /// The Deployment's strategy with `maxSurge` rounded up and `maxUnavailable` down from
    /// percentages of `replicas` (defaults 25 %); both zero would stall, so unavailable becomes 1.
    pub fn of(spec: &DeploymentSpec) -> Strategy {
        let replicas = spec.replicas.unwrap_or(1);
        let strategy = spec.strategy.clone().unwrap_or_default();
        if strategy.type_.as_deref() == Some("Recreate") {
            return Strategy::Recreate;
        }
        let rolling = strategy.rolling_update.unwrap_or_default();
        let quarter = IntOrString::String("25%".to_owned());
        let max_surge = scaled(
            rolling.max_surge.as_ref().unwrap_or(&quarter),
            replicas,
            true,
        );
        let mut max_unavailable = scaled(
            rolling.max_unavailable.as_ref().unwrap_or(&quarter),
            replicas,
            false,
        );
        if max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable: max_unavailable.min(replicas),
        }
    }

    fn max_unavailable(self) -> i32 {
        match self {
            Strategy::Recreate => 0,
            Strategy::RollingUpdate {
                max_unavailable, ..
            } => max_unavailable,
        }
    }
}

fn scaled(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let part = i64::from(total) * percent;
            let value = if round_up {
                (part + 99) / 100
            } else {
                part / 100
            };
            i32::try_from(value).unwrap_or(i32::MAX)
        }
    }
}

/// The next `spec.replicas` of the new ReplicaSet and of each old one (same order as `old`).
pub fn next_scale(
    replicas: i32,
    strategy: Strategy,
    new: &ReplicaSetView,
    old: &[ReplicaSetView],
) -> (i32, Vec<i32>) {
    match strategy {
        Strategy::Recreate => {
            // Old pods all gone before the new ones start.
            let old_running = old.iter().any(|rs| rs.current > 0 || rs.desired > 0);
            let new_target = if old_running { 0 } else { replicas };
            (new_target, vec![0; old.len()])
        }
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => {
            let old_desired: i32 = old.iter().map(|rs| rs.desired).sum();
            // Scale up the new ReplicaSet within the surge.
            let new_target = if new.desired >= replicas {
                replicas
            } else {
                let room = replicas + max_surge - (old_desired + new.desired);
                (new.desired + room.max(0)).min(replicas)
            };
            // Scale down old ReplicaSets as far as availability allows: first their unavailable
            // pods, then available ones down to `replicas - maxUnavailable` in all.
            let min_available = replicas - max_unavailable;
            let new_unavailable = (new_target - new.available).max(0);
            let all = old_desired + new_target;
            let mut budget = (all - min_available - new_unavailable).max(0);
            let mut targets: Vec<i32> = old.iter().map(|rs| rs.desired).collect();
            for (target, rs) in targets.iter_mut().zip(old) {
                let unhealthy = (*target - rs.available).max(0).min(budget);
                *target -= unhealthy;
                budget -= unhealthy;
            }
            let available: i32 = old.iter().map(|rs| rs.available).sum::<i32>() + new.available;
            let mut scale_down = (available - min_available).max(0);
            for (target, rs) in targets.iter_mut().zip(old) {
                let step = (*target).min(scale_down).min(rs.available.max(0)).max(0);
                *target -= step;
                scale_down -= step;
            }
            (new_target, targets)
        }
    }
}

/// The status after this reconcile: counts over every ReplicaSet (`desired` being what was just
/// written), and the `Available` and `Progressing` conditions (`created`: the new ReplicaSet was
/// made by this reconcile).
pub fn status(
    spec: &DeploymentSpec,
    generation: Option<i64>,
    previous: Option<&DeploymentStatus>,
    new: &ReplicaSetView,
    old: &[ReplicaSetView],
    created: bool,
    now: Timestamp,
) -> DeploymentStatus {
    let replicas = spec.replicas.unwrap_or(1);
    let all = || std::iter::once(new).chain(old.iter());
    let desired_sum: i32 = all().map(|rs| rs.desired).sum();
    let available: i32 = all().map(|rs| rs.available).sum();
    let mut status = DeploymentStatus {
        observed_generation: generation,
        replicas: Some(all().map(|rs| rs.current).sum()),
        updated_replicas: Some(new.current),
        ready_replicas: Some(all().map(|rs| rs.ready).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired_sum - available).max(0)),
        collision_count: previous.and_then(|p| p.collision_count),
        conditions: None,
        terminating_replicas: None,
    };
    let previous_conditions = previous
        .and_then(|p| p.conditions.clone())
        .unwrap_or_default();
    let minimum = available >= replicas - Strategy::of(spec).max_unavailable();
    let available_condition = if minimum {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_owned(),
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_owned(),
        )
    };
    let complete = new.current == replicas
        && status.replicas == Some(replicas)
        && available == replicas
        && new.available == replicas;
    let moved = previous.is_none_or(|p| {
        p.updated_replicas != status.updated_replicas
            || p.ready_replicas != status.ready_replicas
            || p.available_replicas != status.available_replicas
            || p.replicas != status.replicas
    });
    let name = &new.name;
    let previous_progressing = previous_conditions
        .iter()
        .find(|c| c.type_ == "Progressing");
    let progressing = if created {
        (
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{name}\""),
        )
    } else if complete {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{name}\" has successfully progressed."),
        )
    } else if moved {
        (
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{name}\" is progressing."),
        )
    } else if let Some(c) = previous_progressing {
        (
            if c.status == "True" { "True" } else { "False" },
            match c.reason.as_deref() {
                Some("NewReplicaSetAvailable") => "NewReplicaSetAvailable",
                Some("NewReplicaSetCreated") => "NewReplicaSetCreated",
                _ => "ReplicaSetUpdated",
            },
            c.message.clone().unwrap_or_default(),
        )
    } else {
        (
            "True",
            "FoundNewReplicaSet",
            format!("Found new replica set \"{name}\""),
        )
    };
    status.conditions = Some(vec![
        condition(&previous_conditions, "Available", available_condition, now),
        condition(&previous_conditions, "Progressing", progressing, now),
    ]);
    status
}

/// A condition whose `lastTransitionTime` stays while its status does, and whose `lastUpdateTime`
/// stays while nothing about it changes.
fn condition(
    previous: &[DeploymentCondition],
    type_: &str,
    (status, reason, message): (&str, &str, String),
    now: Timestamp,
) -> DeploymentCondition {
    let before = previous.iter().find(|c| c.type_ == type_);
    let transition = before
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let update = before
        .filter(|c| {
            c.status == status
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        })
        .and_then(|c| c.last_update_time.clone())
        .unwrap_or(Time(now));
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time: Some(transition),
        last_update_time: Some(update),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, desired: i32, available: i32) -> ReplicaSetView {
        ReplicaSetView {
            name: name.to_owned(),
            desired,
            current: desired,
            ready: available,
            available,
        }
    }

    fn rolling(max_surge: i32, max_unavailable: i32) -> Strategy {
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        }
    }

    #[test]
    fn hashes_are_stable_safe_and_template_specific() {
        let a: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "a:1"}]}
        }))
        .expect("template");
        let mut b = a.clone();
        if let Some(spec) = b.spec.as_mut() {
            spec.containers[0].image = Some("a:2".to_owned());
        }
        assert_eq!(template_hash(&a, None), template_hash(&a, None));
        assert_ne!(template_hash(&a, None), template_hash(&b, None));
        assert_ne!(template_hash(&a, None), template_hash(&a, Some(1)));
        assert!(
            template_hash(&a, None)
                .bytes()
                .all(|c| SAFE_ALPHABET.contains(&c))
        );
    }

    #[test]
    fn strategy_rounds_surge_up_and_unavailable_down() {
        let spec: DeploymentSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3, "selector": {}, "template": {}
        }))
        .expect("spec");
        assert_eq!(Strategy::of(&spec), rolling(1, 0));
        let recreate: DeploymentSpec = serde_json::from_value(serde_json::json!({
            "replicas": 3, "selector": {}, "template": {}, "strategy": {"type": "Recreate"}
        }))
        .expect("spec");
        assert_eq!(Strategy::of(&recreate), Strategy::Recreate);
    }

    #[test]
    fn a_rolling_update_surges_then_retires_old_pods() {
        // 3 replicas, surge 1, unavailable 0: one new pod first, old stay until it is available.
        let (new, old) = next_scale(3, rolling(1, 0), &rs("new", 0, 0), &[rs("old", 3, 3)]);
        assert_eq!((new, old), (1, vec![3]));
        let (new, old) = next_scale(3, rolling(1, 0), &rs("new", 1, 0), &[rs("old", 3, 3)]);
        assert_eq!((new, old), (1, vec![3]));
        let (new, old) = next_scale(3, rolling(1, 0), &rs("new", 1, 1), &[rs("old", 3, 3)]);
        assert_eq!((new, old), (1, vec![2]));
        let (new, old) = next_scale(3, rolling(1, 0), &rs("new", 1, 1), &[rs("old", 2, 2)]);
        assert_eq!((new, old), (2, vec![2]));
        let (new, old) = next_scale(3, rolling(1, 0), &rs("new", 3, 3), &[rs("old", 1, 1)]);
        assert_eq!((new, old), (3, vec![0]));
    }

    #[test]
    fn scaling_without_a_rollout_moves_the_new_replica_set_only() {
        assert_eq!(
            next_scale(3, rolling(1, 0), &rs("new", 1, 1), &[]),
            (3, vec![])
        );
        assert_eq!(
            next_scale(1, rolling(1, 0), &rs("new", 3, 3), &[]),
            (1, vec![])
        );
    }

    #[test]
    fn recreate_waits_for_old_pods() {
        let mut old = rs("old", 2, 2);
        assert_eq!(
            next_scale(2, Strategy::Recreate, &rs("new", 0, 0), &[old.clone()]),
            (0, vec![0])
        );
        old.desired = 0;
        old.current = 0;
        assert_eq!(
            next_scale(2, Strategy::Recreate, &rs("new", 0, 0), &[old]),
            (2, vec![0])
        );
    }

    #[test]
    fn status_counts_and_conditions() {
        let spec: DeploymentSpec = serde_json::from_value(serde_json::json!({
            "replicas": 2, "selector": {}, "template": {}
        }))
        .expect("spec");
        let now = Timestamp::from_second(1_000).expect("time");
        let s = status(&spec, Some(3), None, &rs("web-abc", 2, 2), &[], false, now);
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.ready_replicas,
                s.available_replicas,
                s.unavailable_replicas
            ),
            (Some(2), Some(2), Some(2), Some(2), Some(0))
        );
        let conditions = s.conditions.clone().expect("conditions");
        assert_eq!(
            conditions[0].reason.as_deref(),
            Some("MinimumReplicasAvailable")
        );
        assert_eq!(
            conditions[1].reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
        assert_eq!(
            conditions[1].message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );
        let later = Timestamp::from_second(2_000).expect("time");
        let again = status(
            &spec,
            Some(3),
            Some(&s),
            &rs("web-abc", 2, 2),
            &[],
            false,
            later,
        );
        assert_eq!(again.conditions, s.conditions);
        let progressing = status(
            &spec,
            Some(4),
            Some(&s),
            &rs("web-def", 1, 0),
            &[rs("web-abc", 2, 2)],
            true,
            later,
        );
        let conditions = progressing.conditions.expect("conditions");
        assert_eq!(
            conditions[1].reason.as_deref(),
            Some("NewReplicaSetCreated")
        );
        assert_eq!(progressing.unavailable_replicas, Some(1));
    }
}
