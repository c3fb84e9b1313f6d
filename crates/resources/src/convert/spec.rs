//! The spec, both ways. The proto spec mirrors the CRD spec field for field,
//! so these are plain moves; the only shape changes are proto's lack of
//! "absent" for maps and lists (an empty `imagesToTest` is absent) and its
//! plain-string Kubernetes quantity.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use testcluster_api::v1 as api;

use crate::spec::{JobRunnerSpec, JobSpec, TestClusterGKESpec};

impl From<api::TestClusterSpec> for TestClusterGKESpec {
    fn from(spec: api::TestClusterSpec) -> Self {
        TestClusterGKESpec {
            project: spec.project,
            config_template: spec.config_template,
            location: spec.location,
            region: spec.region,
            kubernetes_version: spec.kubernetes_version,
            job_spec: spec.job_spec.map(JobSpec::from),
            machine_type: spec.machine_type,
            nodes: spec.nodes,
            ttl: spec.ttl,
            hold_on_failure: spec.hold_on_failure,
        }
    }
}

impl From<TestClusterGKESpec> for api::TestClusterSpec {
    fn from(spec: TestClusterGKESpec) -> Self {
        api::TestClusterSpec {
            project: spec.project,
            config_template: spec.config_template,
            location: spec.location,
            region: spec.region,
            kubernetes_version: spec.kubernetes_version,
            job_spec: spec.job_spec.map(api::JobSpec::from),
            machine_type: spec.machine_type,
            nodes: spec.nodes,
            ttl: spec.ttl,
            hold_on_failure: spec.hold_on_failure,
        }
    }
}

impl From<api::JobSpec> for JobSpec {
    fn from(job: api::JobSpec) -> Self {
        JobSpec {
            runner: job.runner.map(JobRunnerSpec::from),
            images_to_test: (!job.images_to_test.is_empty()).then_some(job.images_to_test),
            deadline: job.deadline,
        }
    }
}

impl From<JobSpec> for api::JobSpec {
    fn from(job: JobSpec) -> Self {
        api::JobSpec {
            runner: job.runner.map(api::JobRunnerSpec::from),
            images_to_test: job.images_to_test.unwrap_or_default(),
            deadline: job.deadline,
        }
    }
}

impl From<api::JobRunnerSpec> for JobRunnerSpec {
    fn from(runner: api::JobRunnerSpec) -> Self {
        JobRunnerSpec {
            image: runner.image,
            command: runner.command,
            init_image: runner.init_image,
            env: runner.env.into_iter().map(env_to_k8s).collect(),
            config_map: runner.config_map,
        }
    }
}

impl From<JobRunnerSpec> for api::JobRunnerSpec {
    fn from(runner: JobRunnerSpec) -> Self {
        api::JobRunnerSpec {
            image: runner.image,
            command: runner.command,
            init_image: runner.init_image,
            env: runner.env.into_iter().map(env_from_k8s).collect(),
            config_map: runner.config_map,
        }
    }
}

// EnvVar and its sources are Kubernetes' types (k8s-openapi), which are
// foreign to this crate as the proto types are, so these are functions
// rather than From impls.

/// A proto environment variable as a Kubernetes `EnvVar`.
fn env_to_k8s(env: api::EnvVar) -> core::EnvVar {
    core::EnvVar {
        name: env.name,
        value: env.value,
        value_from: env.value_from.map(|source| core::EnvVarSource {
            field_ref: source.field_ref.map(|field| core::ObjectFieldSelector {
                api_version: field.api_version,
                field_path: field.field_path,
            }),
            resource_field_ref: source.resource_field_ref.map(|resource| {
                core::ResourceFieldSelector {
                    container_name: resource.container_name,
                    resource: resource.resource,
                    divisor: resource.divisor.map(Quantity),
                }
            }),
            config_map_key_ref: source
                .config_map_key_ref
                .map(|key| core::ConfigMapKeySelector {
                    name: key.name,
                    key: key.key,
                    optional: key.optional,
                }),
            secret_key_ref: source.secret_key_ref.map(|key| core::SecretKeySelector {
                name: key.name,
                key: key.key,
                optional: key.optional,
            }),
        }),
    }
}

/// A Kubernetes `EnvVar` as a proto environment variable.
fn env_from_k8s(env: core::EnvVar) -> api::EnvVar {
    api::EnvVar {
        name: env.name,
        value: env.value,
        value_from: env.value_from.map(|source| api::EnvVarSource {
            field_ref: source.field_ref.map(|field| api::ObjectFieldSelector {
                api_version: field.api_version,
                field_path: field.field_path,
            }),
            resource_field_ref: source.resource_field_ref.map(|resource| {
                api::ResourceFieldSelector {
                    container_name: resource.container_name,
                    resource: resource.resource,
                    divisor: resource.divisor.map(|quantity| quantity.0),
                }
            }),
            config_map_key_ref: source
                .config_map_key_ref
                .map(|key| api::ConfigMapKeySelector {
                    name: key.name,
                    key: key.key,
                    optional: key.optional,
                }),
            secret_key_ref: source.secret_key_ref.map(|key| api::SecretKeySelector {
                name: key.name,
                key: key.key,
                optional: key.optional,
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::TestClusterGKE;

    /// The seed's example manifests, as committed in testdata/.
    const SEED_EXAMPLES: &[(&str, &str)] = &[
        (
            "seed-example-1.yaml",
            include_str!("../../testdata/seed-example-1.yaml"),
        ),
        (
            "seed-example-2.yaml",
            include_str!("../../testdata/seed-example-2.yaml"),
        ),
        (
            "seed-issue-11.yaml",
            include_str!("../../testdata/seed-issue-11.yaml"),
        ),
    ];

    /// The `spec` of a manifest as generic JSON, exactly as written.
    fn manifest_spec_json(yaml: &str) -> Value {
        let manifest: Value = yaml_serde::from_str(yaml).expect("manifest is YAML");
        manifest["spec"].clone()
    }

    #[test]
    fn proto_json_of_seed_spec_equals_crd_json() {
        for (name, yaml) in SEED_EXAMPLES {
            let resource: TestClusterGKE = yaml_serde::from_str(yaml).expect(name);
            let crd_json = serde_json::to_value(&resource.spec).expect(name);
            let proto = api::TestClusterSpec::from(resource.spec.clone());
            let proto_json = serde_json::to_value(&proto).expect(name);

            assert_eq!(
                proto_json, crd_json,
                "{name}: proto3 JSON differs from CRD JSON"
            );
            assert_eq!(
                proto_json,
                manifest_spec_json(yaml),
                "{name}: not the manifest's spec"
            );
        }
    }

    #[test]
    fn seed_spec_json_is_a_valid_request_spec() {
        for (name, yaml) in SEED_EXAMPLES {
            let resource: TestClusterGKE = yaml_serde::from_str(yaml).expect(name);
            let parsed: api::TestClusterSpec =
                serde_json::from_value(manifest_spec_json(yaml)).expect(name);
            assert_eq!(parsed, api::TestClusterSpec::from(resource.spec), "{name}");
        }
    }

    #[test]
    fn spec_round_trips_through_proto() {
        for (name, yaml) in SEED_EXAMPLES {
            let resource: TestClusterGKE = yaml_serde::from_str(yaml).expect(name);
            let back = TestClusterGKESpec::from(api::TestClusterSpec::from(resource.spec.clone()));
            assert_eq!(back, resource.spec, "{name}");
        }
    }

    #[test]
    fn every_field_round_trips_with_equal_json() {
        let crd_json = json!({
            "project": "cilium-ci",
            "configTemplate": "basic",
            "location": "europe-west2-b",
            "region": "europe-west2",
            "kubernetesVersion": "1.33",
            "machineType": "e2-standard-4",
            "nodes": 3,
            "jobSpec": {
                "imagesToTest": {"cilium": "quay.io/cilium/cilium:latest"},
                "runner": {
                    "image": "busybox",
                    "command": ["sh", "-c", "echo hi"],
                    "initImage": "initutil",
                    "configMap": "t-user",
                    "env": [
                        {"name": "PLAIN", "value": "1"},
                        {"name": "EMPTY", "value": ""},
                        {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"containerName": "runner", "resource": "limits.cpu", "divisor": "1m"}}},
                        {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": true}}},
                        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": false}}}
                    ]
                }
            }
        });
        let crd: TestClusterGKESpec = serde_json::from_value(crd_json.clone()).expect("CRD spec");
        let proto: api::TestClusterSpec =
            serde_json::from_value(crd_json.clone()).expect("proto spec");

        assert_eq!(api::TestClusterSpec::from(crd.clone()), proto);
        assert_eq!(TestClusterGKESpec::from(proto.clone()), crd);
        assert_eq!(serde_json::to_value(&proto).expect("proto JSON"), crd_json);
        assert_eq!(serde_json::to_value(&crd).expect("CRD JSON"), crd_json);
    }

    #[test]
    fn empty_spec_stays_empty() {
        let proto = api::TestClusterSpec::from(TestClusterGKESpec::default());
        assert_eq!(serde_json::to_value(&proto).expect("proto JSON"), json!({}));
        assert_eq!(
            TestClusterGKESpec::from(proto),
            TestClusterGKESpec::default()
        );
    }

    #[test]
    fn empty_images_to_test_is_absent() {
        let job = JobSpec::from(api::JobSpec::default());
        assert_eq!(job.images_to_test, None);
    }
}
