//! The pod of a test cluster's job (docs/lifecycle.md), as the runner and logview both read it: its
//! two containers, and what their states say about how the job ended.
//!
//! This module says what happened; [`crate::outcome`] puts it in the words that the runner records
//! in `status.job` and logview reports in a stream's `FinalStatus`.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStateWaiting, Pod,
};

/// Name of the optional init container (`spec.jobSpec.runner.initImage`).
pub const CONTAINER_INIT: &str = "init";
/// Name of the container that runs the tests.
pub const CONTAINER_RUNNER: &str = "runner";
/// Label the Job controller puts on a Job's pods.
pub const LABEL_JOB_NAME: &str = "job-name";

/// The Job of test cluster `name`.
pub fn job_name(name: &str) -> String {
    format!("{name}-runner")
}

/// Key of the kubeconfig in a test cluster's credentials Secret.
pub const KUBECONFIG_KEY: &str = "kubeconfig";

/// The Secret holding the kubeconfig for test cluster `name`: written by the provisioner when the
/// cluster becomes ready, mounted into the job's pod by the runner.
pub fn kubeconfig_secret(name: &str) -> String {
    format!("{name}-kubeconfig")
}

/// Waiting reasons on the way to a normal start; any other waiting reason is a failure to start.
const STARTING: &[&str] = &["", "ContainerCreating", "PodInitializing"];

/// The state of the container `name` of `pod`, among its init containers and its containers.
pub fn container_state(pod: &Pod, name: &str) -> Option<ContainerState> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .and_then(|c| c.state.clone())
}

/// A waiting state that is a failure to start (pull error, missing ConfigMap, ...).
pub fn start_failure(state: &ContainerState) -> Option<&ContainerStateWaiting> {
    let waiting = state.waiting.as_ref()?;
    (!STARTING.contains(&waiting.reason.as_deref().unwrap_or_default())).then_some(waiting)
}

/// What the job's containers say about its end, most telling first.
#[derive(Clone, Copy, Debug)]
pub enum ContainerEnd<'a> {
    /// The init container exited non-zero, so the runner container never ran.
    InitFailed(&'a ContainerStateTerminated),
    /// The runner container exited.
    RunnerExited(&'a ContainerStateTerminated),
    /// `container` cannot start (see [`start_failure`]).
    CannotStart {
        container: &'static str,
        waiting: &'a ContainerStateWaiting,
    },
}

impl<'a> ContainerEnd<'a> {
    /// Reads the states of the init and runner containers; `None` while they say nothing final
    /// (still starting or running, or unknown).
    pub fn of(
        init: Option<&'a ContainerState>,
        runner: Option<&'a ContainerState>,
    ) -> Option<Self> {
        if let Some(terminated) = init.and_then(|s| s.terminated.as_ref())
            && terminated.exit_code != 0
        {
            return Some(ContainerEnd::InitFailed(terminated));
        }
        if let Some(terminated) = runner.and_then(|s| s.terminated.as_ref()) {
            return Some(ContainerEnd::RunnerExited(terminated));
        }
        [(CONTAINER_INIT, init), (CONTAINER_RUNNER, runner)]
            .into_iter()
            .find_map(|(container, state)| {
                let waiting = start_failure(state?)?;
                Some(ContainerEnd::CannotStart { container, waiting })
            })
    }

    /// The runner container's exit code, when it ran and exited.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ContainerEnd::RunnerExited(terminated) => Some(terminated.exit_code),
            _ => None,
        }
    }

    /// The kubelet's reason, or, when it gave none, `Completed` for exit 0 and `Error` otherwise.
    pub fn reason(&self) -> String {
        match self {
            ContainerEnd::InitFailed(terminated) | ContainerEnd::RunnerExited(terminated) => {
                terminated.reason.clone().unwrap_or_else(|| {
                    if terminated.exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .to_owned()
                })
            }
            ContainerEnd::CannotStart { waiting, .. } => waiting.reason.clone().unwrap_or_default(),
        }
    }

    /// `summary`, followed by the kubelet's message when it has one.
    pub fn message(&self, summary: String) -> String {
        let detail = match self {
            ContainerEnd::InitFailed(terminated) | ContainerEnd::RunnerExited(terminated) => {
                terminated.message.as_deref()
            }
            ContainerEnd::CannotStart { waiting, .. } => waiting.message.as_deref(),
        };
        match detail.map(str::trim) {
            Some(detail) if !detail.is_empty() => format!("{summary}: {detail}"),
            _ => summary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(value: serde_json::Value) -> ContainerState {
        serde_json::from_value(value).expect("state")
    }

    #[test]
    fn starting_is_not_a_failure() {
        assert!(start_failure(&state(json!({"waiting": {"reason": "PodInitializing"}}))).is_none());
        assert!(start_failure(&state(json!({"waiting": {}}))).is_none());
        let failing = state(json!({"waiting": {"reason": "CreateContainerConfigError"}}));
        assert!(start_failure(&failing).is_some());
    }

    #[test]
    fn a_failed_init_container_comes_first() {
        let init = state(json!({"terminated": {"exitCode": 1, "message": " oops\n"}}));
        let runner = state(json!({"waiting": {"reason": "ImagePullBackOff"}}));
        let end = ContainerEnd::of(Some(&init), Some(&runner)).expect("end");
        assert!(matches!(end, ContainerEnd::InitFailed(_)));
        assert_eq!((end.exit_code(), end.reason().as_str()), (None, "Error"));
        assert_eq!(end.message("failed".to_owned()), "failed: oops");
    }

    #[test]
    fn a_runner_exit_gives_its_code() {
        let init = state(json!({"terminated": {"exitCode": 0}}));
        let runner = state(json!({"terminated": {"exitCode": 0}}));
        let end = ContainerEnd::of(Some(&init), Some(&runner)).expect("end");
        assert_eq!(
            (end.exit_code(), end.reason().as_str()),
            (Some(0), "Completed")
        );
        assert_eq!(end.message("exited".to_owned()), "exited");
    }

    #[test]
    fn a_container_that_cannot_start_is_named() {
        let runner =
            state(json!({"waiting": {"reason": "ErrImagePull", "message": "no such image"}}));
        let end = ContainerEnd::of(None, Some(&runner)).expect("end");
        assert!(matches!(
            end,
            ContainerEnd::CannotStart {
                container: CONTAINER_RUNNER,
                ..
            }
        ));
        assert_eq!(end.reason(), "ErrImagePull");
        assert!(ContainerEnd::of(None, Some(&state(json!({"running": {}})))).is_none());
    }
}
