//! The CustomResourceDefinition of `TestClusterGKE`, as committed in
//! `deploy/k8s/crds/` and printed by the `crdgen` binary.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::TestClusterGKE;

/// Path of the committed CRD YAML, relative to the workspace root.
pub const CRD_PATH: &str = "deploy/k8s/crds/testclustersgke.clusters.ci.cilium.io.yaml";

/// The CRD object.
pub fn crd() -> CustomResourceDefinition {
    TestClusterGKE::crd()
}

/// The CRD as a YAML document.
pub fn crd_yaml() -> Result<String, yaml_serde::Error> {
    yaml_serde::to_string(&crd())
}
