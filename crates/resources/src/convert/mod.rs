//! Conversions between the gRPC API (`testcluster_api::v1`) and the resource.
//!
//! - [`spec`]: the spec, both ways, lossless: the proto spec mirrors the CRD
//!   spec field for field (including `valueFrom` of environment variables).
//! - [`status`]: the resource (metadata, spec, status) to a
//!   [`v1::TestCluster`](testcluster_api::v1::TestCluster), and phases both ways.
//! - [`time`]: Kubernetes `Time` to and from `google.protobuf.Timestamp`.

pub mod spec;
pub mod status;
pub mod time;

pub use status::to_test_cluster;
