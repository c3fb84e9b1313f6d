//! The audit trail: one structured log line (target `testcluster::audit`) per change a caller
//! makes, saying who did what to which test cluster. It names identities, never credentials.

use testcluster_resources::TestClusterGKE;

use crate::tenancy::Caller;

/// Records that `caller` did `action` to `object`.
pub fn record(caller: &Caller, action: &str, object: &TestClusterGKE) {
    record_named(
        caller,
        action,
        object.metadata.namespace.as_deref().unwrap_or_default(),
        object.metadata.name.as_deref().unwrap_or_default(),
    );
}

/// Records that `caller` did `action` to the test cluster `namespace/name`.
pub fn record_named(caller: &Caller, action: &str, namespace: &str, name: &str) {
    tracing::info!(
        target: "testcluster::audit",
        who = %caller.identity,
        tenant = caller.tenant_name().unwrap_or_default(),
        action,
        namespace,
        name,
        "audit"
    );
}
