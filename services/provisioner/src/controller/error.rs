//! Why a reconcile fails, and how long to wait before the next attempt.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::finalizer;

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
    #[error("the store of owned {0} objects is closed")]
    StoreClosed(&'static str),
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
            Error::StoreClosed(_) => "store_closed",
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

/// Consecutive failed reconciles per object (`namespace/name`), for exponential backoff.
#[derive(Debug, Default)]
pub struct Backoffs(Mutex<HashMap<String, u32>>);

impl Backoffs {
    /// Counts one more failure of `key` and returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        FIRST_BACKOFF
            .saturating_mul(2u32.saturating_pow(count.saturating_sub(1).min(16)))
            .min(MAX_BACKOFF)
    }

    /// Forgets `key`'s failures: after a success, or once the object is gone.
    pub fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// How many objects have failures on record.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_are_forgotten() {
        let backoffs = Backoffs::default();
        assert_eq!(backoffs.failed("ns/a"), Duration::from_millis(250));
        assert_eq!(backoffs.failed("ns/a"), Duration::from_millis(500));
        assert_eq!(backoffs.failed("ns/b"), Duration::from_millis(250));
        for _ in 0..20 {
            backoffs.failed("ns/a");
        }
        assert_eq!(backoffs.failed("ns/a"), MAX_BACKOFF);
        assert_eq!(backoffs.len(), 2);
        backoffs.forget("ns/a");
        assert_eq!(backoffs.len(), 1);
        assert_eq!(backoffs.failed("ns/a"), Duration::from_millis(250));
    }
}
