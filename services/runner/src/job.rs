//! The object the runner creates for one test cluster: the test Job,
//! exactly as docs/lifecycle.md describes them. Pure functions, so the shape is unit-tested.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EnvVar, PodSpec, PodTemplateSpec, SecretVolumeSource, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use testcluster_resources::JobRunnerSpec;

use crate::names;

const VOLUME_KUBECONFIG: &str = "kubeconfig";
const VOLUME_USER_CONFIG: &str = "user-config";

/// What the Job of one test cluster is made from.
pub struct JobInputs<'a> {
    pub namespace: &'a str,
    /// Name of the TestClusterGKE.
    pub name: &'a str,
    pub owner: OwnerReference,
    pub runner: &'a JobRunnerSpec,
    /// `spec.jobSpec.imagesToTest`.
    pub images_to_test: Option<&'a BTreeMap<String, String>>,
    pub cluster_name: &'a str,
    pub location: &'a str,
    pub active_deadline: Duration,
}

fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(names::LABEL_TEST_CLUSTER.to_owned(), name.to_owned())])
}

/// The Job `<name>-runner`: one attempt (`backoffLimit: 0`), bounded by the active deadline,
/// the optional `init` container, then `runner`.
pub fn test_job(inputs: &JobInputs<'_>) -> Job {
    let runner = inputs.runner;
    let env = job_env(inputs);
    let mut mounts = vec![VolumeMount {
        name: VOLUME_KUBECONFIG.to_owned(),
        mount_path: names::KUBECONFIG_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    let mut volumes = vec![Volume {
        name: VOLUME_KUBECONFIG.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names::kubeconfig_secret(inputs.name)),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if let Some(config_map) = &runner.config_map {
        mounts.push(VolumeMount {
            name: VOLUME_USER_CONFIG.to_owned(),
            mount_path: names::USER_CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: VOLUME_USER_CONFIG.to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    // The init container runs its image's own entrypoint (as in the seed), with the same
    // credentials and configuration as the runner.
    let init_containers = runner.init_image.as_ref().map(|image| {
        vec![Container {
            name: names::CONTAINER_INIT.to_owned(),
            image: Some(image.clone()),
            env: Some(env.clone()),
            volume_mounts: Some(mounts.clone()),
            ..Container::default()
        }]
    });
    let container = Container {
        name: names::CONTAINER_RUNNER.to_owned(),
        image: runner.image.clone(),
        command: (!runner.command.is_empty()).then(|| runner.command.clone()),
        env: Some(env),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(names::job(inputs.name)),
            namespace: Some(inputs.namespace.to_owned()),
            labels: Some(labels(inputs.name)),
            owner_references: Some(vec![inputs.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(deadline_seconds(inputs.active_deadline)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(inputs.name)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    // The job reaches its test cluster through the mounted kubeconfig only; a
                    // management-cluster token in the pod would reach far more than that.
                    automount_service_account_token: Some(false),
                    init_containers,
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// `KUBECONFIG`, `CLUSTER_NAME`, `CLUSTER_LOCATION`, the images to test, then the user's
/// variables (which may refer to the others with `$(VAR)`).
fn job_env(inputs: &JobInputs<'_>) -> Vec<EnvVar> {
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    };
    let mut env = vec![
        var("KUBECONFIG", names::KUBECONFIG_PATH),
        var("CLUSTER_NAME", inputs.cluster_name),
        var("CLUSTER_LOCATION", inputs.location),
    ];
    if let Some(images) = inputs.images_to_test.filter(|images| !images.is_empty()) {
        for (name, image) in images {
            env.push(var(&image_variable(name), image));
        }
        // A map of strings always encodes.
        let all = serde_json::to_string(images).unwrap_or_default();
        env.push(var(names::ENV_IMAGES_TO_TEST, &all));
    }
    env.extend(inputs.runner.env.iter().cloned());
    env
}

/// `IMAGE_TO_TEST_<NAME>`: the name upper-cased, every character but ASCII letters and digits as
/// `_`, so that any key makes a variable a shell can read (`cilium-agent` → `CILIUM_AGENT`).
fn image_variable(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{}{name}", names::ENV_IMAGE_TO_TEST_PREFIX)
}

/// At least one second: zero would fail the Job at once.
fn deadline_seconds(deadline: Duration) -> i64 {
    i64::try_from(deadline.as_secs()).unwrap_or(i64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "clusters.ci.cilium.io/v1alpha2".to_owned(),
            kind: "TestClusterGKE".to_owned(),
            name: "t1".to_owned(),
            uid: "uid-1".to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn inputs(runner: &JobRunnerSpec) -> JobInputs<'_> {
        JobInputs {
            namespace: "ns",
            name: "t1",
            owner: owner(),
            runner,
            images_to_test: None,
            cluster_name: "t1-abcde",
            location: "europe-west2-b",
            active_deadline: Duration::from_secs(600),
        }
    }

    #[test]
    fn the_job_follows_the_contract() {
        let runner = JobRunnerSpec {
            image: Some("busybox".to_owned()),
            command: vec!["sh".to_owned(), "-c".to_owned(), "true".to_owned()],
            env: vec![EnvVar {
                name: "USER_VAR".to_owned(),
                value: Some("1".to_owned()),
                value_from: None,
            }],
            ..JobRunnerSpec::default()
        };
        let job = test_job(&inputs(&runner));
        assert_eq!(job.metadata.name.as_deref(), Some("t1-runner"));
        assert_eq!(
            job.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(names::LABEL_TEST_CLUSTER)),
            Some(&"t1".to_owned())
        );
        assert_eq!(job.metadata.owner_references, Some(vec![owner()]));
        let spec = job.spec.expect("spec");
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        let pod = spec.template.spec.expect("pod spec");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert!(pod.init_containers.is_none());
        let container = &pod.containers[0];
        assert_eq!(container.name, "runner");
        assert_eq!(container.image.as_deref(), Some("busybox"));
        let env: Vec<(&str, &str)> = container
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            env,
            [
                ("KUBECONFIG", "/var/run/testcluster/kubeconfig"),
                ("CLUSTER_NAME", "t1-abcde"),
                ("CLUSTER_LOCATION", "europe-west2-b"),
                ("USER_VAR", "1"),
            ]
        );
        let mounts: Vec<&str> = container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/var/run/testcluster"]);
        let volumes = pod.volumes.expect("volumes");
        assert_eq!(
            volumes[0]
                .secret
                .as_ref()
                .and_then(|s| s.secret_name.as_deref()),
            Some("t1-kubeconfig")
        );
    }

    #[test]
    fn init_image_and_config_map_add_the_init_container_and_mount() {
        let runner = JobRunnerSpec {
            image: Some("busybox".to_owned()),
            init_image: Some("quay.io/example/init:1".to_owned()),
            config_map: Some("t1-user".to_owned()),
            ..JobRunnerSpec::default()
        };
        let job = test_job(&inputs(&runner));
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod spec");
        let init = &pod.init_containers.expect("init containers")[0];
        assert_eq!(init.name, "init");
        assert_eq!(init.image.as_deref(), Some("quay.io/example/init:1"));
        let runner_mounts: Vec<&str> = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(
            runner_mounts,
            ["/var/run/testcluster", "/etc/testcluster/config"]
        );
        assert_eq!(init.volume_mounts, pod.containers[0].volume_mounts);
        let config = pod.volumes.expect("volumes")[1].config_map.clone();
        assert_eq!(config.map(|c| c.name), Some("t1-user".to_owned()));
        assert!(pod.containers[0].command.is_none());
    }

    #[test]
    fn images_to_test_reach_the_job_as_variables_and_json() {
        let runner = JobRunnerSpec {
            image: Some("busybox".to_owned()),
            ..JobRunnerSpec::default()
        };
        let images = BTreeMap::from([
            ("cilium".to_owned(), "quay.io/cilium/cilium:v1".to_owned()),
            (
                "hubble-relay".to_owned(),
                "quay.io/cilium/hubble-relay:v1".to_owned(),
            ),
        ]);
        let job = test_job(&JobInputs {
            images_to_test: Some(&images),
            ..inputs(&runner)
        });
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod spec");
        let env: Vec<(String, String)> = pod.containers[0]
            .env
            .iter()
            .flatten()
            .skip(3)
            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
            .collect();
        let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        assert_eq!(
            env,
            [
                pair("IMAGE_TO_TEST_CILIUM", "quay.io/cilium/cilium:v1"),
                pair(
                    "IMAGE_TO_TEST_HUBBLE_RELAY",
                    "quay.io/cilium/hubble-relay:v1"
                ),
                pair(
                    "IMAGES_TO_TEST",
                    r#"{"cilium":"quay.io/cilium/cilium:v1","hubble-relay":"quay.io/cilium/hubble-relay:v1"}"#
                ),
            ]
        );
    }

    #[test]
    fn the_deadline_is_at_least_a_second() {
        assert_eq!(deadline_seconds(Duration::from_millis(10)), 1);
        assert_eq!(deadline_seconds(Duration::from_secs(3600)), 3600);
    }
}
