//! What can go wrong in a reconcile, and what it means for the retry.

/// A reconcile failure. Every variant is retried by `error_policy` with back-off; the name
/// returned by [`Error::kind`] labels it in logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the TestClusterGKE has no namespace")]
    MissingNamespace,
    #[error("the TestClusterGKE has no uid")]
    MissingUid,
    /// A Job with the deterministic name exists but belongs to another object (an earlier
    /// TestClusterGKE of the same name, still being garbage-collected).
    #[error("Job {0} exists but is not owned by this TestClusterGKE")]
    ForeignJob(String),
    /// A status write was refused because the object changed since the version it was decided
    /// from (409): decide again on the newer object, which the watch brings.
    #[error("the TestClusterGKE changed since it was read: {0}")]
    Conflict(String),
    #[error("encoding an object: {0}")]
    Encode(#[from] serde_json::Error),
    /// Installing into the test cluster failed in a way that may pass.
    #[error("installing into the test cluster: {0}")]
    Install(String),
    /// A job was to be created for a test cluster without one (a bug, not an input).
    #[error("the TestClusterGKE has no job")]
    NoJob,
}

impl Error {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::MissingNamespace => "missing_namespace",
            Error::MissingUid => "missing_uid",
            Error::ForeignJob(_) => "foreign_job",
            Error::Conflict(_) => "conflict",
            Error::Encode(_) => "encode",
            Error::Install(_) => "install",
            Error::NoJob => "no_job",
        }
    }
}
