//! Checking and defaulting a `CreateTestClusterRequest`, before anything is written.
//!
//! Every problem becomes a field violation whose `field` is the request's proto field path in
//! snake_case (`name`, `spec.nodes`, `spec.job_spec.runner.image`, `spec.job_spec.runner.env[0].name`),
//! the same path whichever check found it: the provisioner's violations are rewritten into this form
//! by [`proto_path`]. All violations are collected, so one answer lists everything to fix.

use std::collections::BTreeMap;

use testcluster_api::errors::invalid_argument;
use testcluster_api::v1 as api;
use testcluster_resources::metadata;
use tonic::Status;
use tonic_types::FieldViolation;

use crate::names;

/// The environment variables the runner sets itself; a user's value would cut the job off from its
/// test cluster.
const RESERVED_ENV: &[&str] = &["KUBECONFIG", "CLUSTER_NAME", "CLUSTER_LOCATION"];
/// A ConfigMap holds at most 1 MiB in all.
const MAX_INIT_MANIFEST_BYTES: usize = 1024 * 1024 - 1024;

/// The violations found so far.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Records that `field` is invalid. `reason` is a machine-readable UPPER_SNAKE_CASE code.
    pub fn add(&mut self, field: impl Into<String>, reason: &str, description: impl Into<String>) {
        let mut violation = FieldViolation::new(field, description);
        violation.reason = reason.to_owned();
        self.0.push(violation);
    }

    /// Adds violations found elsewhere, skipping fields already reported: the provisioner checks
    /// some of what the broker checks, and one message per field is enough.
    pub fn merge(&mut self, others: impl IntoIterator<Item = FieldViolation>) {
        for violation in others {
            if !self.0.iter().any(|known| known.field == violation.field) {
                self.0.push(violation);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.0
    }
}

/// How the object's name is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Naming {
    /// The caller's name.
    Exact(String),
    /// Generated from the caller's prefix.
    Prefix(String),
}

impl Naming {
    /// A name of the final length, for checks that need one before it is generated.
    pub fn representative(&self) -> String {
        match self {
            Naming::Exact(name) => name.clone(),
            Naming::Prefix(prefix) => names::placeholder(prefix),
        }
    }

    /// The request field the name comes from.
    pub fn field(&self) -> &'static str {
        match self {
            Naming::Exact(_) => "name",
            Naming::Prefix(_) => "name_prefix",
        }
    }
}

/// A request after checks and defaults: what the broker will write.
#[derive(Clone, Debug)]
pub struct CreatePlan {
    pub namespace: String,
    pub naming: Naming,
    /// The spec with the seed's defaults filled in (template, nodes, machine type). Project and
    /// location stay unset when not given: they are the provisioner's configuration.
    pub spec: api::TestClusterSpec,
    pub init_manifest: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Checks and defaults `request`. The plan is returned even when there are violations, so that the
/// provisioner's checks can run on it and all problems are reported together.
pub fn check(
    request: api::CreateTestClusterRequest,
    default_namespace: &str,
) -> (CreatePlan, Violations) {
    let mut violations = Violations::default();

    let namespace = if request.namespace.is_empty() {
        default_namespace.to_owned()
    } else {
        request.namespace
    };
    check_namespace(&namespace, &mut violations);

    let naming = naming(request.name, request.name_prefix, &mut violations);
    let mut spec = request.spec.unwrap_or_default();
    check_spec(&spec, &mut violations);
    default_spec(&mut spec);
    check_init_manifest(request.init_manifest.as_deref(), &spec, &mut violations);
    let (labels, annotations) = metadata_of(
        request.labels,
        request.annotations,
        request.github,
        request.description,
        &mut violations,
    );

    let plan = CreatePlan {
        namespace,
        naming,
        spec,
        init_manifest: request.init_manifest,
        labels,
        annotations,
    };
    (plan, violations)
}

fn naming(name: String, prefix: String, violations: &mut Violations) -> Naming {
    match (name.is_empty(), prefix.is_empty()) {
        (true, true) => {
            violations.add(
                "name",
                "REQUIRED",
                "set name, or name_prefix to have one generated",
            );
            Naming::Exact(name)
        }
        (false, false) => {
            violations.add(
                "name_prefix",
                "CONFLICT",
                "set either name or name_prefix, not both",
            );
            Naming::Exact(name)
        }
        (false, true) => {
            if let Some(problem) = names::name_problem(&name) {
                violations.add("name", "INVALID_NAME", problem);
            }
            Naming::Exact(name)
        }
        (true, false) => {
            if let Some(problem) = names::prefix_problem(&prefix) {
                violations.add("name_prefix", "INVALID_NAME", problem);
            }
            Naming::Prefix(prefix)
        }
    }
}

fn check_spec(spec: &api::TestClusterSpec, violations: &mut Violations) {
    if let Some(nodes) = spec.nodes
        && nodes < 1
    {
        violations.add(
            "spec.nodes",
            "OUT_OF_RANGE",
            format!("must be at least 1, got {nodes}"),
        );
    }
    // Optional strings: unset takes the default; set but empty is a mistake worth naming.
    let optional_strings = [
        ("spec.project", &spec.project),
        ("spec.config_template", &spec.config_template),
        ("spec.location", &spec.location),
        ("spec.region", &spec.region),
        ("spec.kubernetes_version", &spec.kubernetes_version),
        ("spec.machine_type", &spec.machine_type),
    ];
    for (field, value) in optional_strings {
        if value.as_deref() == Some("") {
            violations.add(field, "EMPTY", "must not be empty when set");
        }
    }
    if let Some(job) = &spec.job_spec {
        match &job.runner {
            Some(runner) => check_runner(runner, violations),
            None => violations.add(
                "spec.job_spec.runner",
                "REQUIRED",
                "a job needs a runner container (image and command)",
            ),
        }
    }
}

fn check_runner(runner: &api::JobRunnerSpec, violations: &mut Violations) {
    match runner.image.as_deref() {
        None | Some("") if !runner.command.is_empty() => violations.add(
            "spec.job_spec.runner.image",
            "REQUIRED",
            "a command needs an image to run in",
        ),
        None | Some("") => violations.add(
            "spec.job_spec.runner.image",
            "REQUIRED",
            "the runner container needs an image",
        ),
        Some(_) => {}
    }
    if runner.init_image.as_deref() == Some("") {
        violations.add(
            "spec.job_spec.runner.init_image",
            "EMPTY",
            "must not be empty when set",
        );
    }
    if let Some(config_map) = &runner.config_map
        && let Some(problem) = names::config_map_problem(config_map)
    {
        violations.add("spec.job_spec.runner.config_map", "INVALID_NAME", problem);
    }
    let mut seen = Vec::new();
    for (index, env) in runner.env.iter().enumerate() {
        let field = format!("spec.job_spec.runner.env[{index}]");
        if env.name.is_empty() || env.name.contains('=') {
            violations.add(
                format!("{field}.name"),
                "INVALID_NAME",
                "must be non-empty and must not contain '='",
            );
        } else if RESERVED_ENV.contains(&env.name.as_str()) {
            violations.add(
                format!("{field}.name"),
                "RESERVED",
                format!(
                    "{} is set by the runner to reach the test cluster",
                    env.name
                ),
            );
        } else if seen.contains(&env.name) {
            violations.add(
                format!("{field}.name"),
                "DUPLICATE",
                format!("{} is set twice", env.name),
            );
        }
        seen.push(env.name.clone());
        if env.value.is_some() && env.value_from.is_some() {
            violations.add(
                format!("{field}.value_from"),
                "CONFLICT",
                "set either value or value_from, not both",
            );
        }
    }
}

/// The seed's defaults, written into the object so that what the caller gets back is what runs.
fn default_spec(spec: &mut api::TestClusterSpec) {
    spec.config_template
        .get_or_insert_with(|| metadata::DEFAULT_CONFIG_TEMPLATE.to_owned());
    spec.nodes.get_or_insert(metadata::DEFAULT_NODES);
    spec.machine_type
        .get_or_insert_with(|| metadata::DEFAULT_MACHINE_TYPE.to_owned());
}

fn check_init_manifest(
    manifest: Option<&str>,
    spec: &api::TestClusterSpec,
    violations: &mut Violations,
) {
    let Some(manifest) = manifest else { return };
    let runner = spec.job_spec.as_ref().and_then(|job| job.runner.as_ref());
    if manifest.is_empty() {
        violations.add("init_manifest", "EMPTY", "must not be empty when set");
    } else if manifest.len() > MAX_INIT_MANIFEST_BYTES {
        violations.add(
            "init_manifest",
            "TOO_LARGE",
            format!("must fit in a ConfigMap: at most {MAX_INIT_MANIFEST_BYTES} bytes"),
        );
    }
    match runner {
        None => violations.add(
            "init_manifest",
            "REQUIRED",
            "needs spec.job_spec.runner: the manifest is handed to the job",
        ),
        Some(runner) if runner.config_map.is_some() => violations.add(
            "init_manifest",
            "CONFLICT",
            "set either init_manifest (the broker creates the ConfigMap) or \
             spec.job_spec.runner.config_map (an existing one), not both",
        ),
        Some(_) => {}
    }
}

/// The object's labels and annotations: the caller's, plus the seed's GitHub ones.
fn metadata_of(
    mut labels: BTreeMap<String, String>,
    mut annotations: BTreeMap<String, String>,
    github: Option<api::GitHubInfo>,
    description: String,
    violations: &mut Violations,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    for (key, value) in &labels {
        if let Some(problem) = key_problem(key) {
            violations.add(format!("labels[{key}]"), "INVALID_KEY", problem);
        } else if let Some(problem) = label_value_problem(value) {
            violations.add(format!("labels[{key}]"), "INVALID_VALUE", problem);
        }
    }
    for key in annotations.keys() {
        if let Some(problem) = key_problem(key) {
            violations.add(format!("annotations[{key}]"), "INVALID_KEY", problem);
        }
    }
    let github = github.unwrap_or_default();
    if !github.commit_hash.is_empty() {
        if let Some(problem) = label_value_problem(&github.commit_hash) {
            violations.add("github.commit_hash", "INVALID_VALUE", problem);
        }
        labels.insert(
            metadata::LABEL_GITHUB_COMMIT_HASH.to_owned(),
            github.commit_hash,
        );
    }
    let github_annotations = [
        (metadata::ANNOTATION_GITHUB_REPO_OWNER, github.repo_owner),
        (metadata::ANNOTATION_GITHUB_REPO_NAME, github.repo_name),
        (metadata::ANNOTATION_GITHUB_CONTEXT, github.context),
        (metadata::ANNOTATION_CLUSTER_DESCRIPTION, description),
    ];
    for (key, value) in github_annotations {
        if !value.is_empty() {
            annotations.insert(key.to_owned(), value);
        }
    }
    (labels, annotations)
}

/// Kubernetes' rule for label and annotation keys: an optional DNS subdomain prefix and `/`, then a
/// name of at most 63 characters.
fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && let Some(problem) = names::config_map_problem(prefix)
    {
        return Some(format!("key prefix {problem}"));
    }
    if name.is_empty() {
        return Some("key name must not be empty".to_owned());
    }
    label_value_problem(name).map(|problem| format!("key name {problem}"))
}

/// Kubernetes' rule for label values (and key names).
fn label_value_problem(value: &str) -> Option<String> {
    let edge = |c: char| c.is_ascii_alphanumeric();
    if value.len() > 63 {
        Some("must be at most 63 characters".to_owned())
    } else if value.is_empty()
        || (value.starts_with(edge)
            && value.ends_with(edge)
            && value
                .chars()
                .all(|c| edge(c) || matches!(c, '-' | '_' | '.')))
    {
        None
    } else {
        Some(format!(
            "{value:?} must consist of letters, digits, '-', '_' or '.', and start and end with a \
             letter or digit"
        ))
    }
}

/// Checks the namespace (after defaulting) and name of a request about one existing test cluster:
/// Get, Watch, Delete and StreamLogs. kube-rs puts both into the URL path as they are, so a name
/// such as `x/status` or `x?dryRun=All` would reach another resource or change the request; only
/// valid Kubernetes names go on (a DNS-1123 label for the namespace, a subdomain for the name).
pub fn check_object_ref(namespace: &str, name: &str) -> Result<(), Status> {
    let mut violations = Violations::default();
    check_namespace(namespace, &mut violations);
    if name.is_empty() {
        violations.add("name", "REQUIRED", "required");
    } else if let Some(problem) = names::object_name_problem(name) {
        violations.add("name", "INVALID_NAME", problem);
    }
    into_result(violations)
}

/// Checks a List request's namespace: empty (every namespace) or a valid namespace name.
pub fn check_list_namespace(namespace: &str) -> Result<(), Status> {
    let mut violations = Violations::default();
    if !namespace.is_empty() {
        check_namespace(namespace, &mut violations);
    }
    into_result(violations)
}

fn check_namespace(namespace: &str, violations: &mut Violations) {
    if let Some(problem) = names::namespace_problem(namespace) {
        violations.add("namespace", "INVALID_NAME", problem);
    }
}

fn into_result(violations: Violations) -> Result<(), Status> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(invalid_argument(violations.into_vec()))
    }
}

/// Rewrites a field path into this API's snake_case form (`spec.jobSpec.runner.initImage` becomes
/// `spec.job_spec.runner.init_image`), leaving index and key parts (`[0]`, `[key]`) alone.
pub fn proto_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    let mut in_brackets = false;
    for c in path.chars() {
        match c {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            _ => {}
        }
        if !in_brackets && c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, spec: api::TestClusterSpec) -> api::CreateTestClusterRequest {
        api::CreateTestClusterRequest {
            name: name.to_owned(),
            spec: Some(spec),
            ..Default::default()
        }
    }

    fn runner(image: Option<&str>, command: &[&str]) -> api::TestClusterSpec {
        api::TestClusterSpec {
            job_spec: Some(api::JobSpec {
                runner: Some(api::JobRunnerSpec {
                    image: image.map(str::to_owned),
                    command: command.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The (field, reason) pairs of the violations for `request`.
    fn fields(request: api::CreateTestClusterRequest) -> Vec<(String, String)> {
        check(request, "test-clusters")
            .1
            .into_vec()
            .into_iter()
            .map(|v| (v.field, v.reason))
            .collect()
    }

    fn one(field: &str, reason: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), reason.to_owned())]
    }

    #[test]
    fn valid_request_is_defaulted() {
        let (plan, violations) = check(
            request("ok", runner(Some("busybox"), &["true"])),
            "test-clusters",
        );
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!(plan.namespace, "test-clusters");
        assert_eq!(plan.naming, Naming::Exact("ok".to_owned()));
        assert_eq!(plan.spec.config_template.as_deref(), Some("basic"));
        assert_eq!(plan.spec.nodes, Some(2));
        assert_eq!(plan.spec.machine_type.as_deref(), Some("n1-standard-4"));
        assert_eq!(plan.spec.project, None, "the provisioner's to choose");
    }

    #[test]
    fn table_of_invalid_requests() {
        let nodes = |n| api::TestClusterSpec {
            nodes: Some(n),
            ..Default::default()
        };
        let cases: Vec<(api::CreateTestClusterRequest, Vec<(String, String)>)> = vec![
            (request("ok", nodes(0)), one("spec.nodes", "OUT_OF_RANGE")),
            (request("ok", nodes(-2)), one("spec.nodes", "OUT_OF_RANGE")),
            (
                request(&"a".repeat(35), nodes(1)),
                one("name", "INVALID_NAME"),
            ),
            (request("Bad_Name", nodes(1)), one("name", "INVALID_NAME")),
            (request("", nodes(1)), one("name", "REQUIRED")),
            (
                request("ok", runner(None, &["sh", "-c", "true"])),
                one("spec.job_spec.runner.image", "REQUIRED"),
            ),
            (
                request("ok", runner(Some(""), &[])),
                one("spec.job_spec.runner.image", "REQUIRED"),
            ),
            (
                request(
                    "ok",
                    api::TestClusterSpec {
                        config_template: Some(String::new()),
                        ..Default::default()
                    },
                ),
                one("spec.config_template", "EMPTY"),
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(fields(request.clone()), expected, "{request:?}");
        }
    }

    #[test]
    fn name_and_prefix() {
        let mut both = request("a", Default::default());
        both.name_prefix = "b-".to_owned();
        assert_eq!(fields(both), one("name_prefix", "CONFLICT"));

        let mut prefix = request("", Default::default());
        prefix.name_prefix = "ci-".to_owned();
        let (plan, violations) = check(prefix, "ns");
        assert!(violations.is_empty());
        assert_eq!(plan.naming.representative(), "ci-xxxxx");

        let mut long = request("", Default::default());
        long.name_prefix = "a".repeat(30);
        assert_eq!(fields(long), one("name_prefix", "INVALID_NAME"));

        let mut namespace = request("ok", Default::default());
        namespace.namespace = "Not_A_Namespace".to_owned();
        assert_eq!(fields(namespace), one("namespace", "INVALID_NAME"));
    }

    #[test]
    fn env_rules() {
        let mut spec = runner(Some("busybox"), &["env"]);
        if let Some(runner) = spec.job_spec.as_mut().and_then(|j| j.runner.as_mut()) {
            let var = |name: &str| api::EnvVar {
                name: name.to_owned(),
                value: Some("x".to_owned()),
                value_from: None,
            };
            runner.env = vec![var("A"), var(""), var("KUBECONFIG"), var("A")];
        }
        assert_eq!(
            fields(request("ok", spec)),
            vec![
                (
                    "spec.job_spec.runner.env[1].name".to_owned(),
                    "INVALID_NAME".to_owned()
                ),
                (
                    "spec.job_spec.runner.env[2].name".to_owned(),
                    "RESERVED".to_owned()
                ),
                (
                    "spec.job_spec.runner.env[3].name".to_owned(),
                    "DUPLICATE".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn init_manifest_rules() {
        let mut without_job = request("ok", Default::default());
        without_job.init_manifest = Some("kind: Namespace".to_owned());
        assert_eq!(fields(without_job), one("init_manifest", "REQUIRED"));

        let mut spec = runner(Some("busybox"), &["true"]);
        if let Some(runner) = spec.job_spec.as_mut().and_then(|j| j.runner.as_mut()) {
            runner.config_map = Some("mine".to_owned());
        }
        let mut both = request("ok", spec);
        both.init_manifest = Some("kind: Namespace".to_owned());
        assert_eq!(fields(both), one("init_manifest", "CONFLICT"));
    }

    #[test]
    fn github_metadata() {
        let mut req = request("ok", Default::default());
        req.github = Some(api::GitHubInfo {
            commit_hash: "abc123".to_owned(),
            repo_owner: "cilium".to_owned(),
            repo_name: "cilium".to_owned(),
            context: String::new(),
        });
        req.description = "nightly".to_owned();
        req.labels.insert("bad key!".to_owned(), "v".to_owned());
        let (plan, violations) = check(req, "ns");
        assert_eq!(
            plan.labels
                .get(metadata::LABEL_GITHUB_COMMIT_HASH)
                .map(String::as_str),
            Some("abc123")
        );
        assert_eq!(
            plan.annotations
                .get(metadata::ANNOTATION_CLUSTER_DESCRIPTION)
                .map(String::as_str),
            Some("nightly")
        );
        assert!(
            !plan
                .annotations
                .contains_key(metadata::ANNOTATION_GITHUB_CONTEXT)
        );
        let fields: Vec<String> = violations.into_vec().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, vec!["labels[bad key!]".to_owned()]);
    }

    #[test]
    fn object_refs_are_kubernetes_names() {
        let violated = |result: Result<(), Status>| -> Vec<(String, String)> {
            result.map_or_else(
                |status| {
                    assert_eq!(status.code(), tonic::Code::InvalidArgument);
                    testcluster_api::errors::field_violations(&status)
                        .into_iter()
                        .map(|v| (v.field, v.reason))
                        .collect()
                },
                |()| Vec::new(),
            )
        };
        assert!(check_object_ref("test-clusters", "testme-1").is_ok());
        assert!(check_object_ref("test-clusters", "made.with.kubectl").is_ok());
        for name in ["x?dryRun=All", "x/status", "X", "a b"] {
            assert_eq!(
                violated(check_object_ref("test-clusters", name)),
                one("name", "INVALID_NAME"),
                "{name}"
            );
        }
        assert_eq!(
            violated(check_object_ref("test-clusters", "")),
            one("name", "REQUIRED")
        );
        assert_eq!(
            violated(check_object_ref("ns/x", "ok")),
            one("namespace", "INVALID_NAME")
        );
        assert_eq!(violated(check_object_ref("a.b", "c/d")).len(), 2);
        assert!(check_list_namespace("").is_ok());
        assert!(check_list_namespace("test-clusters").is_ok());
        assert_eq!(
            violated(check_list_namespace("x?watch=1")),
            one("namespace", "INVALID_NAME")
        );
    }

    #[test]
    fn proto_paths() {
        assert_eq!(proto_path("spec.configTemplate"), "spec.config_template");
        assert_eq!(
            proto_path("spec.jobSpec.runner.env[0].valueFrom"),
            "spec.job_spec.runner.env[0].value_from"
        );
        assert_eq!(proto_path("labels[MyKey]"), "labels[MyKey]");
        assert_eq!(proto_path("spec.nodes"), "spec.nodes");
    }

    #[test]
    fn merge_keeps_one_violation_per_field() {
        let mut violations = Violations::default();
        violations.add("spec.nodes", "OUT_OF_RANGE", "must be at least 1");
        violations.merge([
            FieldViolation::new("spec.nodes", "too few"),
            FieldViolation::new("spec.config_template", "unknown"),
        ]);
        let fields: Vec<String> = violations.into_vec().into_iter().map(|v| v.field).collect();
        assert_eq!(fields, vec!["spec.nodes", "spec.config_template"]);
    }
}
