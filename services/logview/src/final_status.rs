//! The last message of every stream: how the job ended, or why it could not run, said plainly
//! and naming the container concerned. Pure functions of the test cluster and its pod: the
//! runner's record in `status.job` when there is one, else the pod's outcome in the words of
//! `testcluster_resources::outcome`, which the runner records too.

use k8s_openapi::api::core::v1::Pod;
use testcluster_api::v1::{self as api, FinalStatus};
use testcluster_resources::outcome::{self, Outcome};
use testcluster_resources::{Phase, TestClusterGKE};

/// The proto phase of a test cluster.
pub fn phase_of(resource: &TestClusterGKE) -> api::Phase {
    resource
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .map_or(api::Phase::Unspecified, api::Phase::from)
}

/// The recorded outcome, once the test cluster reached a terminal phase.
pub fn recorded(resource: &TestClusterGKE) -> Option<FinalStatus> {
    let status = resource.status.as_ref()?;
    let phase = status.phase.filter(|p| p.is_terminal())?;
    let mut final_status = FinalStatus {
        phase: api::Phase::from(phase).into(),
        ..FinalStatus::default()
    };
    if let Some(job) = &status.job {
        final_status.exit_code = job.exit_code;
        final_status.reason = job.reason.clone().unwrap_or_default();
        final_status.message = job.message.clone().unwrap_or_default();
    }
    if phase == Phase::Error
        && let Some(error) = &status.error
    {
        final_status.reason = error.code.clone();
        final_status.message = error.message.clone();
    }
    Some(final_status)
}

/// Why there is no pod to stream (and will be none).
pub fn without_pod(resource: &TestClusterGKE, deleted: bool) -> FinalStatus {
    if let Some(recorded) = recorded(resource) {
        return recorded;
    }
    let (reason, message) = if deleted {
        (
            "TestClusterDeleted",
            format!("test cluster {} was deleted", qualified(resource)),
        )
    } else if !has_job(resource) {
        (
            "NoJob",
            format!("test cluster {} has no job", qualified(resource)),
        )
    } else {
        (
            "NotStarted",
            format!(
                "the job of test cluster {} has not started yet",
                qualified(resource)
            ),
        )
    };
    FinalStatus {
        phase: phase_of(resource).into(),
        exit_code: None,
        reason: reason.to_owned(),
        message,
    }
}

/// Whether the test cluster's spec asks for a job at all.
pub fn has_job(resource: &TestClusterGKE) -> bool {
    resource
        .spec
        .job_spec
        .as_ref()
        .and_then(|j| j.runner.as_ref())
        .is_some()
}

fn qualified(resource: &TestClusterGKE) -> String {
    format!(
        "{}/{}",
        resource.metadata.namespace.as_deref().unwrap_or_default(),
        resource.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Whether the pod will run nothing more.
pub fn pod_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether the test cluster is being deleted.
pub fn deleting(resource: &TestClusterGKE) -> bool {
    resource.status.as_ref().and_then(|s| s.phase) == Some(Phase::Deleting)
        || resource.metadata.deletion_timestamp.is_some()
}

/// Whether the run is over: a terminal phase, or the test cluster is being deleted.
pub fn run_over(resource: &TestClusterGKE) -> bool {
    let terminal = resource
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| p.is_terminal());
    terminal || deleting(resource)
}

/// What the pod says ([`outcome::of_pod`], the runner's words), when the test cluster has not
/// recorded an outcome: `phase` is the test cluster's phase now.
pub fn from_pod(phase: api::Phase, pod: &Pod) -> FinalStatus {
    with_phase(phase, outcome::of_pod(pod))
}

/// The pod went away before its containers finished, and no outcome was recorded.
pub fn pod_deleted(phase: api::Phase, pod_name: &str) -> FinalStatus {
    with_phase(phase, outcome::pod_deleted(pod_name))
}

fn with_phase(phase: api::Phase, outcome: Outcome) -> FinalStatus {
    FinalStatus {
        phase: phase.into(),
        exit_code: outcome.exit_code,
        reason: outcome.reason,
        message: outcome.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(status: serde_json::Value) -> TestClusterGKE {
        serde_json::from_value(json!({
            "apiVersion": "clusters.ci.cilium.io/v1alpha2",
            "kind": "TestClusterGKE",
            "metadata": {"name": "t1", "namespace": "ns"},
            "spec": {"jobSpec": {"runner": {"image": "busybox"}}},
            "status": status,
        }))
        .expect("resource")
    }

    fn pod(init: Option<serde_json::Value>, runner: serde_json::Value) -> Pod {
        let mut status = json!({"phase": "Running", "containerStatuses": [{
            "name": "runner", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": runner,
        }]});
        if let Some(init) = init {
            status["initContainerStatuses"] = json!([{
                "name": "init", "image": "init", "imageID": "", "ready": false, "restartCount": 0,
                "state": init,
            }]);
        }
        serde_json::from_value(json!({"metadata": {"name": "t1-runner-abcde"}, "status": status}))
            .expect("pod")
    }

    #[test]
    fn a_terminal_resource_speaks_for_itself() {
        let done = resource(
            json!({"phase": "Failed", "job": {"exitCode": 3, "reason": "Error", "message": "exited 3"}}),
        );
        let status = recorded(&done).expect("recorded");
        assert_eq!(status.phase, api::Phase::Failed as i32);
        assert_eq!(status.exit_code, Some(3));
        assert_eq!(
            (status.reason.as_str(), status.message.as_str()),
            ("Error", "exited 3")
        );
        assert_eq!(recorded(&resource(json!({"phase": "Running"}))), None);
    }

    #[test]
    fn an_infrastructure_error_gives_its_code() {
        let failed = resource(
            json!({"phase": "Error", "error": {"code": "ZoneStockout", "message": "no capacity"}}),
        );
        let status = without_pod(&failed, false);
        assert_eq!(
            (status.reason.as_str(), status.message.as_str()),
            ("ZoneStockout", "no capacity")
        );
    }

    #[test]
    fn no_pod_says_why() {
        let mut no_job = resource(json!({"phase": "Ready"}));
        no_job.spec.job_spec = None;
        assert_eq!(without_pod(&no_job, false).reason, "NoJob");
        assert_eq!(
            without_pod(&resource(json!({"phase": "Ready"})), true).reason,
            "TestClusterDeleted"
        );
    }

    #[test]
    fn the_pod_speaks_in_the_runners_words_with_the_phase_now() {
        let p = pod(
            Some(json!({"terminated": {"exitCode": 1, "reason": "Error"}})),
            json!({"waiting": {"reason": "PodInitializing"}}),
        );
        let status = from_pod(api::Phase::Running, &p);
        let outcome = outcome::of_pod(&p);
        assert_eq!(status.phase(), api::Phase::Running);
        assert_eq!(
            (status.exit_code, status.reason, status.message),
            (outcome.exit_code, outcome.reason, outcome.message)
        );
        let gone = pod_deleted(api::Phase::Failed, "t1-runner-abcde");
        assert_eq!(gone.reason, "PodDeleted");
        assert_eq!(gone.phase(), api::Phase::Failed);
    }

    #[test]
    fn a_deleted_or_terminal_run_is_over() {
        assert!(!run_over(&resource(json!({"phase": "Running"}))));
        assert!(run_over(&resource(json!({"phase": "Failed"}))));
        assert!(run_over(&resource(json!({"phase": "Deleting"}))));
    }
}
