//! The `TestClusterGKE` custom resource (`clusters.ci.cilium.io/v1alpha2`).
//!
//! The spec is the seed operator's, field for field, so its manifests apply
//! unchanged; the status keeps the seed's shape (`clusterName`, `conditions`,
//! `dependencyConditions`) and adds the phase, the job's outcome and more.
//!
//! - [`spec`]: [`TestClusterGKE`] and its spec types.
//! - [`status`]: the status types.
//! - [`lifecycle`]: the phase transition table; which phase follows from which facts.
//! - [`lifetime`]: TTL, hold and job deadline, and when a cluster's cloud resources go.
//! - [`metadata`]: the seed's labels and annotations, and defaults.
//! - [`crd`]: the CustomResourceDefinition as YAML (see the `crdgen` binary).
//! - [`convert`]: conversions to and from the gRPC API (`testcluster_api::v1`).
//! - [`job_pod`]: the test job's pod, and how its containers say the job ended.
//! - [`outcome`]: that end in words, as the runner records it and logview reports it.
//! - [`object_names`]: Kubernetes' rules for namespace and object names.
//! - [`validation`]: validation, defaulting and input limits of requests and objects, with field
//!   paths in the request's or the object's names.

pub mod convert;
pub mod crd;
pub mod job_pod;
pub mod lifecycle;
pub mod lifetime;
pub mod metadata;
pub mod object_names;
pub mod outcome;
pub mod spec;
pub mod status;
pub mod validation;

pub use spec::{JobRunnerSpec, JobSpec, TestClusterGKE, TestClusterGKESpec};
pub use status::{
    Condition, ErrorStatus, JobStatus, Phase, PhaseTimestamps, RunRecord, TestClusterGKEStatus,
};
