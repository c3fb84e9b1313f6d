//! The runner's part of `status`, written by server-side apply on `/status`.
//!
//! Under server-side apply a field manager's apply is its whole intent: a field it owned and
//! leaves out is removed. So every apply carries all of the runner's fields (phase, `job`, its
//! phase timestamps), carried over from the object, and nothing of the provisioner's.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams};
use testcluster_resources::metadata::{GROUP, KIND, VERSION};
use testcluster_resources::{
    JobStatus, Phase, PhaseTimestamps, TestClusterGKE, TestClusterGKEStatus,
};

use crate::error::Error;
use crate::names::FIELD_MANAGER;

/// The fields of `status` the runner owns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunnerStatus {
    pub phase: Option<Phase>,
    pub job: JobStatus,
    pub running_time: Option<Time>,
    pub finish_time: Option<Time>,
}

impl RunnerStatus {
    /// The runner's fields as they are on `resource` now.
    pub fn of(resource: &TestClusterGKE) -> RunnerStatus {
        let status = resource.status.clone().unwrap_or_default();
        let times = status.phase_timestamps.unwrap_or_default();
        let phase = status
            .phase
            .filter(|p| matches!(p, Phase::Running | Phase::Succeeded | Phase::Failed));
        RunnerStatus {
            phase,
            job: status.job.unwrap_or_default(),
            running_time: times.running_time,
            finish_time: times.finish_time,
        }
    }

    fn to_status(&self) -> TestClusterGKEStatus {
        TestClusterGKEStatus {
            phase: self.phase,
            job: Some(self.job.clone()),
            phase_timestamps: Some(PhaseTimestamps {
                running_time: self.running_time.clone(),
                finish_time: self.finish_time.clone(),
                ..PhaseTimestamps::default()
            }),
            ..TestClusterGKEStatus::default()
        }
    }

    /// Applies these fields to the `TestClusterGKE` `name`, forcing ownership (the provisioner
    /// owned `phase` until the run started).
    pub async fn apply(&self, api: &Api<TestClusterGKE>, name: &str) -> Result<(), Error> {
        let patch = serde_json::json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": KIND,
            // The API server requires the name in an apply body, even on a subresource.
            "metadata": {"name": name},
            "status": self.to_status(),
        });
        api.patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_runner_fields_are_sent() {
        let status = RunnerStatus {
            phase: Some(Phase::Running),
            job: JobStatus {
                name: Some("t1-runner".to_owned()),
                ..JobStatus::default()
            },
            ..RunnerStatus::default()
        };
        let json = serde_json::to_value(status.to_status()).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"phase": "Running", "job": {"name": "t1-runner"}, "phaseTimestamps": {}})
        );
    }

    #[test]
    fn provisioner_phases_are_not_carried_over() {
        let mut resource = TestClusterGKE::new("t1", Default::default());
        resource.status = Some(TestClusterGKEStatus {
            phase: Some(Phase::Ready),
            cluster_name: Some("t1-abcde".to_owned()),
            ..TestClusterGKEStatus::default()
        });
        assert_eq!(RunnerStatus::of(&resource).phase, None);
    }
}
