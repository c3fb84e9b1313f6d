//! The names, labels and paths the runner shares with the other services (docs/lifecycle.md).
//!
//! Every name is derived from the test cluster's name alone, so a restarted runner finds what it
//! created before instead of creating it twice.

/// Label on the Job, its pods and the kubeconfig Secret: the test cluster they belong to.
pub use testcluster_resources::metadata::LABEL_TEST_CLUSTER;

/// Field manager of every write the runner makes (status and objects).
pub const FIELD_MANAGER: &str = "testcluster-runner";

/// The Job, its pods' label and its containers, named where logview reads them too.
pub use testcluster_resources::job_pod::{
    CONTAINER_INIT, CONTAINER_RUNNER, KUBECONFIG_KEY, LABEL_JOB_NAME, job_name as job,
    kubeconfig_secret,
};
/// Where the kubeconfig Secret is mounted.
pub const KUBECONFIG_DIR: &str = "/var/run/testcluster";
/// `KUBECONFIG` of the job's containers.
pub const KUBECONFIG_PATH: &str = "/var/run/testcluster/kubeconfig";
/// Prefix of the variable that carries one image of `spec.jobSpec.imagesToTest`.
pub const ENV_IMAGE_TO_TEST_PREFIX: &str = "IMAGE_TO_TEST_";
/// The variable that carries all of `spec.jobSpec.imagesToTest` as a JSON object.
pub const ENV_IMAGES_TO_TEST: &str = "IMAGES_TO_TEST";
/// Where the user ConfigMap (`spec.jobSpec.runner.configMap`) is mounted.
pub const USER_CONFIG_DIR: &str = "/etc/testcluster/config";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        assert_eq!(job("testme-1"), "testme-1-runner");
        assert_eq!(kubeconfig_secret("testme-1"), "testme-1-kubeconfig");
        assert!(KUBECONFIG_PATH.starts_with(KUBECONFIG_DIR));
        assert!(KUBECONFIG_PATH.ends_with(KUBECONFIG_KEY));
    }
}
