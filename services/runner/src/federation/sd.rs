//! Prometheus HTTP service discovery (`http_sd_configs`): one target group per live test cluster,
//! each pointing at that cluster's `/federate` proxy on this runner.
//!
//! A test cluster is live from the moment its metrics stack is installed while it is Ready or
//! Running, and leaves the list as soon as its run ends (Succeeded, Failed, Error) or it is being
//! deleted, so the central Prometheus stops scraping it.

use std::collections::BTreeMap;

use kube::ResourceExt as _;
use serde::Serialize;
use testcluster_resources::metadata::{
    ANNOTATION_GITHUB_REPO_NAME, ANNOTATION_GITHUB_REPO_OWNER, DEFAULT_CONFIG_TEMPLATE,
    LABEL_GITHUB_COMMIT_HASH,
};
use testcluster_resources::{Phase, TestClusterGKE};

use crate::install::metrics_stack_installed;

/// Target labels of every group.
pub const LABEL_NAME: &str = "test_cluster_name";
pub const LABEL_NAMESPACE: &str = "test_cluster_namespace";
pub const LABEL_TEMPLATE: &str = "template";
/// Only when the test cluster carries the seed's commit label.
pub const LABEL_COMMIT: &str = "commit";
/// `owner/name`, only when both seed annotations are there.
pub const LABEL_REPOSITORY: &str = "repository";

/// One entry of the http_sd list, as Prometheus reads it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// Whether the central Prometheus should scrape this test cluster now.
pub fn is_live(resource: &TestClusterGKE) -> bool {
    let running = matches!(
        resource.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Ready | Phase::Running)
    );
    running && resource.metadata.deletion_timestamp.is_none() && metrics_stack_installed(resource)
}

/// The path of the `/federate` proxy of one test cluster.
pub fn federate_path(namespace: &str, name: &str) -> String {
    format!("/federation/{namespace}/{name}/federate")
}

/// The target group of `resource`, scraped at `address` (this runner as Prometheus reaches it).
pub fn target_group(resource: &TestClusterGKE, address: &str) -> TargetGroup {
    let (namespace, name) = (
        resource.namespace().unwrap_or_default(),
        resource.name_any(),
    );
    let template = resource
        .spec
        .config_template
        .clone()
        .unwrap_or_else(|| DEFAULT_CONFIG_TEMPLATE.to_owned());
    let mut labels = BTreeMap::from([
        (
            "__metrics_path__".to_owned(),
            federate_path(&namespace, &name),
        ),
        (LABEL_NAME.to_owned(), name),
        (LABEL_NAMESPACE.to_owned(), namespace),
        (LABEL_TEMPLATE.to_owned(), template),
    ]);
    if let Some(commit) = resource.labels().get(LABEL_GITHUB_COMMIT_HASH) {
        labels.insert(LABEL_COMMIT.to_owned(), commit.clone());
    }
    let annotations = resource.annotations();
    if let (Some(owner), Some(repo)) = (
        annotations.get(ANNOTATION_GITHUB_REPO_OWNER),
        annotations.get(ANNOTATION_GITHUB_REPO_NAME),
    ) {
        labels.insert(LABEL_REPOSITORY.to_owned(), format!("{owner}/{repo}"));
    }
    TargetGroup {
        targets: vec![address.to_owned()],
        labels,
    }
}

/// The groups of every live test cluster in `resources`, in namespace/name order.
pub fn target_groups<'a>(
    resources: impl IntoIterator<Item = &'a TestClusterGKE>,
    address: &str,
) -> Vec<TargetGroup> {
    let mut groups: Vec<_> = resources
        .into_iter()
        .filter(|resource| is_live(resource))
        .map(|resource| target_group(resource, address))
        .collect();
    groups.sort_by(|a, b| {
        let key = |g: &TargetGroup| {
            (
                g.labels.get(LABEL_NAMESPACE).cloned(),
                g.labels.get(LABEL_NAME).cloned(),
            )
        };
        key(a).cmp(&key(b))
    });
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use testcluster_resources::{Condition, TestClusterGKEStatus};

    fn cluster(name: &str, phase: Phase, installed: bool) -> TestClusterGKE {
        let mut resource = TestClusterGKE::new(name, Default::default());
        resource.metadata.namespace = Some("ci".to_owned());
        resource.status = Some(TestClusterGKEStatus {
            phase: Some(phase),
            install_conditions: vec![Condition {
                type_: crate::install::CONDITION_METRICS_STACK.to_owned(),
                status: if installed { "True" } else { "False" }.to_owned(),
                ..Condition::default()
            }],
            ..TestClusterGKEStatus::default()
        });
        resource
    }

    #[test]
    fn a_live_cluster_is_one_labelled_target() {
        let mut resource = cluster("t1", Phase::Running, true);
        resource.metadata.labels =
            Some([(LABEL_GITHUB_COMMIT_HASH.to_owned(), "8cfdbfe".to_owned())].into());
        resource.metadata.annotations = Some(
            [
                (ANNOTATION_GITHUB_REPO_OWNER.to_owned(), "cilium".to_owned()),
                (ANNOTATION_GITHUB_REPO_NAME.to_owned(), "cilium".to_owned()),
            ]
            .into(),
        );
        resource.spec.config_template = Some("gpu".to_owned());
        let groups = target_groups([&resource], "runner:9105");
        assert_eq!(
            serde_json::to_value(&groups).expect("json"),
            serde_json::json!([{
                "targets": ["runner:9105"],
                "labels": {
                    "__metrics_path__": "/federation/ci/t1/federate",
                    "test_cluster_name": "t1",
                    "test_cluster_namespace": "ci",
                    "template": "gpu",
                    "commit": "8cfdbfe",
                    "repository": "cilium/cilium",
                }
            }])
        );
    }

    #[test]
    fn only_live_clusters_with_a_stack_are_listed() {
        let ready = cluster("a-ready", Phase::Ready, true);
        let no_stack = cluster("b-no-stack", Phase::Running, false);
        let ended = cluster("c-ended", Phase::Succeeded, true);
        let failed = cluster("d-failed", Phase::Failed, true);
        let mut deleting = cluster("e-deleting", Phase::Running, true);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let groups = target_groups([&ready, &no_stack, &ended, &failed, &deleting], "r:1");
        let names: Vec<_> = groups
            .iter()
            .map(|g| g.labels[LABEL_NAME].as_str())
            .collect();
        assert_eq!(names, ["a-ready"]);
        assert_eq!(groups[0].labels[LABEL_TEMPLATE], DEFAULT_CONFIG_TEMPLATE);
        assert!(!groups[0].labels.contains_key(LABEL_COMMIT));
    }
}
