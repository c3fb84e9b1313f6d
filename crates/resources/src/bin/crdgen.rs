//! Prints the `TestClusterGKE` CustomResourceDefinition as YAML.
//!
//! Regenerate the committed copy with:
//! `cargo run -p testcluster-resources --bin crdgen > deploy/k8s/crds/testclustersgke.clusters.ci.cilium.io.yaml`

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match testcluster_resources::crd::crd_yaml() {
        Ok(yaml) => yaml,
        Err(error) => {
            eprintln!("crdgen: cannot serialize the CRD: {error}");
            return ExitCode::FAILURE;
        }
    };
    // A closed pipe (crdgen | head) is an error to report, not a panic.
    if let Err(error) = std::io::stdout().lock().write_all(yaml.as_bytes()) {
        eprintln!("crdgen: cannot write the CRD: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
