//! How a test job ended, or why it could not run, in words: the one place that interprets the
//! job's pod and containers (exit code, OOMKilled, image pull failure, init container failure,
//! start error, missing ConfigMap, deadline, pod or Job deleted).
//!
//! The runner records an [`Outcome`] in `status.job`; logview's `FinalStatus` is that record, or,
//! when the runner has none to give, [`of_pod`] applied to the pod. Both use these functions, so
//! the same state always reads the same. Pure, so every case is unit-tested.

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::job_pod::{CONTAINER_INIT, CONTAINER_RUNNER, ContainerEnd, container_state};

/// The end of one test job.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The runner container exited 0 and the Job is Complete.
    pub succeeded: bool,
    /// Exit code of the runner container, when it ran and terminated.
    pub exit_code: Option<i32>,
    pub reason: String,
    pub message: String,
    /// When the Job finished, as the Job controller recorded it.
    pub completion_time: Option<Time>,
}

impl Outcome {
    /// A failure without an exit code.
    fn failed(reason: &str, message: String) -> Outcome {
        Outcome {
            succeeded: false,
            exit_code: None,
            reason: reason.to_owned(),
            message,
            completion_time: None,
        }
    }
}

/// The Job's terminal condition (`Complete` or `Failed`, status True), if it has one.
fn terminal_condition(job: &Job) -> Option<(bool, &JobCondition)> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some((true, c)),
            "Failed" => Some((false, c)),
            _ => None,
        })
}

/// How `job` ended, or `None` while it has not. `pod` is the Job's pod, when it still exists.
pub fn of(job: &Job, pod: Option<&Pod>) -> Option<Outcome> {
    let (complete, condition) = terminal_condition(job)?;
    let completion_time = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.clone())
        .or_else(|| condition.last_transition_time.clone());
    let job_reason = condition.reason.clone().unwrap_or_default();
    let job_message = condition.message.clone().unwrap_or_default();
    let init = pod.and_then(|pod| container_state(pod, CONTAINER_INIT));
    let runner = pod.and_then(|pod| container_state(pod, CONTAINER_RUNNER));
    let mut outcome = container_outcome(init.as_ref(), runner.as_ref()).unwrap_or(Outcome {
        succeeded: complete,
        // A Complete Job with backoffLimit 0 means its one pod exited 0; its pod may be gone.
        exit_code: complete.then_some(0),
        reason: if complete {
            "Completed".to_owned()
        } else {
            job_reason.clone()
        },
        message: job_message.clone(),
        completion_time: None,
    });
    outcome.succeeded = complete && outcome.exit_code == Some(0);
    outcome.completion_time = completion_time;
    // A deadline ends the Job however its containers were doing; say so first.
    if !complete && job_reason == "DeadlineExceeded" && outcome.reason != job_reason {
        outcome.message = format!("{job_message}; {}", outcome.message);
        outcome.reason = job_reason;
    }
    Some(outcome)
}

/// Why the job's pod cannot start its containers, while the Job itself has not ended.
pub fn start_failure(pod: &Pod) -> Option<Outcome> {
    let init = container_state(pod, CONTAINER_INIT);
    let runner = container_state(pod, CONTAINER_RUNNER);
    match ContainerEnd::of(init.as_ref(), runner.as_ref())? {
        ContainerEnd::CannotStart { .. } => container_outcome(init.as_ref(), runner.as_ref()),
        _ => None,
    }
}

/// What the containers say: an init container failure, the runner's exit, or why the runner
/// never started.
fn container_outcome(
    init: Option<&ContainerState>,
    runner: Option<&ContainerState>,
) -> Option<Outcome> {
    let end = ContainerEnd::of(init, runner)?;
    let summary = match end {
        ContainerEnd::InitFailed(terminated) => format!(
            "init container \"{CONTAINER_INIT}\" failed with exit code {}",
            terminated.exit_code
        ),
        ContainerEnd::RunnerExited(terminated) => format!(
            "container \"{CONTAINER_RUNNER}\" exited with code {}",
            terminated.exit_code
        ),
        ContainerEnd::CannotStart { container, .. } => {
            format!("container \"{container}\" never started: {}", end.reason())
        }
    };
    Some(Outcome {
        succeeded: end.exit_code() == Some(0),
        exit_code: end.exit_code(),
        reason: end.reason(),
        message: end.message(summary),
        completion_time: None,
    })
}

/// What the pod alone says, for a job whose end the runner has not recorded: its containers'
/// end when they have one, else a pod-level reason (Evicted, DeadlineExceeded, ...), else that
/// the runner container still runs or that nothing has started yet.
pub fn of_pod(pod: &Pod) -> Outcome {
    let init = container_state(pod, CONTAINER_INIT);
    let runner = container_state(pod, CONTAINER_RUNNER);
    if let Some(outcome) = container_outcome(init.as_ref(), runner.as_ref()) {
        return outcome;
    }
    let status = pod.status.as_ref();
    if let Some(reason) = status.and_then(|s| s.reason.as_deref()) {
        let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
        return Outcome::failed(reason, message);
    }
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if runner.as_ref().is_some_and(|s| s.running.is_some()) {
        return Outcome::failed(
            "Running",
            format!("container \"{CONTAINER_RUNNER}\" of pod {name} is still running"),
        );
    }
    Outcome::failed(
        "Pending",
        format!("pod {name} has not started its containers yet"),
    )
}

/// The job's pod went away before its containers finished.
pub fn pod_deleted(pod_name: &str) -> Outcome {
    Outcome::failed(
        "PodDeleted",
        format!("pod {pod_name} was deleted before the job finished"),
    )
}

/// The Job went away before it finished.
pub fn job_deleted(job_name: &str) -> Outcome {
    Outcome::failed(
        "JobDeleted",
        format!("Job {job_name} was deleted before it finished"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(condition: &str, reason: &str, message: &str) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "t1-runner"},
            "status": {
                "conditions": [
                    {"type": condition, "status": "True", "reason": reason, "message": message,
                     "lastTransitionTime": "2025-01-01T00:00:10Z"},
                ],
            },
        }))
        .expect("job")
    }

    fn pod(init: Option<serde_json::Value>, runner: serde_json::Value) -> Pod {
        let mut status = json!({"containerStatuses": [{
            "name": "runner", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": runner,
        }]});
        if let Some(init) = init {
            status["initContainerStatuses"] = json!([{
                "name": "init", "image": "init", "imageID": "", "ready": false, "restartCount": 0,
                "state": init,
            }]);
        }
        serde_json::from_value(json!({"metadata": {"name": "t1-runner-x"}, "status": status}))
            .expect("pod")
    }

    fn terminated(code: i32, reason: &str) -> serde_json::Value {
        json!({"terminated": {"exitCode": code, "reason": reason}})
    }

    #[test]
    fn a_running_job_has_no_outcome() {
        let running: Job = serde_json::from_value(json!({"status": {"active": 1}})).expect("job");
        assert_eq!(of(&running, None), None);
    }

    #[test]
    fn exit_zero_succeeds() {
        let job = job(
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
        let outcome = of(&job, Some(&pod(None, terminated(0, "Completed")))).expect("outcome");
        assert!(outcome.succeeded);
        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(outcome.reason, "Completed");
        assert_eq!(outcome.message, "container \"runner\" exited with code 0");
        assert!(outcome.completion_time.is_some());
    }

    #[test]
    fn a_non_zero_exit_fails_with_its_code() {
        let job = job(
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
        let outcome = of(&job, Some(&pod(None, terminated(3, "Error")))).expect("outcome");
        assert!(!outcome.succeeded);
        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(outcome.reason, "Error");
    }

    #[test]
    fn an_init_failure_names_the_init_container() {
        let job = job(
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
        let runner = json!({"waiting": {"reason": "PodInitializing"}});
        let outcome = of(&job, Some(&pod(Some(terminated(1, "Error")), runner))).expect("outcome");
        assert_eq!(outcome.exit_code, None);
        assert_eq!(outcome.reason, "Error");
        assert_eq!(
            outcome.message,
            "init container \"init\" failed with exit code 1"
        );
    }

    #[test]
    fn a_pull_failure_past_the_deadline_says_both() {
        let job = job(
            "Failed",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        );
        let runner = json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"registry.invalid/x\""}});
        let outcome = of(&job, Some(&pod(None, runner))).expect("outcome");
        assert_eq!(outcome.reason, "DeadlineExceeded");
        assert_eq!(
            outcome.message,
            "Job was active longer than specified deadline; container \"runner\" never started: \
             ImagePullBackOff: Back-off pulling image \"registry.invalid/x\""
        );
    }

    #[test]
    fn without_its_pod_the_job_conditions_decide() {
        let failed = job(
            "Failed",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        );
        let outcome = of(&failed, None).expect("outcome");
        assert_eq!(
            (
                outcome.succeeded,
                outcome.exit_code,
                outcome.reason.as_str()
            ),
            (false, None, "DeadlineExceeded")
        );
        let complete = job("Complete", "CompletionsReached", "done");
        let outcome = of(&complete, None).expect("outcome");
        assert_eq!((outcome.succeeded, outcome.exit_code), (true, Some(0)));
    }

    #[test]
    fn a_start_error_keeps_its_code_and_message() {
        let job = job(
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
        let runner = json!({"terminated": {"exitCode": 128, "reason": "StartError",
            "message": "exec: \"nope\": executable file not found in $PATH"}});
        let outcome = of(&job, Some(&pod(None, runner))).expect("outcome");
        assert_eq!(outcome.exit_code, Some(128));
        assert_eq!(outcome.reason, "StartError");
        assert!(
            outcome.message.contains("executable file not found"),
            "{}",
            outcome.message
        );
    }

    #[test]
    fn the_pod_alone_says_why_a_container_never_started() {
        let runner = json!({"waiting": {"reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"registry.invalid/x\""}});
        let outcome = of_pod(&pod(None, runner));
        assert_eq!(outcome.reason, "ImagePullBackOff");
        assert_eq!(
            outcome.message,
            "container \"runner\" never started: ImagePullBackOff: Back-off pulling image \"registry.invalid/x\""
        );
        // The same words the runner records once it gives up.
        assert_eq!(
            start_failure(&pod(
                None,
                json!({"waiting": {"reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"registry.invalid/x\""}})
            )),
            Some(outcome)
        );
    }

    #[test]
    fn the_pod_alone_gives_an_exit_and_its_code() {
        let outcome = of_pod(&pod(None, terminated(137, "OOMKilled")));
        assert_eq!(
            (
                outcome.exit_code,
                outcome.reason.as_str(),
                outcome.message.as_str()
            ),
            (
                Some(137),
                "OOMKilled",
                "container \"runner\" exited with code 137"
            )
        );
    }

    #[test]
    fn a_pod_level_reason_is_given_when_the_containers_say_nothing() {
        let mut evicted = pod(None, json!({"running": {}}));
        let status = evicted.status.as_mut().expect("status");
        status.reason = Some("Evicted".to_owned());
        status.message = Some("The node was low on resource: memory.".to_owned());
        let outcome = of_pod(&evicted);
        assert_eq!(
            (outcome.reason.as_str(), outcome.message.as_str()),
            ("Evicted", "The node was low on resource: memory.")
        );
        let running = of_pod(&pod(None, json!({"running": {}})));
        assert_eq!(running.reason, "Running");
        assert_eq!(
            pod_deleted("t1-runner-x").message,
            "pod t1-runner-x was deleted before the job finished"
        );
    }
}
