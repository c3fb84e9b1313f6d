//! The encoded descriptor set of every proto file, for gRPC reflection.

/// Encoded `google.protobuf.FileDescriptorSet` of the testcluster protos and
/// their imports. Register it with `tonic_reflection`'s builder
/// (`register_encoded_file_descriptor_set`) for both reflection v1 and v1alpha.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/testcluster_descriptor.bin"));

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
