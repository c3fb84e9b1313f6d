//! How a finished Job ended, in the terms of `status.job`: the runner container's exit code, a
//! reason and a message that name the container concerned. Pure, so every case is unit-tested.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use testcluster_resources::job_pod::{ContainerEnd, container_state};

use crate::names;

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

/// The Job's terminal condition (`Complete` or `Failed`, status True), if it has one.
fn terminal_condition(job: &Job) -> Option<(bool, &k8s_openapi::api::batch::v1::JobCondition)> {
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
    let init = pod.and_then(|pod| container_state(pod, names::CONTAINER_INIT));
    let runner = pod.and_then(|pod| container_state(pod, names::CONTAINER_RUNNER));
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
    let init = container_state(pod, names::CONTAINER_INIT);
    let runner = container_state(pod, names::CONTAINER_RUNNER);
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
            "init container \"{}\" exited with code {}",
            names::CONTAINER_INIT,
            terminated.exit_code
        ),
        ContainerEnd::RunnerExited(terminated) => format!(
            "container \"{}\" exited with code {}",
            names::CONTAINER_RUNNER,
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
            "init container \"init\" exited with code 1"
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
}
