//! The `TestClusterGKE` resource and its spec, exactly as the seed's.
//!
//! Every spec field is optional, as in the seed (Go pointers with
//! `omitempty`): an unset field takes the CRD schema default (configTemplate,
//! nodes, machineType) or the provisioner's configuration (project, location).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::TestClusterGKEStatus;

/// A request for a dedicated GKE test cluster, optionally with a test job run
/// against it once it is ready.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "clusters.ci.cilium.io",
    version = "v1alpha2",
    kind = "TestClusterGKE",
    plural = "testclustersgke",
    shortname = "tcg",
    shortname = "tcgke",
    namespaced,
    status = "TestClusterGKEStatus",
    derive = "PartialEq",
    doc = "TestClusterGKE requests a dedicated GKE test cluster and, optionally, a test job run against it.",
    // Columns as raw JSON: the structured form repeats `type_ = "string"`,
    // which clippy reports as duplicated attributes.
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Zone","type":"string","jsonPath":".status.location"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".status.clusterName","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TestClusterGKESpec {
    /// Project is the name of the GCP project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// ConfigTemplate is the name of the configuration template to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "basic"))]
    pub config_template: Option<String>,
    /// Location is a GCP zone or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Region is a GCP region (derived from location when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// KubernetesVersion is the version of Kubernetes to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// JobSpec is the specification of the test job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_spec: Option<JobSpec>,
    /// MachineType is the GCP machine type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "n1-standard-4"))]
    pub machine_type: Option<String>,
    /// Nodes is the number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 2))]
    pub nodes: Option<i32>,
    /// Ttl is the longest the cluster may live, job or not, such as `2h` or `90m`; at expiry its
    /// cloud resources are deleted (phase Expired). Unset: the operator's default; longer than the
    /// operator's maximum: that maximum. `ExtendTestCluster` (`tcctl extend`) prolongs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// HoldOnFailure keeps a failed run's cluster this long after the job failed, such as `30m`,
    /// so that a person can get in (`tcctl kubeconfig`). Unset: no hold; longer than the
    /// operator's maximum: that maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_on_failure: Option<String>,
}

/// The specification of the test job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// Runner specifies the container that drives the tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<JobRunnerSpec>,
    /// ImagesToTest is a set of application images that will be tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_to_test: Option<BTreeMap<String, String>>,
    /// Deadline is how long the job may run before it is failed (`DeadlineExceeded`), such as
    /// `45m`: the Job's `activeDeadlineSeconds`. Unset: the operator's default; longer than the
    /// operator's maximum: that maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

/// The specification of the test job's runner container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRunnerSpec {
    /// Image that will drive the tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Command that will be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// InitImage specifies the image used in the init container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_image: Option<String>,
    /// Env specifies environment variables for the runner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// ConfigMap is the name of the runner's ConfigMap (key `init-manifest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
}
