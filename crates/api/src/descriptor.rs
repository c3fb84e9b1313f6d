//! The encoded descriptor set of every proto file, for gRPC reflection.

/// Encoded `google.protobuf.FileDescriptorSet` of the testcluster protos and
/// their imports. Register it with `tonic_reflection`'s builder
/// (`register_encoded_file_descriptor_set`) for both reflection v1 and v1alpha.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/testcluster_descriptor.bin"));

/// Encoded `google.protobuf.FileDescriptorSet` of `google/rpc/error_details.proto`: the
/// `google.rpc.BadRequest` that INVALID_ARGUMENT statuses carry. Register it beside
/// [`FILE_DESCRIPTOR_SET`] so that reflection clients (buf curl, grpcurl) can decode the details.
pub const ERROR_DETAILS_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/error_details_descriptor.bin"));

/// Fully qualified names of the services defined here, for health reporting.
pub const SERVICE_NAMES: &[&str] = &[
    "testcluster.v1.TestClusterService",
    "testcluster.v1.LogService",
    "testcluster.internal.v1.ProvisionerService",
];

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use prost_types::FileDescriptorSet;

    fn service_names() -> Vec<String> {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        set.file
            .iter()
            .flat_map(|file| {
                file.service
                    .iter()
                    .map(move |service| format!("{}.{}", file.package(), service.name()))
            })
            .collect()
    }

    #[test]
    fn descriptor_set_contains_every_service() {
        let mut names = service_names();
        names.sort();
        let mut expected: Vec<String> = SERVICE_NAMES.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn reflection_accepts_descriptor_set() {
        // The reflection builders resolve every file's imports and fail on a
        // set that is missing one.
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("reflection v1");
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .expect("reflection v1alpha");
    }

    #[test]
    fn error_details_match_what_tonic_types_writes() {
        // The declared BadRequest must decode the bytes tonic-types encodes: same package, names
        // and field numbers.
        let set = FileDescriptorSet::decode(ERROR_DETAILS_FILE_DESCRIPTOR_SET).expect("decodes");
        let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(set).expect("a pool");
        let bad_request = pool
            .get_message_by_name("google.rpc.BadRequest")
            .expect("google.rpc.BadRequest");
        let status = crate::errors::invalid_argument(vec![tonic_types::FieldViolation::new(
            "spec.nodes",
            "must be at least 1",
        )]);
        let details = <tonic_types::pb::Status as Message>::decode(status.details())
            .expect("google.rpc.Status");
        let any = details.details.first().expect("one detail");
        assert_eq!(any.type_url, "type.googleapis.com/google.rpc.BadRequest");
        let decoded = prost_reflect::DynamicMessage::decode(bad_request, any.value.as_slice())
            .expect("decodes as the declared BadRequest");
        let violation = serde_json::to_value(&decoded).expect("JSON");
        assert_eq!(
            violation,
            serde_json::json!({"fieldViolations": [
                {"field": "spec.nodes", "description": "must be at least 1"}
            ]})
        );
    }

    #[test]
    fn descriptor_set_includes_imports() {
        // Reflection clients resolve Timestamp from the same set.
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        assert!(
            set.file
                .iter()
                .any(|file| file.name() == "google/protobuf/timestamp.proto")
        );
    }
}
