//! Why a reconcile fails, and the policy for how long to wait before the next attempt.

use std::time::Duration;

use kube::runtime::finalizer;
use testcluster_service::retry::RetryPolicy;

/// Pauses after consecutive failed reconciles of one object: 250 ms, doubling up to a minute.
pub const RETRY: RetryPolicy =
    RetryPolicy::exponential(Duration::from_millis(250), Duration::from_secs(60));

/// Why a reconcile did not finish. The variant name is the `error` label of logs (and metrics).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding an object: {0}")]
    Encode(#[from] serde_json::Error),
    /// The job's credentials could not be minted (the test cluster's API is not reachable yet).
    #[error("cluster access: {0}")]
    Access(#[from] crate::access::AccessError),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    #[error("the object has no namespace")]
    NoNamespace,
    #[error("{kind} {namespace}/{name} exists but belongs to another owner")]
    NotOwned {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    /// The watch feeding a store of owned objects has stopped (only at shutdown).
    #[error("a store of owned Config Connector objects is closed")]
    StoreClosed,
    /// Not a failure: deletion goes on, and the watch on the owned objects reports its end.
    #[error("{remaining} Config Connector objects are still being deleted")]
    TeardownInProgress { remaining: usize },
}

impl Error {
    /// A short, stable name for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Encode(_) => "encode",
            Error::Access(_) => "access",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.label(),
                _ => "finalizer",
            },
            Error::NoNamespace => "no_namespace",
            Error::NotOwned { .. } => "not_owned",
            Error::StoreClosed => "store_closed",
            Error::TeardownInProgress { .. } => "teardown_in_progress",
        }
    }

    pub(super) fn is_teardown_in_progress(&self) -> bool {
        self.label() == "teardown_in_progress"
    }

    /// A write based on a stale read (409): routine, retried at once on fresh data.
    pub(super) fn is_conflict(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(status)) => status.code == 409,
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.is_conflict()
                }
                finalizer::Error::AddFinalizer(kube::Error::Api(status))
                | finalizer::Error::RemoveFinalizer(kube::Error::Api(status)) => status.code == 409,
                _ => false,
            },
            _ => false,
        }
    }
}
