//! Names shared with the seed operator: API group, labels, annotations, and
//! the defaults applied when a spec leaves a field unset.

/// API group of the resource.
pub const GROUP: &str = "clusters.ci.cilium.io";
/// API version of the resource.
pub const VERSION: &str = "v1alpha2";
/// Kind of the resource.
pub const KIND: &str = "TestClusterGKE";
/// Plural resource name (`kubectl get testclustersgke`).
pub const PLURAL: &str = "testclustersgke";

/// Label on the objects made for a test cluster (the provisioner's rendered objects, the runner's
/// Job, its pods and its kubeconfig Secret): the test cluster's name.
pub const LABEL_TEST_CLUSTER: &str = "clusters.ci.cilium.io/test-cluster";
/// Label: the commit a run tests (for GitHub commit statuses).
pub const LABEL_GITHUB_COMMIT_HASH: &str = "ci.cilium.io/github-commit-hash";
/// Annotation: owner of the GitHub repository of the commit.
pub const ANNOTATION_GITHUB_REPO_OWNER: &str = "ci.cilium.io/github-repo-owner";
/// Annotation: name of the GitHub repository of the commit.
pub const ANNOTATION_GITHUB_REPO_NAME: &str = "ci.cilium.io/github-repo-name";
/// Annotation (optional): context of the GitHub commit status.
pub const ANNOTATION_GITHUB_CONTEXT: &str = "ci.cilium.io/github-context";
/// Annotation: free-form description of the test cluster.
pub const ANNOTATION_CLUSTER_DESCRIPTION: &str = "ci.cilium.io/cluster-description";

/// Annotation, written by the broker at create: who asked for the test cluster (such as
/// `github:cilium/cilium@refs/heads/main` or `token:alice`), for `kubectl describe` and audits.
pub const ANNOTATION_CREATED_BY: &str = "clusters.ci.cilium.io/created-by";
/// Annotation, written by the broker at create: the policy tenant the test cluster belongs to;
/// only that tenant's callers see it through the API.
pub const ANNOTATION_TENANT: &str = "clusters.ci.cilium.io/tenant";

/// Key of the user ConfigMap (`spec.jobSpec.runner.configMap`) holding the
/// manifest applied to the test cluster before the job runs.
pub const CONFIG_MAP_INIT_MANIFEST_KEY: &str = "init-manifest";

/// `spec.configTemplate` when unset (also the CRD schema default).
pub const DEFAULT_CONFIG_TEMPLATE: &str = "basic";
/// `spec.nodes` when unset (also the CRD schema default).
pub const DEFAULT_NODES: i32 = 2;
/// `spec.machineType` when unset (also the CRD schema default).
pub const DEFAULT_MACHINE_TYPE: &str = "n1-standard-4";

/// Condition type aggregating the dependencies' readiness.
pub const CONDITION_READY: &str = "Ready";
/// Condition type in `status.jobConditions`: the test job succeeded (as a Kubernetes Job's).
pub const CONDITION_JOB_COMPLETE: &str = "Complete";
/// Condition type in `status.jobConditions`: the test job failed, or could not run.
pub const CONDITION_JOB_FAILED: &str = "Failed";
/// Ready reason when every dependency is ready.
pub const REASON_ALL_DEPENDENCIES_READY: &str = "AllDependenciesReady";
/// Ready reason while some dependency is not ready.
pub const REASON_DEPENDENCIES_NOT_READY: &str = "DependenciesNotReady";
/// Ready message while some dependency is not ready (the seed's wording).
pub const MESSAGE_DEPENDENCIES_NOT_READY: &str = "Some dependencies are not ready yet";

/// Ready message when all `count` dependencies are ready (the seed's wording,
/// e.g. "All 2 dependencies are ready").
pub fn all_dependencies_ready_message(count: usize) -> String {
    format!("All {count} dependencies are ready")
}

/// `namespace/name` of a test cluster: the key of per-object controller state (back-off, writes
/// not seen yet).
pub fn object_key(tc: &crate::TestClusterGKE) -> String {
    use kube::ResourceExt as _;
    format!("{}/{}", tc.namespace().unwrap_or_default(), tc.name_any())
}

/// Key of a dependency in `status.dependencyConditions`: `<Kind>:<namespace>/<name>`.
pub fn dependency_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}:{namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_wording() {
        assert_eq!(
            all_dependencies_ready_message(2),
            "All 2 dependencies are ready"
        );
        assert_eq!(
            dependency_key("ContainerCluster", "test-clusters", "test-c6v87-fn86p"),
            "ContainerCluster:test-clusters/test-c6v87-fn86p"
        );
    }
}
