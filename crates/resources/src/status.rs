//! The status of a `TestClusterGKE`: the seed's shape (`clusterName`,
//! `conditions`, `dependencyConditions`) plus this project's additions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a `TestClusterGKE`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestClusterGKEStatus {
    /// Conditions of the test cluster itself (Ready).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Conditions of each dependency, keyed `<Kind>:<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependency_conditions: BTreeMap<String, Vec<Condition>>,
    /// Name of the cloud cluster: the object's name, `-` and 5 random characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The location actually used (may differ from spec.location after a zone fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Conditions of the test job (runner): `Complete` or `Failed` True once it ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_conditions: Vec<Condition>,
    /// Conditions of what the runner installs into the test cluster before the job (runner):
    /// `MetricsStackInstalled`, and `InitManifestApplied` when the job's ConfigMap has an
    /// `init-manifest`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub install_conditions: Vec<Condition>,
    /// The test job, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobStatus>,
    /// Why the infrastructure gave up (phase Error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorStatus>,
    /// The metadata.generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When each phase was entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_timestamps: Option<PhaseTimestamps>,
    /// Where a human can read the job's logs.
    #[serde(default, rename = "logsURL", skip_serializing_if = "Option::is_none")]
    pub logs_url: Option<String>,
    /// When the cluster's cloud resources go (or went): the TTL's end while the run is on, the
    /// hold's end after a held failure, the run's end otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// The run's record, once it ended: what it ran on and how long each phase took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RunRecord>,
}

/// What a finished run ran on and how long each of its phases took (the provisioner writes it when
/// the run ends; `location` and `job` say where it ran and how the job ended).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// The template rendered (`spec.configTemplate`, or its default).
    pub template: String,
    /// The Kubernetes version asked for; unset: the release channel's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Whole seconds spent in each phase the run went through, by phase (Pending, Provisioning,
    /// Ready, Running).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phase_seconds: BTreeMap<String, i64>,
}

impl RunRecord {
    /// The record of a run of `spec` whose phases were entered at `times`.
    pub fn of(spec: &crate::TestClusterGKESpec, times: &PhaseTimestamps) -> RunRecord {
        let entered = [
            ("Pending", &times.pending_time),
            ("Provisioning", &times.provisioning_time),
            ("Ready", &times.ready_time),
            ("Running", &times.running_time),
            ("Finished", &times.finish_time),
        ];
        let entered: Vec<(&str, &Time)> = entered
            .iter()
            .filter_map(|(phase, time)| Some((*phase, time.as_ref()?)))
            .collect();
        let phase_seconds = entered
            .windows(2)
            .map(|pair| {
                let ((phase, from), (_, to)) = (pair[0], pair[1]);
                (
                    phase.to_owned(),
                    (to.0.as_second() - from.0.as_second()).max(0),
                )
            })
            .collect();
        RunRecord {
            template: spec
                .config_template
                .clone()
                .unwrap_or_else(|| crate::metadata::DEFAULT_CONFIG_TEMPLATE.to_owned()),
            kubernetes_version: spec.kubernetes_version.clone(),
            phase_seconds,
        }
    }
}

/// A condition as the seed writes it, and as Config Connector reports its
/// objects' (so dependency conditions are copied as they are).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, such as Ready.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Machine-readable reason, such as AllDependenciesReady.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Where a test cluster is in its lifecycle:
/// Pending → Provisioning → Ready → Running → Succeeded | Failed, or Error
/// (infrastructure gave up), and Deleting.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted, not yet being provisioned.
    Pending,
    /// Cloud resources are being created.
    Provisioning,
    /// The cluster is ready; no job is running on it (yet).
    Ready,
    /// The test job is running.
    Running,
    /// The test job exited 0.
    Succeeded,
    /// The test job failed.
    Failed,
    /// The infrastructure gave up; see status.error.
    Error,
    /// The cluster and its cloud resources are being deleted.
    Deleting,
    /// The cluster's TTL ended before its run did; its cloud resources are deleted.
    Expired,
}

impl Phase {
    /// Whether the run is over (the cloud resources are then deleted).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::Failed | Phase::Error | Phase::Expired
        )
    }
}

/// The test job's state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Name of the Kubernetes Job in the management cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Name of the pod that ran (or runs) the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Exit code of the runner container, once it terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Machine-readable reason for the outcome, such as Completed or ImagePullBackOff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail of the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the job started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

/// A classified infrastructure failure.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorStatus {
    /// Machine-readable code: ZoneStockout, QuotaExceeded, PermissionDenied or ProvisioningTimeout.
    pub code: String,
    /// Human-readable message, as reported by the cloud where possible.
    #[serde(default)]
    pub message: String,
    /// Whether trying again (later, or elsewhere) may succeed.
    #[serde(default)]
    pub retryable: bool,
}

/// When each phase was entered.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseTimestamps {
    /// Entered Pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_time: Option<Time>,
    /// Entered Provisioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_time: Option<Time>,
    /// Entered Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_time: Option<Time>,
    /// Entered Running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_time: Option<Time>,
    /// Entered Succeeded, Failed, Error or Expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// Entered Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_time: Option<Time>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_says_how_long_each_phase_took() {
        let at = |s| {
            Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(s).unwrap_or_default(),
            ))
        };
        let times = PhaseTimestamps {
            pending_time: at(100),
            provisioning_time: at(101),
            ready_time: at(131),
            running_time: at(132),
            finish_time: at(192),
            deleting_time: None,
        };
        let spec = crate::TestClusterGKESpec {
            kubernetes_version: Some("1.33".to_owned()),
            ..Default::default()
        };
        let record = RunRecord::of(&spec, &times);
        assert_eq!(record.template, "basic");
        assert_eq!(record.kubernetes_version.as_deref(), Some("1.33"));
        assert_eq!(
            record.phase_seconds,
            BTreeMap::from([
                ("Pending".to_owned(), 1),
                ("Provisioning".to_owned(), 30),
                ("Ready".to_owned(), 1),
                ("Running".to_owned(), 60),
            ])
        );
        // A run that never got to run (an infrastructure error) went through fewer phases.
        let failed = PhaseTimestamps {
            ready_time: None,
            running_time: None,
            ..times
        };
        let record = RunRecord::of(&spec, &failed);
        assert_eq!(
            record.phase_seconds,
            BTreeMap::from([("Pending".to_owned(), 1), ("Provisioning".to_owned(), 91)])
        );
    }
}
