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
    /// When the cluster will be deleted regardless of its job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
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
}

impl Phase {
    /// Whether the run is over (the cloud resources are then deleted).
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Error)
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
    /// Entered Succeeded, Failed or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// Entered Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting_time: Option<Time>,
}
