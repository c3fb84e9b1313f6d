//! The runner's part of `status`, written by server-side apply on `/status`.
//!
//! Under server-side apply a field manager's apply is its whole intent: a field it owned and
//! leaves out is removed. So every apply carries all of the runner's fields (phase, `job`, its
//! phase timestamps), carried over from the object, and nothing of the provisioner's.
//!
//! The apply is forced (the provisioner owned `phase` until the run started), so ownership
//! alone protects nothing. Every write therefore carries the `resourceVersion` of the object it
//! was decided from: the API server treats it as a precondition and answers 409 when the object
//! changed since ([`Error::Conflict`]). A stale cache, or a second runner replica, can then never
//! move the phase back (Succeeded to Running, or the provisioner's Error or Deleting to Running).
//! And the runner only ever moves a phase on from Ready or Running ([`may_move_from`]).

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

    /// The apply body: these fields, and `base` as the precondition.
    fn body(&self, name: &str, base: &Base) -> serde_json::Value {
        let mut metadata = serde_json::json!({"name": name});
        if let Some(resource_version) = &base.resource_version {
            metadata["resourceVersion"] = resource_version.clone().into();
        }
        serde_json::json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": KIND,
            // The API server requires the name in an apply body, even on a subresource.
            "metadata": metadata,
            "status": self.to_status(),
        })
    }

    /// Applies these fields to the `TestClusterGKE` `name`, forcing ownership (the provisioner
    /// owned `phase` until the run started), on condition that it is still at `base`.
    ///
    /// On success `base` moves on to the object written, so that a second write in the same
    /// reconcile is based on the first. [`Error::Conflict`] when the object changed since `base`
    /// (nothing was written); [`Error::PhaseRegression`] when `base` is in a phase the runner
    /// does not move on from (nothing was sent).
    pub async fn apply(
        &self,
        api: &Api<TestClusterGKE>,
        name: &str,
        base: &mut Base,
    ) -> Result<(), Error> {
        if self.phase != base.phase && !may_move_from(base.phase) {
            return Err(Error::PhaseRegression {
                from: base.phase,
                to: self.phase,
            });
        }
        let patch = self.body(name, base);
        let written = api
            .patch_status(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|error| match error {
                kube::Error::Api(response) if response.code == 409 => {
                    Error::Conflict(response.message)
                }
                error => Error::Kube(error),
            })?;
        *base = Base::of(&written);
        Ok(())
    }
}

/// The version of the object a status write is decided from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Base {
    /// `metadata.resourceVersion`; `None` (no precondition) only for an object that never came
    /// from the API server.
    pub resource_version: Option<String>,
    pub phase: Option<Phase>,
}

impl Base {
    pub fn of(resource: &TestClusterGKE) -> Base {
        Base {
            resource_version: resource.metadata.resource_version.clone(),
            phase: resource.status.as_ref().and_then(|s| s.phase),
        }
    }
}

/// Whether the runner may change the phase of a test cluster in phase `from`: only Ready (to
/// start the job) and Running (to record its end). Every other phase is someone else's, or final.
pub fn may_move_from(from: Option<Phase>) -> bool {
    matches!(from, Some(Phase::Ready | Phase::Running))
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
    fn the_decision_s_resource_version_is_the_precondition() {
        let status = RunnerStatus {
            phase: Some(Phase::Running),
            ..RunnerStatus::default()
        };
        let base = Base {
            resource_version: Some("42".to_owned()),
            phase: Some(Phase::Ready),
        };
        let body = status.body("t1", &base);
        assert_eq!(
            body["metadata"],
            serde_json::json!({"name": "t1", "resourceVersion": "42"})
        );
    }

    #[test]
    fn the_runner_moves_phases_only_from_ready_or_running() {
        assert!(may_move_from(Some(Phase::Ready)));
        assert!(may_move_from(Some(Phase::Running)));
        for phase in [
            None,
            Some(Phase::Pending),
            Some(Phase::Provisioning),
            Some(Phase::Succeeded),
            Some(Phase::Failed),
            Some(Phase::Error),
            Some(Phase::Deleting),
        ] {
            assert!(!may_move_from(phase), "{phase:?}");
        }
    }

    #[tokio::test]
    async fn running_is_never_sent_over_a_final_phase() {
        // No API server: the refusal happens before anything is sent.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let api: Api<TestClusterGKE> = Api::namespaced(client, "ns");
        let status = RunnerStatus {
            phase: Some(Phase::Running),
            ..RunnerStatus::default()
        };
        for phase in [
            Phase::Succeeded,
            Phase::Failed,
            Phase::Error,
            Phase::Deleting,
        ] {
            let mut base = Base {
                resource_version: Some("7".to_owned()),
                phase: Some(phase),
            };
            let refused = status.apply(&api, "t1", &mut base).await;
            assert!(
                matches!(refused, Err(Error::PhaseRegression { .. })),
                "{phase:?}: {refused:?}"
            );
        }
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
