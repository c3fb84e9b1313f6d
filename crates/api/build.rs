//! Generates the gRPC API from `proto/` at the workspace root.
//!
//! `protox` parses the protos in pure Rust (no `protoc` on the machine), the
//! resulting descriptor set feeds `tonic-prost-build` (messages, clients,
//! servers) and `pbjson-build` (proto3 JSON serde), and is also written out
//! encoded so servers can offer it through gRPC reflection.

use std::env;
use std::error::Error;
use std::fs;
use std::path::PathBuf;

use prost::Message;

/// The files compiled, relative to the proto root. Imports are followed, so
/// only the entry points that define services need to be listed.
const PROTO_FILES: &[&str] = &[
    "testcluster/v1/test_cluster_service.proto",
    "testcluster/v1/log_service.proto",
    "testcluster/internal/v1/provisioner.proto",
];

/// File name of the encoded descriptor set in `OUT_DIR`, included by `lib.rs`.
const DESCRIPTOR_FILE: &str = "testcluster_descriptor.bin";

/// The `google.rpc` error details the servers attach to statuses (`google/` beside this file), in
/// a descriptor set of their own: served through reflection only, never compiled to Rust
/// (tonic-types has the types).
const ERROR_DETAILS_PROTO: &str = "google/rpc/error_details.proto";
const ERROR_DETAILS_DESCRIPTOR_FILE: &str = "error_details_descriptor.bin";

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", proto_root.display());
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("google").display()
    );

    let mut details = protox::Compiler::new([&manifest_dir])?;
    details.include_source_info(true);
    details.open_file(ERROR_DETAILS_PROTO)?;
    fs::write(
        out_dir.join(ERROR_DETAILS_DESCRIPTOR_FILE),
        details.file_descriptor_set().encode_to_vec(),
    )?;

    let mut compiler = protox::Compiler::new([&proto_root])?;
    // Imports (google/protobuf/timestamp.proto) must be in the set so that a
    // reflection client can resolve every type; source info carries the
    // comments into the generated docs and into reflection.
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTO_FILES)?;
    let descriptor_set = compiler.file_descriptor_set();
    let encoded = descriptor_set.encode_to_vec();
    fs::write(out_dir.join(DESCRIPTOR_FILE), &encoded)?;

    // Maps are BTreeMaps so that output (JSON, YAML, logs) has a stable order;
    // both generators must agree on the map type.
    tonic_prost_build::configure()
        .btree_map(".")
        // Well-known types come from pbjson-types, which are prost types with
        // the proto3 JSON mapping (a Timestamp is an RFC 3339 string).
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptor_set)?;

    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .btree_map(["."])
        .build(&[".testcluster"])?;
    Ok(())
}
