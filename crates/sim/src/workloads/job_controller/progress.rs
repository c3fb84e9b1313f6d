//! The Job controller's decisions, free of I/O: from a Job and the pods it owns, the pods to create and
//! delete, the status to write and the events to record — with the real controller's conditions,
//! reasons and messages (Kubernetes 1.31+: `FailureTarget` / `SuccessCriteriaMet` first, then the
//! terminal `Failed` / `Complete` once no pod is terminating).

use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::workloads::events::EventType;

/// The API server's default `backoffLimit`.
const DEFAULT_BACKOFF_LIMIT: i32 = 6;

pub const BACKOFF_LIMIT_EXCEEDED: (&str, &str) = (
    "BackoffLimitExceeded",
    "Job has reached the specified backoff limit",
);
pub const DEADLINE_EXCEEDED: (&str, &str) = (
    "DeadlineExceeded",
    "Job was active longer than specified deadline",
);
pub const COMPLETIONS_REACHED: (&str, &str) = (
    "CompletionsReached",
    "Reached expected number of succeeded pods",
);

/// The pods a Job owns, sorted by what they count as.
#[derive(Clone, Debug, Default)]
pub struct OwnedPods {
    /// Names of pods neither finished nor being deleted.
    pub active: Vec<String>,
    pub ready: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub terminating: i32,
    /// Container restarts in active pods (for `restartPolicy: OnFailure`).
    pub restarts_of_active: i32,
}

impl OwnedPods {
    pub fn sort(pods: &[Pod]) -> OwnedPods {
        let mut owned = OwnedPods::default();
        for pod in pods {
            let status = pod.status.as_ref();
            match status.and_then(|s| s.phase.as_deref()) {
                Some("Succeeded") => owned.succeeded += 1,
                Some("Failed") => owned.failed += 1,
                _ if pod.metadata.deletion_timestamp.is_some() => owned.terminating += 1,
                _ => {
                    owned
                        .active
                        .push(pod.metadata.name.clone().unwrap_or_default());
                    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
                    if conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                    {
                        owned.ready += 1;
                    }
                    let restarts = status
                        .into_iter()
                        .flat_map(|s| {
                            s.container_statuses
                                .iter()
                                .flatten()
                                .chain(s.init_container_statuses.iter().flatten())
                        })
                        .map(|c| c.restart_count)
                        .sum::<i32>();
                    owned.restarts_of_active += restarts;
                }
            }
        }
        owned
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobEvent {
    pub type_: EventType,
    pub reason: String,
    pub note: String,
}

/// What the controller does in one reconcile.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub status: JobStatus,
    pub create: usize,
    /// Active pods to delete (past the deadline or limit, or beyond parallelism).
    pub delete: Vec<String>,
    pub events: Vec<JobEvent>,
    /// When to look again even if nothing changes (the active deadline).
    pub requeue_after: Option<Duration>,
}

/// Decides the next step for `job`, given the pods it owns.
pub fn plan(job: &Job, pods: &OwnedPods, now: Timestamp) -> Plan {
    let spec = job.spec.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let start_time = old.start_time.clone().unwrap_or(Time(now));
    // Pods are counted once seen finished; the counts never go down when such pods are deleted.
    let succeeded = old.succeeded.unwrap_or(0).max(pods.succeeded);
    let mut failed = old.failed.unwrap_or(0).max(pods.failed);
    let mut plan = Plan::default();

    let finished = has_condition(&conditions, "Complete") || has_condition(&conditions, "Failed");
    let mut active = pods.active.len();
    if finished {
        plan.delete = pods.active.clone();
        active = 0;
    } else {
        let target = terminal_target(&conditions).or_else(|| {
            let target = evaluate(&spec, pods, succeeded, failed, &start_time, now)?;
            let type_ = match target {
                Target::Failure(..) => "FailureTarget",
                Target::Success => "SuccessCriteriaMet",
            };
            let (reason, message) = target.reason_and_message();
            conditions.push(condition(type_, reason, message, now));
            Some(target)
        });
        match target {
            Some(target) => {
                // Remaining pods are stopped: on failure they count as failed, on success they
                // are merely lingering.
                plan.delete = pods.active.clone();
                if matches!(target, Target::Failure(..)) {
                    failed += i32::try_from(active).unwrap_or(i32::MAX);
                }
                active = 0;
                if pods.terminating == 0 {
                    let (reason, message) = target.reason_and_message();
                    match target {
                        Target::Failure(..) => {
                            conditions.push(condition("Failed", reason, message, now));
                            plan.events.push(JobEvent {
                                type_: EventType::Warning,
                                reason: reason.to_owned(),
                                note: message.to_owned(),
                            });
                        }
                        Target::Success => {
                            conditions.push(condition("Complete", reason, message, now));
                            plan.status.completion_time = Some(Time(now));
                            plan.events.push(JobEvent {
                                type_: EventType::Normal,
                                reason: "Completed".to_owned(),
                                note: "Job completed".to_owned(),
                            });
                        }
                    }
                }
            }
            None => {
                let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
                let wanted = match spec.completions {
                    Some(completions) => {
                        let left = usize::try_from(completions - succeeded).unwrap_or(0);
                        parallelism.min(left)
                    }
                    // A work queue: once one pod succeeded, no more are started.
                    None if succeeded > 0 => 0,
                    None => parallelism,
                };
                if wanted > active {
                    plan.create = wanted - active;
                } else {
                    plan.delete = pods.active[wanted..].to_vec();
                    active = wanted;
                }
                if let Some(deadline) = spec.active_deadline_seconds {
                    let ends = start_time.0 + Duration::from_secs(deadline.unsigned_abs());
                    let left = ends.duration_since(now);
                    plan.requeue_after = Some(
                        Duration::try_from(left)
                            .unwrap_or(Duration::ZERO)
                            .max(Duration::from_millis(10)),
                    );
                }
            }
        }
    }

    plan.status.completion_time = plan.status.completion_time.or(old.completion_time);
    plan.status.start_time = Some(start_time);
    plan.status.active = Some(i32::try_from(active).unwrap_or(i32::MAX));
    plan.status.ready = Some(if active == 0 { 0 } else { pods.ready });
    plan.status.terminating = Some(pods.terminating);
    plan.status.succeeded = Some(succeeded);
    plan.status.failed = Some(failed);
    plan.status.conditions = (!conditions.is_empty()).then_some(conditions);
    plan.status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    plan
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Failure(&'static str, &'static str),
    Success,
}

impl Target {
    fn reason_and_message(self) -> (&'static str, &'static str) {
        match self {
            Target::Failure(reason, message) => (reason, message),
            Target::Success => COMPLETIONS_REACHED,
        }
    }
}

/// A terminal outcome decided in an earlier reconcile.
fn terminal_target(conditions: &[JobCondition]) -> Option<Target> {
    if has_condition(conditions, "SuccessCriteriaMet") {
        return Some(Target::Success);
    }
    let failure = conditions
        .iter()
        .find(|c| c.type_ == "FailureTarget" && c.status == "True")?;
    Some(match failure.reason.as_deref() {
        Some("DeadlineExceeded") => Target::Failure(DEADLINE_EXCEEDED.0, DEADLINE_EXCEEDED.1),
        _ => Target::Failure(BACKOFF_LIMIT_EXCEEDED.0, BACKOFF_LIMIT_EXCEEDED.1),
    })
}

fn evaluate(
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    pods: &OwnedPods,
    succeeded: i32,
    failed: i32,
    start_time: &Time,
    now: Timestamp,
) -> Option<Target> {
    let backoff_limit = spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT);
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    // With OnFailure, container restarts inside active pods count against the limit too.
    let past_limit_on_failure = on_failure
        && if backoff_limit == 0 {
            pods.restarts_of_active > 0
        } else {
            pods.restarts_of_active >= backoff_limit
        };
    if failed > backoff_limit || past_limit_on_failure {
        return Some(Target::Failure(
            BACKOFF_LIMIT_EXCEEDED.0,
            BACKOFF_LIMIT_EXCEEDED.1,
        ));
    }
    if let Some(deadline) = spec.active_deadline_seconds {
        let ends = start_time.0 + Duration::from_secs(deadline.unsigned_abs());
        if now >= ends {
            return Some(Target::Failure(DEADLINE_EXCEEDED.0, DEADLINE_EXCEEDED.1));
        }
    }
    let complete = match spec.completions {
        Some(completions) => succeeded >= completions,
        None => succeeded > 0 && pods.active.is_empty(),
    };
    complete.then_some(Target::Success)
}

fn has_condition(conditions: &[JobCondition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spec: serde_json::Value) -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "j", "namespace": "ns", "uid": "u"},
            "spec": spec,
        }))
        .expect("job")
    }

    fn template(policy: &str) -> serde_json::Value {
        serde_json::json!({"spec": {"restartPolicy": policy, "containers": [{"name": "c"}]}})
    }

    fn types(plan: &Plan) -> Vec<String> {
        plan.status
            .conditions
            .iter()
            .flatten()
            .map(|c| format!("{}={}", c.type_, c.reason.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_new_job_starts_one_pod() {
        let plan = plan(
            &job(serde_json::json!({"template": template("Never")})),
            &OwnedPods::default(),
            Timestamp::now(),
        );
        assert_eq!(plan.create, 1);
        assert!(plan.status.start_time.is_some());
        assert_eq!(plan.status.active, Some(0));
    }

    #[test]
    fn parallel_jobs_start_up_to_the_remaining_completions() {
        let j = job(
            serde_json::json!({"template": template("Never"), "completions": 5, "parallelism": 3}),
        );
        let pods = OwnedPods {
            active: vec!["a".into()],
            succeeded: 3,
            ..OwnedPods::default()
        };
        assert_eq!(plan(&j, &pods, Timestamp::now()).create, 1);
    }

    #[test]
    fn exceeding_the_backoff_limit_fails_the_job() {
        let j = job(serde_json::json!({"template": template("Never"), "backoffLimit": 0}));
        let pods = OwnedPods {
            failed: 1,
            ..OwnedPods::default()
        };
        let plan = plan(&j, &pods, Timestamp::now());
        assert_eq!(
            types(&plan),
            vec![
                "FailureTarget=BackoffLimitExceeded",
                "Failed=BackoffLimitExceeded"
            ]
        );
        let failed = plan.status.conditions.as_ref().expect("conditions")[1].clone();
        assert_eq!(
            failed.message.as_deref(),
            Some("Job has reached the specified backoff limit")
        );
        assert_eq!(plan.create, 0);
        assert_eq!(plan.status.failed, Some(1));
        assert_eq!(plan.events[0].reason, "BackoffLimitExceeded");
    }

    #[test]
    fn restarts_count_against_the_limit_with_on_failure() {
        let j = job(serde_json::json!({"template": template("OnFailure"), "backoffLimit": 2}));
        let pods = OwnedPods {
            active: vec!["a".into()],
            restarts_of_active: 2,
            ..OwnedPods::default()
        };
        let plan = plan(&j, &pods, Timestamp::now());
        assert_eq!(plan.delete, vec!["a".to_owned()]);
        assert_eq!(plan.status.failed, Some(1));
        assert!(types(&plan).contains(&"Failed=BackoffLimitExceeded".to_owned()));
    }

    #[test]
    fn the_deadline_kills_active_pods() {
        let mut j =
            job(serde_json::json!({"template": template("Never"), "activeDeadlineSeconds": 1}));
        let start = Timestamp::from_second(1_000).expect("time");
        j.status = Some(JobStatus {
            start_time: Some(Time(start)),
            ..JobStatus::default()
        });
        let pods = OwnedPods {
            active: vec!["a".into()],
            ..OwnedPods::default()
        };
        let early = plan(&j, &pods, start);
        assert_eq!(early.requeue_after, Some(Duration::from_secs(1)));
        assert!(early.delete.is_empty());
        let late = plan(&j, &pods, Timestamp::from_second(1_002).expect("time"));
        assert_eq!(late.delete, vec!["a".to_owned()]);
        assert_eq!(
            types(&late),
            vec!["FailureTarget=DeadlineExceeded", "Failed=DeadlineExceeded"]
        );
        assert_eq!(late.status.active, Some(0));
    }

    #[test]
    fn success_completes_once_nothing_terminates() {
        let j = job(serde_json::json!({"template": template("Never")}));
        let terminating = OwnedPods {
            succeeded: 1,
            terminating: 1,
            ..OwnedPods::default()
        };
        let waiting = plan(&j, &terminating, Timestamp::now());
        assert_eq!(
            types(&waiting),
            vec!["SuccessCriteriaMet=CompletionsReached"]
        );
        let mut j = j;
        j.status = Some(waiting.status);
        let done = plan(
            &j,
            &OwnedPods {
                succeeded: 1,
                ..OwnedPods::default()
            },
            Timestamp::now(),
        );
        assert_eq!(
            types(&done),
            vec![
                "SuccessCriteriaMet=CompletionsReached",
                "Complete=CompletionsReached"
            ]
        );
        assert!(done.status.completion_time.is_some());
        assert_eq!(done.events[0].note, "Job completed");
    }

    #[test]
    fn counts_do_not_drop_when_finished_pods_disappear() {
        let mut j = job(serde_json::json!({"template": template("Never"), "backoffLimit": 3}));
        j.status = Some(JobStatus {
            failed: Some(2),
            ..JobStatus::default()
        });
        let plan = plan(&j, &OwnedPods::default(), Timestamp::now());
        assert_eq!(plan.status.failed, Some(2));
        assert_eq!(plan.create, 1);
    }
}
