//! Table tests: every rule, with the exact field path in both spellings, reason and description.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, EnvVar, EnvVarSource, ObjectFieldSelector, ResourceFieldSelector,
    SecretKeySelector,
};
use testcluster_api::v1 as api;

use super::*;
use crate::spec::{JobRunnerSpec, JobSpec, TestClusterGKESpec};

const TEMPLATES: Templates<'static> = Templates::OneOf(&["basic"]);

fn seed_spec() -> TestClusterGKESpec {
    TestClusterGKESpec {
        project: Some("cilium-ci".into()),
        config_template: Some("basic".into()),
        location: Some("europe-west2-b".into()),
        region: Some("europe-west2".into()),
        kubernetes_version: Some("1.33".into()),
        job_spec: Some(JobSpec {
            runner: Some(JobRunnerSpec {
                image: Some("cilium/cilium-test:8cfdbfe".into()),
                command: vec!["/usr/local/bin/test-gke.sh".into()],
                ..JobRunnerSpec::default()
            }),
            images_to_test: None,
        }),
        machine_type: Some("n1-standard-4".into()),
        nodes: Some(2),
    }
}

fn runner(spec: &mut TestClusterGKESpec) -> &mut JobRunnerSpec {
    spec.job_spec
        .get_or_insert_with(JobSpec::default)
        .runner
        .get_or_insert_with(JobRunnerSpec::default)
}

fn var(name: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some("x".into()),
        value_from: None,
    }
}

fn from(source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: "V".into(),
        value: None,
        value_from: Some(source),
    }
}

type Triple = (String, String, String);

fn rendered(violations: &Violations, naming: Naming) -> Vec<Triple> {
    violations
        .render(naming)
        .into_iter()
        .map(|v| (v.field, v.reason, v.description))
        .collect()
}

fn object_violations(spec: &TestClusterGKESpec) -> Violations {
    let empty = BTreeMap::new();
    validate_object(
        ObjectParts {
            name: "testme-1",
            labels: &empty,
            annotations: &empty,
            spec,
        },
        TEMPLATES,
    )
}

fn request(spec: TestClusterGKESpec) -> api::CreateTestClusterRequest {
    api::CreateTestClusterRequest {
        namespace: "test-clusters".into(),
        name: "testme-1".into(),
        spec: Some(spec.into()),
        ..Default::default()
    }
}

fn request_violations(request: api::CreateTestClusterRequest) -> Vec<Triple> {
    rendered(&check_create(request, "ns", TEMPLATES).1, Naming::Proto)
}

struct Case {
    what: &'static str,
    edit: fn(&mut TestClusterGKESpec),
    proto: &'static str,
    crd: &'static str,
    reason: &'static str,
    description: &'static str,
    /// The description in the object's spelling, where it names fields.
    crd_description: Option<&'static str>,
}

fn case(
    what: &'static str,
    edit: fn(&mut TestClusterGKESpec),
    (proto, crd): (&'static str, &'static str),
    reason: &'static str,
    description: &'static str,
) -> Case {
    Case {
        what,
        edit,
        proto,
        crd,
        reason,
        description,
        crd_description: None,
    }
}

fn spec_cases() -> Vec<Case> {
    let mut cases = vec![
        case(
            "zero nodes",
            |s| s.nodes = Some(0),
            ("spec.nodes", "spec.nodes"),
            "OUT_OF_RANGE",
            "must be at least 1, got 0",
        ),
        case(
            "too many nodes",
            |s| s.nodes = Some(101),
            ("spec.nodes", "spec.nodes"),
            "OUT_OF_RANGE",
            "must be at most 100, got 101",
        ),
        case(
            "unknown template",
            |s| s.config_template = Some("nope".into()),
            ("spec.config_template", "spec.configTemplate"),
            "UNKNOWN_TEMPLATE",
            "unknown template \"nope\"; known templates: basic",
        ),
        case(
            "empty template",
            |s| s.config_template = Some(String::new()),
            ("spec.config_template", "spec.configTemplate"),
            "EMPTY",
            "must not be empty when set",
        ),
        case(
            "long machine type",
            |s| s.machine_type = Some("n".repeat(64)),
            ("spec.machine_type", "spec.machineType"),
            "TOO_LONG",
            "must be at most 63 bytes, got 64",
        ),
        case(
            "bad machine type",
            |s| s.machine_type = Some("N1 Standard".into()),
            ("spec.machine_type", "spec.machineType"),
            "INVALID_VALUE",
            "\"N1 Standard\" is not a GCE machine type (lowercase letters, digits and '-')",
        ),
        case(
            "bad project",
            |s| s.project = Some("P".into()),
            ("spec.project", "spec.project"),
            "INVALID_VALUE",
            "\"P\" is not a GCP project ID: 6 to 30 lowercase letters, digits and '-', \
             starting with a letter and not ending with '-'",
        ),
        case(
            "long project",
            |s| s.project = Some("p".repeat(129)),
            ("spec.project", "spec.project"),
            "TOO_LONG",
            "must be at most 128 bytes, got 129",
        ),
        case(
            "location on mars",
            |s| {
                s.location = Some("mars-1".into());
                s.region = None;
            },
            ("spec.location", "spec.location"),
            "INVALID_VALUE",
            "\"mars-1\" is not a GCP zone (such as europe-west2-b) or region (such as \
             europe-west2)",
        ),
        case(
            "NUL in location",
            |s| s.location = Some("europe-west2-b\0".into()),
            ("spec.location", "spec.location"),
            "INVALID_CHARACTER",
            "contains the control character U+0000 at byte 14",
        ),
        Case {
            crd_description: Some(
                "\"us-east1\" is not the region of \"europe-west2-b\" (spec.location); leave it \
                 unset or set europe-west2",
            ),
            ..case(
                "region of another location",
                |s| s.region = Some("us-east1".into()),
                ("spec.region", "spec.region"),
                "MISMATCH",
                "\"us-east1\" is not the region of \"europe-west2-b\" (spec.location); leave \
                 it unset or set europe-west2",
            )
        },
        case(
            "a zone as region",
            |s| s.region = Some("europe-west2-b".into()),
            ("spec.region", "spec.region"),
            "INVALID_VALUE",
            "\"europe-west2-b\" is not a GCP region (such as europe-west2)",
        ),
        case(
            "bad kubernetes version",
            |s| s.kubernetes_version = Some("v1.33".into()),
            ("spec.kubernetes_version", "spec.kubernetesVersion"),
            "INVALID_VALUE",
            "\"v1.33\" is not a GKE version: \"latest\" or MAJOR.MINOR[.PATCH][-gke.N], such \
             as 1.33",
        ),
        case(
            "a job without a runner",
            |s| {
                s.job_spec = Some(JobSpec {
                    runner: None,
                    images_to_test: None,
                })
            },
            ("spec.job_spec.runner", "spec.jobSpec.runner"),
            "REQUIRED",
            "a job needs a runner container (image and command)",
        ),
        case(
            "command without image",
            |s| runner(s).image = None,
            ("spec.job_spec.runner.image", "spec.jobSpec.runner.image"),
            "REQUIRED",
            "a command needs an image to run in",
        ),
        case(
            "no image, no command",
            |s| {
                let r = runner(s);
                r.image = Some(String::new());
                r.command.clear();
            },
            ("spec.job_spec.runner.image", "spec.jobSpec.runner.image"),
            "REQUIRED",
            "the runner container needs an image",
        ),
        case(
            "uppercase image",
            |s| runner(s).image = Some("Cilium/Test:1".into()),
            ("spec.job_spec.runner.image", "spec.jobSpec.runner.image"),
            "INVALID_IMAGE",
            "\"Cilium/Test:1\" is not a valid image reference: repository path components must \
             be lowercase letters and digits, separated by '.', '_' or '-'",
        ),
        case(
            "long image",
            |s| runner(s).image = Some(format!("a/{}", "b".repeat(511))),
            ("spec.job_spec.runner.image", "spec.jobSpec.runner.image"),
            "TOO_LONG",
            "must be at most 512 bytes, got 513",
        ),
        case(
            "init image with a space",
            |s| runner(s).init_image = Some("busybox latest".into()),
            (
                "spec.job_spec.runner.init_image",
                "spec.jobSpec.runner.initImage",
            ),
            "INVALID_IMAGE",
            "\"busybox latest\" is not a valid image reference: it contains whitespace",
        ),
        case(
            "too many arguments",
            |s| runner(s).command = vec!["x".into(); 257],
            (
                "spec.job_spec.runner.command",
                "spec.jobSpec.runner.command",
            ),
            "TOO_MANY",
            "must have at most 256 entries, got 257",
        ),
        case(
            "NUL in an argument",
            |s| runner(s).command.push("a\0".into()),
            (
                "spec.job_spec.runner.command[1]",
                "spec.jobSpec.runner.command[1]",
            ),
            "INVALID_CHARACTER",
            "contains the control character U+0000 at byte 1",
        ),
        case(
            "long argument",
            |s| runner(s).command.push("a".repeat(32 * 1024 + 1)),
            (
                "spec.job_spec.runner.command[1]",
                "spec.jobSpec.runner.command[1]",
            ),
            "TOO_LONG",
            "must be at most 32768 bytes, got 32769",
        ),
        case(
            "bad config map name",
            |s| runner(s).config_map = Some("My_Config".into()),
            (
                "spec.job_spec.runner.config_map",
                "spec.jobSpec.runner.configMap",
            ),
            "INVALID_NAME",
            "\"My_Config\" is not a DNS-1123 subdomain: it must consist of lowercase letters, \
             digits and '-' or '.', and start and end with a letter or digit",
        ),
        case(
            "too many images to test",
            |s| {
                let images = (0..65)
                    .map(|i| (format!("i{i}"), "busybox".into()))
                    .collect();
                if let Some(job) = s.job_spec.as_mut() {
                    job.images_to_test = Some(images);
                }
            },
            ("spec.job_spec.images_to_test", "spec.jobSpec.imagesToTest"),
            "TOO_MANY",
            "must have at most 64 entries, got 65",
        ),
        case(
            "bad image to test",
            |s| {
                if let Some(job) = s.job_spec.as_mut() {
                    job.images_to_test =
                        Some(BTreeMap::from([("cilium".into(), "Bad Image".into())]));
                }
            },
            (
                "spec.job_spec.images_to_test[cilium]",
                "spec.jobSpec.imagesToTest[cilium]",
            ),
            "INVALID_IMAGE",
            "\"Bad Image\" is not a valid image reference: it contains whitespace",
        ),
        case(
            "spec strings over the total",
            |s| {
                runner(s).env = (0..20)
                    .map(|i| EnvVar {
                        value: Some("v".repeat(30_000)),
                        ..var(&format!("V{i}"))
                    })
                    .collect()
            },
            ("spec", "spec"),
            "TOO_LARGE",
            "the spec's strings must add up to at most 524288 bytes, got 600159",
        ),
    ];
    cases.extend(env_cases());
    cases
}

fn env_cases() -> Vec<Case> {
    vec![
        case(
            "100,000 env entries",
            |s| runner(s).env = vec![var("A"); 100_000],
            ("spec.job_spec.runner.env", "spec.jobSpec.runner.env"),
            "TOO_MANY",
            "must have at most 256 entries, got 100000",
        ),
        case(
            "NUL in an env name",
            |s| runner(s).env = vec![var("A\0B")],
            (
                "spec.job_spec.runner.env[0].name",
                "spec.jobSpec.runner.env[0].name",
            ),
            "INVALID_NAME",
            "\"A\\0B\" is not a valid environment variable name: letters, digits, '_', '-' and \
             '.', not starting with a digit",
        ),
        case(
            "env name with '='",
            |s| runner(s).env = vec![var("A=B")],
            (
                "spec.job_spec.runner.env[0].name",
                "spec.jobSpec.runner.env[0].name",
            ),
            "INVALID_NAME",
            "\"A=B\" is not a valid environment variable name: letters, digits, '_', '-' and \
             '.', not starting with a digit",
        ),
        case(
            "empty env name",
            |s| runner(s).env = vec![var("")],
            (
                "spec.job_spec.runner.env[0].name",
                "spec.jobSpec.runner.env[0].name",
            ),
            "INVALID_NAME",
            "must not be empty",
        ),
        case(
            "reserved env name",
            |s| runner(s).env = vec![var("OK"), var("KUBECONFIG")],
            (
                "spec.job_spec.runner.env[1].name",
                "spec.jobSpec.runner.env[1].name",
            ),
            "RESERVED",
            "KUBECONFIG is set by the runner to reach the test cluster",
        ),
        case(
            "duplicate env name",
            |s| runner(s).env = vec![var("A"), var("B"), var("A")],
            (
                "spec.job_spec.runner.env[2].name",
                "spec.jobSpec.runner.env[2].name",
            ),
            "DUPLICATE",
            "A is set twice",
        ),
        case(
            "NUL in an env value",
            |s| {
                runner(s).env = vec![EnvVar {
                    value: Some("a\0".into()),
                    ..var("A")
                }]
            },
            (
                "spec.job_spec.runner.env[0].value",
                "spec.jobSpec.runner.env[0].value",
            ),
            "INVALID_CHARACTER",
            "contains the control character U+0000 at byte 1",
        ),
        case(
            "long env value",
            |s| {
                runner(s).env = vec![EnvVar {
                    value: Some("a".repeat(32 * 1024 + 1)),
                    ..var("A")
                }]
            },
            (
                "spec.job_spec.runner.env[0].value",
                "spec.jobSpec.runner.env[0].value",
            ),
            "TOO_LONG",
            "must be at most 32768 bytes, got 32769",
        ),
        Case {
            crd_description: Some(
                "must set one source: fieldRef, resourceFieldRef or configMapKeyRef",
            ),
            ..case(
                "empty valueFrom",
                |s| runner(s).env = vec![from(EnvVarSource::default())],
                (
                    "spec.job_spec.runner.env[0].value_from",
                    "spec.jobSpec.runner.env[0].valueFrom",
                ),
                "REQUIRED",
                "must set one source: field_ref, resource_field_ref or config_map_key_ref",
            )
        },
        Case {
            crd_description: Some("set either value or valueFrom, not both"),
            ..case(
                "value and valueFrom",
                |s| {
                    runner(s).env = vec![EnvVar {
                        value: Some("x".into()),
                        ..from(EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                field_path: "metadata.name".into(),
                                api_version: None,
                            }),
                            ..EnvVarSource::default()
                        })
                    }]
                },
                (
                    "spec.job_spec.runner.env[0].value_from",
                    "spec.jobSpec.runner.env[0].valueFrom",
                ),
                "CONFLICT",
                "set either value or value_from, not both",
            )
        },
        case(
            "secretKeyRef to another run's kubeconfig",
            |s| {
                runner(s).env = vec![from(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "other-run-kubeconfig".into(),
                        key: "kubeconfig".into(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                })]
            },
            (
                "spec.job_spec.runner.env[0].value_from.secret_key_ref",
                "spec.jobSpec.runner.env[0].valueFrom.secretKeyRef",
            ),
            "FORBIDDEN",
            "a job may not read Secrets: the namespace's Secrets include every run's cluster \
             credentials. The job's own test cluster is reachable through $KUBECONFIG; pass \
             other values with value, or in the run's ConfigMap",
        ),
        Case {
            crd_description: Some(
                "\"other-run-user\" is not this run's ConfigMap: a job may read keys of its own \
                 ConfigMap (spec.jobSpec.runner.configMap) only; the namespace's other \
                 ConfigMaps belong to other runs",
            ),
            ..case(
                "configMapKeyRef to another ConfigMap",
                |s| {
                    let r = runner(s);
                    r.config_map = Some("mine".into());
                    r.env = vec![from(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "other-run-user".into(),
                            key: "init-manifest".into(),
                            optional: None,
                        }),
                        ..EnvVarSource::default()
                    })]
                },
                (
                    "spec.job_spec.runner.env[0].value_from.config_map_key_ref.name",
                    "spec.jobSpec.runner.env[0].valueFrom.configMapKeyRef.name",
                ),
                "FORBIDDEN",
                "\"other-run-user\" is not this run's ConfigMap: a job may read keys of its own \
                 ConfigMap (spec.job_spec.runner.config_map) only; the namespace's other \
                 ConfigMaps belong to other runs",
            )
        },
        case(
            "fieldRef to no pod field",
            |s| {
                runner(s).env = vec![from(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "spec.containers".into(),
                        api_version: None,
                    }),
                    ..EnvVarSource::default()
                })]
            },
            (
                "spec.job_spec.runner.env[0].value_from.field_ref.field_path",
                "spec.jobSpec.runner.env[0].valueFrom.fieldRef.fieldPath",
            ),
            "INVALID_VALUE",
            "\"spec.containers\" is not a pod field Kubernetes can expose: one of \
             metadata.name, metadata.namespace, metadata.uid, metadata.labels, \
             metadata.annotations, spec.nodeName, spec.serviceAccountName, status.hostIP, \
             status.hostIPs, status.podIP, status.podIPs, or metadata.labels['KEY'] / \
             metadata.annotations['KEY']",
        ),
        case(
            "resourceFieldRef to no resource",
            |s| {
                runner(s).env = vec![from(EnvVarSource {
                    resource_field_ref: Some(ResourceFieldSelector {
                        resource: "limits.gpu".into(),
                        ..ResourceFieldSelector::default()
                    }),
                    ..EnvVarSource::default()
                })]
            },
            (
                "spec.job_spec.runner.env[0].value_from.resource_field_ref.resource",
                "spec.jobSpec.runner.env[0].valueFrom.resourceFieldRef.resource",
            ),
            "INVALID_VALUE",
            "\"limits.gpu\" is not a container resource: one of limits.cpu, limits.memory, \
             limits.ephemeral-storage, requests.cpu, requests.memory, \
             requests.ephemeral-storage",
        ),
    ]
}

#[test]
fn the_seed_example_and_an_empty_spec_are_valid() {
    assert_eq!(rendered(&object_violations(&seed_spec()), Naming::Crd), []);
    assert_eq!(
        rendered(
            &object_violations(&TestClusterGKESpec::default()),
            Naming::Crd
        ),
        []
    );
    assert_eq!(request_violations(request(seed_spec())), []);
}

/// Each rule, through both entry points: the broker's request check reports the proto path, the
/// provisioner's object check the CRD path, with the same reason.
#[test]
fn each_rule_names_its_field_in_both_spellings() {
    for case in spec_cases() {
        let mut spec = seed_spec();
        (case.edit)(&mut spec);
        let proto = (
            case.proto.to_owned(),
            case.reason.to_owned(),
            case.description.to_owned(),
        );
        let crd = (
            case.crd.to_owned(),
            case.reason.to_owned(),
            case.crd_description.unwrap_or(case.description).to_owned(),
        );
        assert_eq!(
            rendered(&object_violations(&spec), Naming::Crd),
            [crd],
            "{}",
            case.what
        );
        assert_eq!(request_violations(request(spec)), [proto], "{}", case.what);
    }
}

#[test]
fn allowed_value_sources() {
    let mut spec = seed_spec();
    let r = runner(&mut spec);
    r.config_map = Some("mine".into());
    r.env = vec![
        from(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.labels['team']".into(),
                api_version: Some("v1".into()),
            }),
            ..EnvVarSource::default()
        }),
        EnvVar {
            name: "W".into(),
            ..from(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: "mine".into(),
                    key: "init-manifest".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            })
        },
    ];
    assert_eq!(rendered(&object_violations(&spec), Naming::Crd), []);
}

/// The broker's ConfigMap for an init manifest is the run's own before the spec names it.
#[test]
fn a_requests_init_manifest_config_map_is_its_own() {
    let mut spec = seed_spec();
    runner(&mut spec).env = vec![from(EnvVarSource {
        config_map_key_ref: Some(ConfigMapKeySelector {
            name: "testme-1-user".into(),
            key: "init-manifest".into(),
            optional: None,
        }),
        ..EnvVarSource::default()
    })];
    let mut with_manifest = request(spec);
    with_manifest.init_manifest = Some("kind: Namespace".into());
    assert_eq!(request_violations(with_manifest), []);
}

#[test]
fn a_huge_env_is_refused_at_once() {
    let mut spec = seed_spec();
    runner(&mut spec).env = (0..100_000).map(|i| var(&format!("V{i}"))).collect();
    let started = Instant::now();
    let violations = object_violations(&spec);
    let took = started.elapsed();
    assert_eq!(violations.len(), 1);
    assert!(took < Duration::from_millis(10), "took {took:?}");

    // Under the limit, every entry is checked once: 256 duplicates are 255 violations, of which
    // the first 32 are kept.
    runner(&mut spec).env = vec![var("A"); 256];
    let violations = object_violations(&spec);
    assert_eq!(violations.len(), 255);
    assert!(
        violations
            .summary(Naming::Crd)
            .ends_with("spec.jobSpec.runner.env[32].name: A is set twice; and 223 more")
    );
}

#[test]
fn request_fields() {
    let triple = |f: &str, r: &str, d: &str| (f.to_owned(), r.to_owned(), d.to_owned());
    let base = || request(TestClusterGKESpec::default());
    type Edit = fn(&mut api::CreateTestClusterRequest);
    let cases: Vec<(&str, Edit, Triple)> = vec![
        (
            "no name",
            |r| r.name.clear(),
            triple(
                "name",
                "REQUIRED",
                "set name, or name_prefix to have one generated",
            ),
        ),
        (
            "name and prefix",
            |r| r.name_prefix = "ci-".into(),
            triple(
                "name_prefix",
                "CONFLICT",
                "set either name or name_prefix, not both",
            ),
        ),
        (
            "long name",
            |r| r.name = "a".repeat(35),
            triple(
                "name",
                "TOO_LONG",
                "must be at most 34 characters (it is 35), so that the GKE cluster name (name, \
                 '-' and 5 random characters) fits in 40",
            ),
        ),
        (
            "long prefix",
            |r| {
                r.name.clear();
                r.name_prefix = "a".repeat(30);
            },
            triple(
                "name_prefix",
                "TOO_LONG",
                "must be at most 29 characters (it is 30), so that the generated name and the \
                 GKE cluster name made from it fit in 40",
            ),
        ),
        (
            "bad namespace",
            |r| r.namespace = "Not_A_Namespace".into(),
            triple(
                "namespace",
                "INVALID_NAME",
                "\"Not_A_Namespace\" is not a DNS-1123 label: it must consist of lowercase \
                 letters, digits and '-', and start and end with a letter or digit",
            ),
        ),
        (
            "oversize description",
            |r| r.description = "d".repeat(128 * 1024 + 1),
            triple(
                "description",
                "TOO_LONG",
                "must be at most 131072 bytes, got 131073",
            ),
        ),
        (
            "reserved label",
            |r| {
                r.labels
                    .insert("clusters.ci.cilium.io/test-cluster".into(), "other".into());
            },
            triple(
                "labels[clusters.ci.cilium.io/test-cluster]",
                "RESERVED",
                "keys under clusters.ci.cilium.io/ are set by testcluster itself",
            ),
        ),
        (
            "reserved annotation",
            |r| {
                r.annotations
                    .insert("clusters.ci.cilium.io/anything".into(), "x".into());
            },
            triple(
                "annotations[clusters.ci.cilium.io/anything]",
                "RESERVED",
                "keys under clusters.ci.cilium.io/ are set by testcluster itself",
            ),
        ),
        (
            "commit hash label set directly",
            |r| {
                r.labels
                    .insert("ci.cilium.io/github-commit-hash".into(), "abc".into());
            },
            triple(
                "labels[ci.cilium.io/github-commit-hash]",
                "RESERVED",
                "is set with github.commit_hash",
            ),
        ),
        (
            "description annotation set directly",
            |r| {
                r.annotations
                    .insert("ci.cilium.io/cluster-description".into(), "x".into());
            },
            triple(
                "annotations[ci.cilium.io/cluster-description]",
                "RESERVED",
                "is set with description",
            ),
        ),
        (
            "bad label key",
            |r| {
                r.labels.insert("bad key!".into(), "v".into());
            },
            triple(
                "labels[bad key!]",
                "INVALID_KEY",
                "key name \"bad key!\" must consist of letters, digits, '-', '_' or '.', and \
                 start and end with a letter or digit",
            ),
        ),
        (
            "too many labels",
            |r| {
                r.labels = (0..65).map(|i| (format!("l{i}"), "v".into())).collect();
            },
            triple("labels", "TOO_MANY", "must have at most 64 entries, got 65"),
        ),
        (
            "annotations over their total",
            |r| {
                r.annotations = (0..3)
                    .map(|i| (format!("a{i}"), "v".repeat(30_000)))
                    .collect();
            },
            triple(
                "annotations",
                "TOO_LARGE",
                "keys and values must add up to at most 65536 bytes, got 90006",
            ),
        ),
        (
            "control character in an annotation",
            |r| {
                r.annotations.insert("a".into(), "\u{1b}[31m".into());
            },
            triple(
                "annotations[a]",
                "INVALID_CHARACTER",
                "contains the control character U+001B at byte 0",
            ),
        ),
        (
            "bad commit hash",
            |r| {
                r.github = Some(api::GitHubInfo {
                    commit_hash: "not a hash".into(),
                    ..Default::default()
                })
            },
            triple(
                "github.commit_hash",
                "INVALID_VALUE",
                "\"not a hash\" must consist of letters, digits, '-', '_' or '.', and start and \
                 end with a letter or digit",
            ),
        ),
        (
            "long status context",
            |r| {
                r.github = Some(api::GitHubInfo {
                    context: "c".repeat(257),
                    ..Default::default()
                })
            },
            triple(
                "github.context",
                "TOO_LONG",
                "must be at most 256 bytes, got 257",
            ),
        ),
        (
            "manifest without a job",
            |r| r.init_manifest = Some("x: y".into()),
            triple(
                "init_manifest",
                "REQUIRED",
                "needs spec.job_spec.runner: the manifest is handed to the job",
            ),
        ),
        (
            "oversize manifest",
            |r| {
                r.spec = Some(seed_spec().into());
                r.init_manifest = Some("x".repeat(1024 * 1024));
            },
            triple(
                "init_manifest",
                "TOO_LONG",
                "must be at most 1047552 bytes, got 1048576",
            ),
        ),
        (
            "manifest and config map",
            |r| {
                let mut spec = seed_spec();
                runner(&mut spec).config_map = Some("mine".into());
                r.spec = Some(spec.into());
                r.init_manifest = Some("x: y".into());
            },
            triple(
                "init_manifest",
                "CONFLICT",
                "set either init_manifest (the broker creates the ConfigMap) or \
                 spec.job_spec.runner.config_map (an existing one), not both",
            ),
        ),
    ];
    for (what, edit, expected) in cases {
        let mut request = base();
        edit(&mut request);
        assert_eq!(request_violations(request), [expected], "{what}");
    }
}

#[test]
fn a_valid_request_is_defaulted_and_its_metadata_folded_in() {
    let mut req = request(TestClusterGKESpec::default());
    req.namespace.clear();
    req.github = Some(api::GitHubInfo {
        commit_hash: "abc123".into(),
        repo_owner: "cilium".into(),
        repo_name: "cilium".into(),
        context: String::new(),
    });
    req.description = "nightly".into();
    req.labels.insert("team".into(), "net".into());
    let (checked, violations) = check_create(req, "default-ns", TEMPLATES);
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(checked.namespace, "default-ns");
    assert_eq!(checked.name, RequestedName::Exact("testme-1".into()));
    assert_eq!(checked.spec.config_template.as_deref(), Some("basic"));
    assert_eq!(checked.spec.nodes, Some(2));
    assert_eq!(checked.spec.machine_type.as_deref(), Some("n1-standard-4"));
    assert_eq!(checked.spec.project, None, "the provisioner's to choose");
    assert_eq!(
        checked.labels,
        BTreeMap::from([
            ("ci.cilium.io/github-commit-hash".into(), "abc123".into()),
            ("team".into(), "net".into()),
        ])
    );
    assert_eq!(
        checked.annotations,
        BTreeMap::from([
            ("ci.cilium.io/cluster-description".into(), "nightly".into()),
            ("ci.cilium.io/github-repo-name".into(), "cilium".into()),
            ("ci.cilium.io/github-repo-owner".into(), "cilium".into()),
        ])
    );
    let mut prefixed = request(TestClusterGKESpec::default());
    prefixed.name.clear();
    prefixed.name_prefix = "ci-".into();
    let (checked, violations) = check_create(prefixed, "ns", TEMPLATES);
    assert!(violations.is_empty());
    assert_eq!(checked.name.representative(), "ci-xxxxx");
}

#[test]
fn kubectl_objects_metadata() {
    let labels = BTreeMap::from([
        (
            "clusters.ci.cilium.io/test-cluster".to_owned(),
            "x".to_owned(),
        ),
        (
            "ci.cilium.io/github-commit-hash".to_owned(),
            "abc".to_owned(),
        ),
    ]);
    let annotations = BTreeMap::from([
        (
            "ci.cilium.io/cluster-description".to_owned(),
            "d".repeat(128 * 1024 + 1),
        ),
        (
            "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
            "{}".to_owned(),
        ),
    ]);
    let spec = seed_spec();
    let violations = validate_object(
        ObjectParts {
            name: "Bad",
            labels: &labels,
            annotations: &annotations,
            spec: &spec,
        },
        TEMPLATES,
    );
    assert_eq!(
        violations.summary(Naming::Crd),
        "metadata.name: \"Bad\" is not a valid GKE cluster name: it must start with a lowercase \
         letter, contain only lowercase letters, digits and '-', and not end with '-'; \
         metadata.labels[clusters.ci.cilium.io/test-cluster]: keys under clusters.ci.cilium.io/ \
         are set by testcluster itself; \
         metadata.annotations[ci.cilium.io/cluster-description]: must be at most 131072 bytes, \
         got 131073"
    );
}

#[test]
fn the_brokers_provenance_is_reserved_in_requests_but_accepted_on_objects() {
    use crate::metadata::{ANNOTATION_CREATED_BY, ANNOTATION_TENANT};
    let provenance = BTreeMap::from([
        (ANNOTATION_CREATED_BY.to_owned(), "token:alice".to_owned()),
        (ANNOTATION_TENANT.to_owned(), "a".to_owned()),
    ]);
    let spec = seed_spec();
    let on_object = validate_object(
        ObjectParts {
            name: "testme-1",
            labels: &BTreeMap::new(),
            annotations: &provenance,
            spec: &spec,
        },
        TEMPLATES,
    );
    assert!(on_object.is_empty(), "{}", on_object.summary(Naming::Crd));
    let mut asked = request(spec);
    asked.annotations = provenance;
    let (_, in_request) = check_create(asked, "test-clusters", TEMPLATES);
    let reasons: Vec<String> = rendered(&in_request, Naming::Proto)
        .into_iter()
        .map(|(field, reason, _)| format!("{field} {reason}"))
        .collect();
    assert_eq!(
        reasons,
        [
            "annotations[clusters.ci.cilium.io/created-by] RESERVED",
            "annotations[clusters.ci.cilium.io/tenant] RESERVED"
        ]
    );
}

#[test]
fn object_refs_are_kubernetes_names() {
    let fields_of = |violations: Violations| -> Vec<String> {
        violations
            .render(Naming::Proto)
            .into_iter()
            .map(|v| v.field)
            .collect()
    };
    assert!(check_object_ref("test-clusters", "testme-1").is_empty());
    assert!(check_object_ref("test-clusters", "made.with.kubectl").is_empty());
    for name in ["x?dryRun=All", "x/status", "X", "a b"] {
        assert_eq!(
            fields_of(check_object_ref("test-clusters", name)),
            ["name"],
            "{name}"
        );
    }
    assert_eq!(fields_of(check_object_ref("ns/x", "ok")), ["namespace"]);
    assert_eq!(fields_of(check_object_ref("a.b", "c/d")).len(), 2);
    assert!(check_list_namespace("").is_empty());
    assert_eq!(fields_of(check_list_namespace("x?watch=1")), ["namespace"]);
}
