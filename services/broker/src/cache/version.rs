//! Resource versions as numbers.
//!
//! Kubernetes calls resource versions opaque, but every API server backed by etcd (and the
//! simulator) issues them from one increasing 64-bit counter, and the API server's own watch cache
//! compares them as numbers. The broker does the same, which is sound because it talks to one API
//! server (one etcd): versions from another cluster mean nothing here, and a version that is not
//! a number is refused as invalid, as the API server refuses it.

use testcluster_resources::TestClusterGKE;

/// `version` as a number, `None` when it is not one.
pub fn parse(version: &str) -> Option<u64> {
    version.parse().ok()
}

/// The object's `metadata.resourceVersion` as a number.
pub fn version_of(object: &TestClusterGKE) -> Option<u64> {
    object.metadata.resource_version.as_deref().and_then(parse)
}
