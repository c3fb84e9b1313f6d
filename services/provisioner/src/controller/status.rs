//! The provisioner's part of `status`, written by server-side apply on `/status`.
//!
//! The provisioner owns everything in `status` but the runner's `job` and `jobConditions`, and it
//! is the only writer of `phase` and `phaseTimestamps`: the phase always comes from
//! [`lifecycle::advance`], fed with the provisioner's own facts and the runner's (read from the
//! object). Under server-side apply a manager's apply is its whole intent, so every write carries
//! all of these fields, carried over from the object where nothing changed.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource as _, ResourceExt as _};
use serde::Serialize;
use serde_json::json;
use testcluster_resources::lifecycle::{self, Facts};
use testcluster_resources::metadata::{GROUP, KIND, VERSION};
use testcluster_resources::{
    Condition, ErrorStatus, Phase, PhaseTimestamps, RunRecord, TestClusterGKE, TestClusterGKEStatus,
};

use super::error::Error;
use super::expiry;
use super::{Context, FIELD_MANAGER};

/// The fields of `status` the provisioner owns.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProvisionerStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dependency_conditions: BTreeMap<String, Vec<Condition>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "is_empty")]
    pub phase_timestamps: PhaseTimestamps,
    /// Computed by [`write_status`] from the phase and its times (`lifetime::Lifetimes::expiry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Written once, with the write that ends the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RunRecord>,
}

fn is_empty(times: &PhaseTimestamps) -> bool {
    *times == PhaseTimestamps::default()
}

impl ProvisionerStatus {
    /// The provisioner's share of `status` as it is now.
    pub fn from_current(status: &TestClusterGKEStatus) -> ProvisionerStatus {
        ProvisionerStatus {
            cluster_name: status.cluster_name.clone(),
            phase: status.phase,
            location: status.location.clone(),
            conditions: status.conditions.clone(),
            dependency_conditions: status.dependency_conditions.clone(),
            error: status.error.clone(),
            observed_generation: status.observed_generation,
            phase_timestamps: status.phase_timestamps.clone().unwrap_or_default(),
            expires_at: status.expires_at.clone(),
            record: status.record.clone(),
        }
    }

    /// Moves the phase on by `facts`, to which this status adds its own (a cluster name means
    /// accepted, an error means the infrastructure failed), and records when a phase was entered.
    pub fn advance(&mut self, mut facts: Facts, now: &Time) {
        facts.accepted |= self.cluster_name.is_some();
        facts.infrastructure_failed |= self.error.is_some();
        self.phase = lifecycle::advance(self.phase, facts, &mut self.phase_timestamps, now);
    }
}

/// Writes the provisioner's status if it differs from the current one. The resourceVersion the
/// decision was based on is a precondition: a decision made on a stale cache (facts the phase has
/// moved past) fails with a conflict, and the reconcile runs again on fresh data.
pub(super) async fn write_status(
    tc: &TestClusterGKE,
    context: &Context,
    desired: &ProvisionerStatus,
) -> Result<bool, Error> {
    let current = ProvisionerStatus::from_current(&tc.status.clone().unwrap_or_default());
    let mut desired = desired.clone();
    let expiry = expiry::of(tc, &context.settings.lifetimes, &desired);
    if desired.record.is_none() && desired.phase.is_some_and(Phase::is_terminal) {
        desired.record = Some(RunRecord::of(&tc.spec, &desired.phase_timestamps));
    }
    desired.expires_at = expiry.map(|expiry| Time(expiry.at));
    // Compare encoded forms: times are written with second precision, so a value straight from
    // another object may differ from its own round trip, which would otherwise write forever.
    if serde_json::to_value(&current)? == serde_json::to_value(&desired)? {
        return Ok(false);
    }
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let name = tc.name_any();
    let api: Api<TestClusterGKE> = Api::namespaced(context.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {"name": name, "resourceVersion": tc.meta().resource_version},
        "status": &desired,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    context.status_writes.wrote(
        &testcluster_resources::metadata::object_key(tc),
        tc.resource_version().as_deref(),
    );
    if current.phase != desired.phase
        && let Some(phase) = desired.phase.filter(|p| p.is_terminal())
    {
        context.runs.finished(tc, phase);
    }
    if let Some(expiry) = expiry {
        expiry::publish_change(tc, context, &current, &desired, expiry).await;
    }
    Ok(true)
}

pub(super) fn now() -> Time {
    Time(Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_s_fields_are_never_sent() {
        let status = TestClusterGKEStatus {
            phase: Some(Phase::Running),
            cluster_name: Some("c-abcde".into()),
            job: Some(testcluster_resources::JobStatus {
                name: Some("c-runner".into()),
                ..Default::default()
            }),
            job_conditions: vec![Condition {
                type_: "Complete".into(),
                status: "True".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mine = ProvisionerStatus::from_current(&status);
        let encoded = serde_json::to_value(&mine).unwrap_or_default();
        assert_eq!(
            encoded,
            json!({"clusterName": "c-abcde", "phase": "Running"}),
            "no job, no jobConditions"
        );
    }

    #[test]
    fn the_runner_s_facts_move_the_phase() {
        let now = now();
        let status = TestClusterGKEStatus {
            phase: Some(Phase::Running),
            cluster_name: Some("c-abcde".into()),
            job_conditions: vec![Condition {
                type_: "Failed".into(),
                status: "True".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut mine = ProvisionerStatus::from_current(&status);
        mine.advance(Facts::of_job(&status), &now);
        assert_eq!(mine.phase, Some(Phase::Failed));
        assert_eq!(mine.phase_timestamps.finish_time, Some(now.clone()));

        // An error recorded before the cluster was ready ends the run.
        let mut provisioning = ProvisionerStatus {
            phase: Some(Phase::Provisioning),
            cluster_name: Some("c-abcde".into()),
            error: Some(ErrorStatus::default()),
            ..Default::default()
        };
        provisioning.advance(Facts::default(), &now);
        assert_eq!(provisioning.phase, Some(Phase::Error));
    }
}
