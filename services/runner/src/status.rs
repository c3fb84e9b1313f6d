//! The runner's part of `status`: `job`, `jobConditions` and `installConditions`, written by server-side apply on
//! `/status`. The phase is not the runner's: the provisioner derives it from these fields
//! (`testcluster_resources::lifecycle`).
//!
//! Under server-side apply a field manager's apply is its whole intent: a field it owned and
//! leaves out is removed. So every apply carries all of the runner's fields, carried over from the
//! object it was decided from, and that object's `resourceVersion` as a precondition: a decision
//! made on a stale cache (one that has not seen the runner's own last write yet) is refused with a
//! 409 ([`Error::Conflict`]) instead of dropping what that write recorded.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams};
use testcluster_resources::lifecycle;
use testcluster_resources::metadata::{
    CONDITION_JOB_COMPLETE, CONDITION_JOB_FAILED, GROUP, KIND, VERSION,
};
use testcluster_resources::outcome::Outcome;
use testcluster_resources::{Condition, JobStatus, TestClusterGKE, TestClusterGKEStatus};

use crate::error::Error;
use crate::names::FIELD_MANAGER;

/// The fields of `status` the runner owns, and the version of the object they were read from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunnerStatus {
    pub job: JobStatus,
    pub job_conditions: Vec<Condition>,
    /// What was installed into the test cluster ([`crate::install`]).
    pub install_conditions: Vec<Condition>,
    /// `metadata.resourceVersion` the next write is conditional on; `None` (no precondition) only
    /// for an object that never came from the API server.
    resource_version: Option<String>,
}

impl RunnerStatus {
    /// The runner's fields as they are on `resource` now.
    pub fn of(resource: &TestClusterGKE) -> RunnerStatus {
        let status = resource.status.clone().unwrap_or_default();
        RunnerStatus {
            job: status.job.unwrap_or_default(),
            job_conditions: status.job_conditions,
            install_conditions: status.install_conditions,
            resource_version: resource.metadata.resource_version.clone(),
        }
    }

    /// Whether the job has ended (the runner's last word on this run).
    pub fn is_finished(&self) -> bool {
        lifecycle::job_outcome(&self.job_conditions).is_some()
    }

    /// Records `outcome`: `job.*` and the `Complete` or `Failed` condition.
    pub fn finish(&mut self, outcome: &Outcome, now: &Time) {
        self.job.exit_code = outcome.exit_code;
        self.job.reason = Some(outcome.reason.clone());
        self.job.message = Some(outcome.message.clone());
        self.job.completion_time = Some(outcome.completion_time.clone().unwrap_or(now.clone()));
        let type_ = if outcome.succeeded {
            CONDITION_JOB_COMPLETE
        } else {
            CONDITION_JOB_FAILED
        };
        self.job_conditions = vec![Condition {
            type_: type_.to_owned(),
            status: "True".to_owned(),
            last_transition_time: Some(now.clone()),
            reason: outcome.reason.clone(),
            message: outcome.message.clone(),
        }];
    }

    /// The apply body: these fields, and the precondition.
    fn body(&self, name: &str) -> serde_json::Value {
        let mut metadata = serde_json::json!({"name": name});
        if let Some(resource_version) = &self.resource_version {
            metadata["resourceVersion"] = resource_version.clone().into();
        }
        serde_json::json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": KIND,
            // The API server requires the name in an apply body, even on a subresource.
            "metadata": metadata,
            "status": TestClusterGKEStatus {
                job: Some(self.job.clone()),
                job_conditions: self.job_conditions.clone(),
                install_conditions: self.install_conditions.clone(),
                ..TestClusterGKEStatus::default()
            },
        })
    }

    /// Applies these fields to the `TestClusterGKE` `name`, on condition that it is still at the
    /// version they were read from; afterwards the precondition is the version written, so a
    /// second write in the same reconcile builds on the first. [`Error::Conflict`] when the
    /// object changed meanwhile (nothing was written).
    pub async fn apply(&mut self, api: &Api<TestClusterGKE>, name: &str) -> Result<(), Error> {
        let written = api
            .patch_status(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&self.body(name)),
            )
            .await
            .map_err(|error| match error {
                kube::Error::Api(response) if response.code == 409 => {
                    Error::Conflict(response.message)
                }
                error => Error::Kube(error),
            })?;
        self.resource_version = written.metadata.resource_version;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testcluster_resources::Phase;

    #[test]
    fn only_runner_fields_are_sent_with_the_precondition() {
        let mut resource = TestClusterGKE::new("t1", Default::default());
        resource.metadata.resource_version = Some("42".to_owned());
        resource.status = Some(TestClusterGKEStatus {
            phase: Some(Phase::Running),
            cluster_name: Some("t1-abcde".to_owned()),
            job: Some(JobStatus {
                name: Some("t1-runner".to_owned()),
                ..JobStatus::default()
            }),
            ..TestClusterGKEStatus::default()
        });
        let body = RunnerStatus::of(&resource).body("t1");
        assert_eq!(
            body["metadata"],
            serde_json::json!({"name": "t1", "resourceVersion": "42"})
        );
        assert_eq!(
            body["status"],
            serde_json::json!({"job": {"name": "t1-runner"}}),
            "no phase, no cluster name"
        );
    }

    #[test]
    fn a_finished_job_has_exactly_one_terminal_condition() {
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let mut status = RunnerStatus::default();
        assert!(!status.is_finished());
        let failed = Outcome {
            succeeded: false,
            exit_code: Some(3),
            reason: "Error".to_owned(),
            message: "runner exited 3".to_owned(),
            completion_time: None,
        };
        status.finish(&failed, &now);
        assert!(status.is_finished());
        assert_eq!(lifecycle::job_outcome(&status.job_conditions), Some(false));
        assert_eq!(status.job_conditions.len(), 1);
        assert_eq!(status.job_conditions[0].reason, "Error");
        assert_eq!(status.job.exit_code, Some(3));
        assert_eq!(status.job.completion_time, Some(now));
    }
}
