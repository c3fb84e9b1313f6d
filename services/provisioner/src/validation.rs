//! Validation of a `TestClusterGKE` spec and name, shared by `ValidateSpec` (the broker asks before
//! it creates anything) and by the controller (for objects applied with kubectl, which no admission
//! webhook checked). Each problem is a [`FieldViolation`] naming the field's path, so the broker can
//! hand them on as `google.rpc.BadRequest` and the controller can put them in a condition.

use testcluster_api::internal::v1::FieldViolation;
use testcluster_resources::metadata::DEFAULT_CONFIG_TEMPLATE;
use testcluster_resources::{JobRunnerSpec, TestClusterGKESpec};

use crate::template;

/// GKE's limit on cluster names.
pub const MAX_CLUSTER_NAME_LEN: usize = 40;
/// Length of the random suffix of `status.clusterName` (`<name>-<suffix>`).
pub const CLUSTER_NAME_SUFFIX_LEN: usize = 5;
/// The longest `metadata.name` whose cluster name still fits GKE's limit.
pub const MAX_NAME_LEN: usize = MAX_CLUSTER_NAME_LEN - 1 - CLUSTER_NAME_SUFFIX_LEN;
/// A test cluster is for tests: more nodes than this is a typo or a runaway bill.
pub const MAX_NODES: i32 = 100;

/// Machine-readable reasons of [`FieldViolation`]s (`UPPER_SNAKE_CASE`, as `google.rpc` wants).
pub mod reason {
    pub const OUT_OF_RANGE: &str = "OUT_OF_RANGE";
    pub const UNKNOWN_TEMPLATE: &str = "UNKNOWN_TEMPLATE";
    pub const TOO_LONG: &str = "TOO_LONG";
    pub const INVALID_NAME: &str = "INVALID_NAME";
    pub const REQUIRED: &str = "REQUIRED";
    pub const INVALID_IMAGE: &str = "INVALID_IMAGE";
    pub const INVALID_VALUE: &str = "INVALID_VALUE";
    pub const RESERVED: &str = "RESERVED";
    pub const DUPLICATE: &str = "DUPLICATE";
    pub const CONFLICT: &str = "CONFLICT";
}

/// The environment variables the runner sets itself (docs/lifecycle.md); a user's value would cut
/// the job off from its test cluster. The broker refuses the same names.
pub const RESERVED_ENV: &[&str] = &["KUBECONFIG", "CLUSTER_NAME", "CLUSTER_LOCATION"];

/// Every problem with `name` and `spec`, in field order; empty when both are valid. An empty
/// `name` is not checked: `ValidateSpec` callers may check a spec on its own.
pub fn validate(name: &str, spec: &TestClusterGKESpec) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    if !name.is_empty() {
        validate_name(name, &mut violations);
    }
    let template = spec
        .config_template
        .as_deref()
        .unwrap_or(DEFAULT_CONFIG_TEMPLATE);
    if template::find(template).is_none() {
        violations.push(violation(
            "spec.configTemplate",
            format!(
                "unknown template {template:?}; known templates: {}",
                template::names().join(", ")
            ),
            reason::UNKNOWN_TEMPLATE,
        ));
    }
    if let Some(nodes) = spec.nodes {
        if nodes < 1 {
            violations.push(violation(
                "spec.nodes",
                "must be at least 1".to_owned(),
                reason::OUT_OF_RANGE,
            ));
        } else if nodes > MAX_NODES {
            violations.push(violation(
                "spec.nodes",
                format!("must be at most {MAX_NODES}"),
                reason::OUT_OF_RANGE,
            ));
        }
    }
    if let Some(machine_type) = &spec.machine_type
        && !is_gcp_identifier(machine_type)
    {
        violations.push(violation(
            "spec.machineType",
            format!(
                "{machine_type:?} is not a GCE machine type (lowercase letters, digits and '-')"
            ),
            reason::INVALID_VALUE,
        ));
    }
    for (field, value) in [
        ("spec.location", &spec.location),
        ("spec.region", &spec.region),
    ] {
        if let Some(value) = value
            && !is_gcp_identifier(value)
        {
            violations.push(violation(
                field,
                format!("{value:?} is not a GCP location (lowercase letters, digits and '-')"),
                reason::INVALID_VALUE,
            ));
        }
    }
    if let Some(job) = &spec.job_spec {
        match &job.runner {
            Some(runner) => validate_runner(runner, &mut violations),
            None => violations.push(violation(
                "spec.jobSpec.runner",
                "a job needs a runner container (image and command)".to_owned(),
                reason::REQUIRED,
            )),
        }
    }
    violations
}

/// The runner container: the same rules (and descriptions) as the broker's, so that an object
/// applied with kubectl is refused for what a request would be refused for.
fn validate_runner(runner: &JobRunnerSpec, violations: &mut Vec<FieldViolation>) {
    match runner.image.as_deref() {
        None | Some("") if !runner.command.is_empty() => violations.push(violation(
            "spec.jobSpec.runner.image",
            "a command needs an image to run in".to_owned(),
            reason::REQUIRED,
        )),
        None | Some("") => violations.push(violation(
            "spec.jobSpec.runner.image",
            "the runner container needs an image".to_owned(),
            reason::REQUIRED,
        )),
        Some(image) => check_image("spec.jobSpec.runner.image", image, violations),
    }
    if let Some(image) = runner.init_image.as_deref() {
        check_image("spec.jobSpec.runner.initImage", image, violations);
    }
    let mut seen: Vec<&str> = Vec::new();
    for (index, env) in runner.env.iter().enumerate() {
        let field = format!("spec.jobSpec.runner.env[{index}]");
        let name = env.name.as_str();
        if name.is_empty() || name.contains('=') {
            violations.push(violation(
                &format!("{field}.name"),
                "must be non-empty and must not contain '='".to_owned(),
                reason::INVALID_NAME,
            ));
        } else if RESERVED_ENV.contains(&name) {
            violations.push(violation(
                &format!("{field}.name"),
                format!("{name} is set by the runner to reach the test cluster"),
                reason::RESERVED,
            ));
        } else if seen.contains(&name) {
            violations.push(violation(
                &format!("{field}.name"),
                format!("{name} is set twice"),
                reason::DUPLICATE,
            ));
        }
        seen.push(name);
        if env.value.is_some() && env.value_from.is_some() {
            violations.push(violation(
                &format!("{field}.valueFrom"),
                "set either value or valueFrom, not both".to_owned(),
                reason::CONFLICT,
            ));
        }
    }
}

/// One line for a condition message or an Event: `field: description; field: description`.
pub fn summary(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

fn violation(field: &str, description: String, reason: &str) -> FieldViolation {
    FieldViolation {
        field: field.to_owned(),
        description,
        reason: reason.to_owned(),
    }
}

/// The name becomes the GKE cluster name plus `-` and a 5-character suffix, so it must follow
/// GKE's rules: a lowercase letter first, then lowercase letters, digits and `-`, no `-` last.
fn validate_name(name: &str, violations: &mut Vec<FieldViolation>) {
    let field = "metadata.name";
    if name.len() > MAX_NAME_LEN {
        violations.push(violation(
            field,
            format!(
                "must be at most {MAX_NAME_LEN} characters (it is {}), so that the cluster name \
                 (name, '-' and {CLUSTER_NAME_SUFFIX_LEN} random characters) fits GKE's limit of \
                 {MAX_CLUSTER_NAME_LEN}",
                name.len()
            ),
            reason::TOO_LONG,
        ));
    }
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    let allowed = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !starts_with_letter || !allowed || name.ends_with('-') {
        violations.push(violation(
            field,
            format!(
                "{name:?} is not a valid GKE cluster name: it must start with a lowercase letter, \
                 contain only lowercase letters, digits and '-', and not end with '-'"
            ),
            reason::INVALID_NAME,
        ));
    }
}

fn is_gcp_identifier(value: &str) -> bool {
    !value.is_empty()
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.ends_with('-')
}

fn check_image(field: &str, image: &str, violations: &mut Vec<FieldViolation>) {
    if let Err(problem) = check_image_reference(image) {
        violations.push(violation(
            field,
            format!("{image:?} is not a valid image reference: {problem}"),
            reason::INVALID_IMAGE,
        ));
    }
}

/// A pragmatic subset of the distribution reference grammar:
/// `[registry[:port]/]path[:tag][@algorithm:hex]`, path components lowercase.
fn check_image_reference(image: &str) -> Result<(), &'static str> {
    const MAX_LEN: usize = 4096;
    if image.is_empty() {
        return Err("it is empty");
    }
    if image.len() > MAX_LEN {
        return Err("it is longer than 4096 characters");
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let (algorithm, hex) = digest
            .split_once(':')
            .ok_or("the digest has no algorithm")?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c));
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("the digest is not algorithm:hex");
        }
    }
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !tag_ok {
            return Err("the tag must be 1-128 letters, digits, '_', '.' or '-'");
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // A first component with '.' or ':' (or `localhost`) is a registry host, which may have
    // uppercase letters and a port; the repository path may not.
    if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost")
    {
        let host = components.remove(0);
        let host_ok = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !host_ok {
            return Err("the registry host is not a host name");
        }
    }
    for component in components {
        let ok = component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !ok {
            return Err(
                "repository path components must be lowercase letters and digits, separated by '.', '_' or '-'",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};
    use testcluster_resources::JobSpec;

    fn seed_spec() -> TestClusterGKESpec {
        TestClusterGKESpec {
            project: Some("cilium-ci".into()),
            config_template: Some("basic".into()),
            location: Some("europe-west2-b".into()),
            region: Some("europe-west2".into()),
            kubernetes_version: None,
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

    fn fields(violations: &[FieldViolation]) -> Vec<(&str, &str, &str)> {
        violations
            .iter()
            .map(|v| (v.field.as_str(), v.reason.as_str(), v.description.as_str()))
            .collect()
    }

    #[test]
    fn the_seed_example_and_an_empty_spec_are_valid() {
        assert_eq!(fields(&validate("testme-1", &seed_spec())), []);
        assert_eq!(
            fields(&validate("testme-1", &TestClusterGKESpec::default())),
            []
        );
        // 34 characters is the longest name that fits.
        assert_eq!(fields(&validate(&"a".repeat(34), &seed_spec())), []);
    }

    #[test]
    fn each_rule_names_its_field() {
        type Edit = fn(&mut TestClusterGKESpec);
        let cases: Vec<(&str, Edit, (&str, &str, &str))> = vec![
            (
                "zero nodes",
                |s| s.nodes = Some(0),
                ("spec.nodes", "OUT_OF_RANGE", "must be at least 1"),
            ),
            (
                "negative nodes",
                |s| s.nodes = Some(-3),
                ("spec.nodes", "OUT_OF_RANGE", "must be at least 1"),
            ),
            (
                "too many nodes",
                |s| s.nodes = Some(101),
                ("spec.nodes", "OUT_OF_RANGE", "must be at most 100"),
            ),
            (
                "unknown template",
                |s| s.config_template = Some("nope".into()),
                (
                    "spec.configTemplate",
                    "UNKNOWN_TEMPLATE",
                    "unknown template \"nope\"; known templates: basic",
                ),
            ),
            (
                "command without image",
                |s| {
                    s.job_spec = Some(JobSpec {
                        runner: Some(JobRunnerSpec {
                            command: vec!["true".into()],
                            ..JobRunnerSpec::default()
                        }),
                        images_to_test: None,
                    })
                },
                (
                    "spec.jobSpec.runner.image",
                    "REQUIRED",
                    "a command needs an image to run in",
                ),
            ),
            (
                "uppercase image",
                |s| {
                    if let Some(r) = s.job_spec.as_mut().and_then(|j| j.runner.as_mut()) {
                        r.image = Some("Cilium/Test:1".into());
                    }
                },
                (
                    "spec.jobSpec.runner.image",
                    "INVALID_IMAGE",
                    "\"Cilium/Test:1\" is not a valid image reference: repository path components must be lowercase letters and digits, separated by '.', '_' or '-'",
                ),
            ),
            (
                "init image with a space",
                |s| {
                    if let Some(r) = s.job_spec.as_mut().and_then(|j| j.runner.as_mut()) {
                        r.init_image = Some("busybox latest".into());
                    }
                },
                (
                    "spec.jobSpec.runner.initImage",
                    "INVALID_IMAGE",
                    "\"busybox latest\" is not a valid image reference: it contains whitespace",
                ),
            ),
            (
                "bad machine type",
                |s| s.machine_type = Some("N1 Standard".into()),
                (
                    "spec.machineType",
                    "INVALID_VALUE",
                    "\"N1 Standard\" is not a GCE machine type (lowercase letters, digits and '-')",
                ),
            ),
            (
                "bad location",
                |s| s.location = Some("Europe/West".into()),
                (
                    "spec.location",
                    "INVALID_VALUE",
                    "\"Europe/West\" is not a GCP location (lowercase letters, digits and '-')",
                ),
            ),
        ];
        for (what, edit, expected) in cases {
            let mut spec = seed_spec();
            edit(&mut spec);
            let violations = validate("testme-1", &spec);
            assert_eq!(fields(&violations), [expected], "{what}");
        }
    }

    fn runner_spec(image: Option<&str>, command: &[&str], env: Vec<EnvVar>) -> TestClusterGKESpec {
        TestClusterGKESpec {
            job_spec: Some(JobSpec {
                runner: Some(JobRunnerSpec {
                    image: image.map(str::to_owned),
                    command: command.iter().map(|s| s.to_string()).collect(),
                    env,
                    ..JobRunnerSpec::default()
                }),
                images_to_test: None,
            }),
            ..seed_spec()
        }
    }

    fn var(name: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some("x".into()),
            value_from: None,
        }
    }

    /// What the broker refuses in a request is refused in an object applied with kubectl, with
    /// the same descriptions.
    #[test]
    fn runner_rules_match_the_brokers() {
        let from_field = EnvVar {
            name: "POD".into(),
            value: Some("x".into()),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
        };
        type Case = (
            &'static str,
            TestClusterGKESpec,
            Vec<(&'static str, &'static str, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "no image, no command",
                runner_spec(None, &[], vec![]),
                vec![(
                    "spec.jobSpec.runner.image",
                    "REQUIRED",
                    "the runner container needs an image",
                )],
            ),
            (
                "empty image, no command",
                runner_spec(Some(""), &[], vec![]),
                vec![(
                    "spec.jobSpec.runner.image",
                    "REQUIRED",
                    "the runner container needs an image",
                )],
            ),
            (
                "a command without an image",
                runner_spec(None, &["sh", "-c", "true"], vec![]),
                vec![(
                    "spec.jobSpec.runner.image",
                    "REQUIRED",
                    "a command needs an image to run in",
                )],
            ),
            (
                "a job without a runner",
                TestClusterGKESpec {
                    job_spec: Some(JobSpec {
                        runner: None,
                        images_to_test: None,
                    }),
                    ..seed_spec()
                },
                vec![(
                    "spec.jobSpec.runner",
                    "REQUIRED",
                    "a job needs a runner container (image and command)",
                )],
            ),
            (
                "each reserved name",
                runner_spec(
                    Some("busybox"),
                    &["env"],
                    vec![
                        var("KUBECONFIG"),
                        var("CLUSTER_NAME"),
                        var("CLUSTER_LOCATION"),
                    ],
                ),
                vec![
                    (
                        "spec.jobSpec.runner.env[0].name",
                        "RESERVED",
                        "KUBECONFIG is set by the runner to reach the test cluster",
                    ),
                    (
                        "spec.jobSpec.runner.env[1].name",
                        "RESERVED",
                        "CLUSTER_NAME is set by the runner to reach the test cluster",
                    ),
                    (
                        "spec.jobSpec.runner.env[2].name",
                        "RESERVED",
                        "CLUSTER_LOCATION is set by the runner to reach the test cluster",
                    ),
                ],
            ),
            (
                "duplicates, empty and '=' names",
                runner_spec(
                    Some("busybox"),
                    &["env"],
                    vec![var("A"), var(""), var("A"), var("B=C"), var("B")],
                ),
                vec![
                    (
                        "spec.jobSpec.runner.env[1].name",
                        "INVALID_NAME",
                        "must be non-empty and must not contain '='",
                    ),
                    (
                        "spec.jobSpec.runner.env[2].name",
                        "DUPLICATE",
                        "A is set twice",
                    ),
                    (
                        "spec.jobSpec.runner.env[3].name",
                        "INVALID_NAME",
                        "must be non-empty and must not contain '='",
                    ),
                ],
            ),
            (
                "value and valueFrom",
                runner_spec(Some("busybox"), &["env"], vec![from_field]),
                vec![(
                    "spec.jobSpec.runner.env[0].valueFrom",
                    "CONFLICT",
                    "set either value or valueFrom, not both",
                )],
            ),
            (
                "ordinary env is fine",
                runner_spec(Some("busybox"), &["env"], vec![var("A"), var("B")]),
                vec![],
            ),
        ];
        for (what, spec, expected) in cases {
            assert_eq!(fields(&validate("testme-1", &spec)), expected, "{what}");
        }
    }

    #[test]
    fn names_must_make_valid_gke_cluster_names() {
        let too_long = "a".repeat(35);
        let violations = validate(&too_long, &seed_spec());
        assert_eq!(
            fields(&violations),
            [(
                "metadata.name",
                "TOO_LONG",
                "must be at most 34 characters (it is 35), so that the cluster name (name, '-' and 5 random characters) fits GKE's limit of 40",
            )]
        );
        for bad in ["1abc", "Abc", "abc-", "a.b", "a_b", "-abc"] {
            let violations = validate(bad, &seed_spec());
            assert_eq!(
                fields(&violations),
                [(
                    "metadata.name",
                    "INVALID_NAME",
                    format!(
                        "{bad:?} is not a valid GKE cluster name: it must start with a lowercase letter, contain only lowercase letters, digits and '-', and not end with '-'"
                    )
                    .as_str(),
                )],
                "{bad}"
            );
        }
        assert!(
            validate("", &seed_spec()).is_empty(),
            "empty names are not checked"
        );
    }

    #[test]
    fn several_problems_are_all_reported_in_field_order() {
        let mut spec = seed_spec();
        spec.nodes = Some(0);
        spec.config_template = Some("nope".into());
        let violations = validate("Bad", &spec);
        let names: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            names,
            ["metadata.name", "spec.configTemplate", "spec.nodes"]
        );
        assert!(summary(&violations).starts_with("metadata.name: \"Bad\" is not"));
    }

    #[test]
    fn image_references() {
        for good in [
            "busybox",
            "cilium/cilium-test:8cfdbfe",
            "quay.io/isovalent/gke-test-cluster-initutil:854733411778d633350adfa1ae66bf11ba658a3f",
            "localhost:5000/a/b_c.d:v1.2-rc",
            "registry.example.com:443/ns/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "gcr.io/distroless/static:nonroot",
        ] {
            assert_eq!(check_image_reference(good), Ok(()), "{good}");
        }
        for (bad, problem) in [
            ("", "it is empty"),
            (
                "img:",
                "the tag must be 1-128 letters, digits, '_', '.' or '-'",
            ),
            ("img@sha256:xyz", "the digest is not algorithm:hex"),
            ("img@nodigest", "the digest has no algorithm"),
            (
                "a//b",
                "repository path components must be lowercase letters and digits, separated by '.', '_' or '-'",
            ),
            ("bad!.host/img", "the registry host is not a host name"),
        ] {
            assert_eq!(check_image_reference(bad), Err(problem), "{bad}");
        }
    }
}
