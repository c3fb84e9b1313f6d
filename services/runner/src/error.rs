//! What can go wrong in a reconcile, and what it means for the retry.

use tonic::Code;

/// A reconcile failure. Every variant is retried by `error_policy` with back-off; the name
/// returned by [`Error::kind`] labels it in logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid provisioner endpoint {endpoint:?}: {source}")]
    ProvisionerEndpoint {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// The provisioner could not be reached, or asked to come back later.
    #[error("provisioner unavailable: {}", .0.message())]
    ProvisionerUnavailable(tonic::Status),
    /// The provisioner answered, but refused (for instance, the cluster is not ready there yet).
    #[error("provisioner refused cluster access ({:?}): {}", .0.code(), .0.message())]
    AccessRefused(tonic::Status),
    #[error("provisioner returned an empty kubeconfig")]
    EmptyAccess,
    #[error("the TestClusterGKE has no namespace")]
    MissingNamespace,
    #[error("the TestClusterGKE has no uid")]
    MissingUid,
    /// A Job with the deterministic name exists but belongs to another object (an earlier
    /// TestClusterGKE of the same name, still being garbage-collected).
    #[error("Job {0} exists but is not owned by this TestClusterGKE")]
    ForeignJob(String),
    /// A status write was refused because the object changed since the version it was decided
    /// from (409): re-read and decide again.
    #[error("the TestClusterGKE changed since it was read: {0}")]
    Conflict(String),
    /// A status write would move the phase on from one the runner does not own (a final phase,
    /// Error, Deleting): refused before it was sent.
    #[error("refusing to move phase {from:?} to {to:?}")]
    PhaseRegression {
        from: Option<testcluster_resources::Phase>,
        to: Option<testcluster_resources::Phase>,
    },
    #[error("encoding an object: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Error {
    /// Classifies a failed `GetClusterAccess`: transport-level and transient codes are
    /// "unavailable", the rest a refusal. Both are retried; the split is for operators.
    pub fn from_access_status(status: tonic::Status) -> Error {
        match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::ResourceExhausted => Error::ProvisionerUnavailable(status),
            _ => Error::AccessRefused(status),
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::ProvisionerEndpoint { .. } => "provisioner_endpoint",
            Error::ProvisionerUnavailable(_) => "provisioner_unavailable",
            Error::AccessRefused(_) => "access_refused",
            Error::EmptyAccess => "empty_access",
            Error::MissingNamespace => "missing_namespace",
            Error::MissingUid => "missing_uid",
            Error::ForeignJob(_) => "foreign_job",
            Error::Conflict(_) => "conflict",
            Error::PhaseRegression { .. } => "phase_regression",
            Error::Encode(_) => "encode",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_statuses_are_classified() {
        let unavailable = Error::from_access_status(tonic::Status::unavailable("down"));
        assert_eq!(unavailable.kind(), "provisioner_unavailable");
        let refused = Error::from_access_status(tonic::Status::failed_precondition("not ready"));
        assert_eq!(refused.kind(), "access_refused");
        assert_eq!(
            refused.to_string(),
            "provisioner refused cluster access (FailedPrecondition): not ready"
        );
    }
}
