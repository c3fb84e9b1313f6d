//! The testcluster gRPC API, generated from `proto/` by `build.rs`.
//!
//! - [`v1`]: the public API (`testcluster.v1.TestClusterService`,
//!   `testcluster.v1.LogService`) with clients and servers.
//! - [`internal::v1`]: service-to-service calls
//!   (`testcluster.internal.v1.ProvisionerService`).
//! - [`FILE_DESCRIPTOR_SET`] and [`ERROR_DETAILS_FILE_DESCRIPTOR_SET`]: the encoded descriptors,
//!   for gRPC reflection.
//! - [`errors`]: `google.rpc` error details (`BadRequest`) on a [`tonic::Status`].
//!
//! Every message also implements serde with the proto3 JSON mapping, so the
//! JSON of [`v1::TestClusterSpec`] is the `TestClusterGKE` CRD's spec JSON.

mod descriptor;
pub mod errors;
mod generated;

pub use descriptor::{ERROR_DETAILS_FILE_DESCRIPTOR_SET, FILE_DESCRIPTOR_SET, SERVICE_NAMES};
pub use generated::testcluster::{internal, v1};
/// Well-known types (`google.protobuf.Timestamp`, ...) used by the messages.
pub use pbjson_types;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::v1;

    #[test]
    fn enums_use_proto3_json_names() {
        let status = v1::TestClusterStatus {
            phase: v1::Phase::Ready.into(),
            job: Some(v1::JobStatus {
                exit_code: Some(0),
                ..v1::JobStatus::default()
            }),
            ..v1::TestClusterStatus::default()
        };
        assert_eq!(
            serde_json::to_value(&status).expect("JSON"),
            json!({"phase": "PHASE_READY", "job": {"exitCode": 0}})
        );
    }

    #[test]
    fn unknown_spec_fields_are_rejected() {
        // A typo in a request spec is an error, not a silently ignored field.
        let result = serde_json::from_value::<v1::TestClusterSpec>(json!({"node": 3}));
        assert!(result.is_err());
    }
}
