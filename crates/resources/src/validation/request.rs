//! A `CreateTestClusterRequest`: the rules for the request's own fields (namespace, name or
//! prefix, init manifest, GitHub metadata, description, labels and annotations), the spec's rules
//! through [`super::spec`], and the request folded into what the broker writes.

use std::collections::BTreeMap;

use testcluster_api::v1 as api;

use super::limits::{
    MAX_COMMAND_ARGS, MAX_ENV, MAX_IMAGES_TO_TEST, MAX_INIT_MANIFEST_BYTES, NAME_SUFFIX_LEN,
};
use super::names::{check_name, check_prefix};
use super::object_meta;
use super::path::{FieldPath, fields};
use super::spec::{self, Counts, SpecContext, Templates};
use super::text::{self, Text};
use super::violation::{Message, Reason, Violations};
use crate::metadata;
use crate::object_names::{namespace_problem, object_name_problem, user_config_map};
use crate::spec::TestClusterGKESpec;

/// How the object's name is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestedName {
    /// The caller's name.
    Exact(String),
    /// Generated from the caller's prefix.
    Prefix(String),
}

impl RequestedName {
    /// A name of the final length, for checks that need one before it is generated.
    pub fn representative(&self) -> String {
        match self {
            RequestedName::Exact(name) => name.clone(),
            RequestedName::Prefix(prefix) => format!("{prefix}{}", "x".repeat(NAME_SUFFIX_LEN)),
        }
    }
}

/// A request after checks and defaults: what the broker will write.
#[derive(Clone, Debug)]
pub struct CheckedRequest {
    pub namespace: String,
    pub name: RequestedName,
    /// The spec with the seed's defaults filled in (template, nodes, machine type).
    pub spec: TestClusterGKESpec,
    pub init_manifest: Option<String>,
    /// The caller's labels plus the seed's GitHub label.
    pub labels: BTreeMap<String, String>,
    /// The caller's annotations plus the seed's GitHub and description annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Checks and defaults `request`. `templates` is what the caller knows of the provisioner's
/// templates ([`Templates::Any`] to check only their names' shape). The checked request is
/// returned even when there are violations; the caller writes it only when there are none.
pub fn check_create(
    request: api::CreateTestClusterRequest,
    default_namespace: &str,
    templates: Templates<'_>,
) -> (CheckedRequest, Violations) {
    let mut violations = Violations::default();
    let namespace = if request.namespace.is_empty() {
        default_namespace.to_owned()
    } else {
        request.namespace
    };
    check_namespace(&mut violations, &namespace);
    let name = requested_name(&mut violations, request.name, request.name_prefix);

    let mut spec = checked_conversion(&mut violations, request.spec.unwrap_or_default());
    check_init_manifest(&mut violations, request.init_manifest.as_deref(), &spec);
    // The ConfigMap the broker will create is the run's own; its name is known now unless it is
    // generated.
    let pending_config_map = match (&name, &request.init_manifest) {
        (RequestedName::Exact(name), Some(_)) => Some(user_config_map(name)),
        _ => None,
    };
    spec::check(
        &mut violations,
        &spec,
        SpecContext {
            templates,
            pending_config_map: pending_config_map.as_deref(),
        },
    );
    spec::apply_defaults(&mut spec);

    let github = request.github.unwrap_or_default();
    let github_path = FieldPath::of(fields::GITHUB);
    if !github.commit_hash.is_empty() {
        object_meta::check_commit_hash(
            &mut violations,
            &github_path.field(fields::COMMIT_HASH),
            &github.commit_hash,
        );
    }
    for (field, value) in [
        (fields::REPO_OWNER, &github.repo_owner),
        (fields::REPO_NAME, &github.repo_name),
        (fields::CONTEXT, &github.context),
    ] {
        object_meta::check_github_field(&mut violations, &github_path.field(field), value);
    }
    object_meta::check_description(
        &mut violations,
        &FieldPath::of(fields::DESCRIPTION),
        &request.description,
    );
    object_meta::check_request_labels(&mut violations, &request.labels);
    object_meta::check_request_annotations(&mut violations, &request.annotations);

    let mut labels = request.labels;
    let mut annotations = request.annotations;
    if !github.commit_hash.is_empty() {
        labels.insert(
            metadata::LABEL_GITHUB_COMMIT_HASH.to_owned(),
            github.commit_hash,
        );
    }
    for (key, value) in [
        (metadata::ANNOTATION_GITHUB_REPO_OWNER, github.repo_owner),
        (metadata::ANNOTATION_GITHUB_REPO_NAME, github.repo_name),
        (metadata::ANNOTATION_GITHUB_CONTEXT, github.context),
        (
            metadata::ANNOTATION_CLUSTER_DESCRIPTION,
            request.description,
        ),
    ] {
        if !value.is_empty() {
            annotations.insert(key.to_owned(), value);
        }
    }
    let checked = CheckedRequest {
        namespace,
        name,
        spec,
        init_manifest: request.init_manifest,
        labels,
        annotations,
    };
    (checked, violations)
}

/// The request's spec as the object's. Its lists' lengths are checked first: an oversized list
/// is reported and dropped rather than converted item by item (100,000 env entries would cost
/// more to convert than everything else together), and the rest of the spec is still checked.
fn checked_conversion(
    violations: &mut Violations,
    mut spec: api::TestClusterSpec,
) -> TestClusterGKESpec {
    let job = spec.job_spec.as_mut();
    let images_to_test = job.as_ref().map_or(0, |job| job.images_to_test.len());
    let runner = job.and_then(|job| job.runner.as_mut());
    let counts = Counts {
        env: runner.as_ref().map_or(0, |r| r.env.len()),
        command: runner.as_ref().map_or(0, |r| r.command.len()),
        images_to_test,
    };
    if !spec::check_counts(violations, counts)
        && let Some(job) = spec.job_spec.as_mut()
    {
        if counts.images_to_test > MAX_IMAGES_TO_TEST {
            job.images_to_test.clear();
        }
        if let Some(runner) = job.runner.as_mut() {
            if counts.env > MAX_ENV {
                runner.env.clear();
            }
            if counts.command > MAX_COMMAND_ARGS {
                runner.command.clear();
            }
        }
    }
    spec.into()
}

fn requested_name(violations: &mut Violations, name: String, prefix: String) -> RequestedName {
    match (name.is_empty(), prefix.is_empty()) {
        (true, true) => {
            violations.add(
                FieldPath::of(fields::NAME),
                Reason::Required,
                Message::default()
                    .text("set ")
                    .field(fields::NAME)
                    .text(", or ")
                    .field(fields::NAME_PREFIX)
                    .text(" to have one generated"),
            );
            RequestedName::Exact(name)
        }
        (false, false) => {
            violations.add(
                FieldPath::of(fields::NAME_PREFIX),
                Reason::Conflict,
                Message::default()
                    .text("set either ")
                    .field(fields::NAME)
                    .text(" or ")
                    .field(fields::NAME_PREFIX)
                    .text(", not both"),
            );
            RequestedName::Exact(name)
        }
        (false, true) => {
            check_name(violations, FieldPath::of(fields::NAME), &name);
            RequestedName::Exact(name)
        }
        (true, false) => {
            check_prefix(violations, FieldPath::of(fields::NAME_PREFIX), &prefix);
            RequestedName::Prefix(prefix)
        }
    }
}

fn check_init_manifest(
    violations: &mut Violations,
    manifest: Option<&str>,
    spec: &TestClusterGKESpec,
) {
    let Some(manifest) = manifest else { return };
    let path = FieldPath::of(fields::INIT_MANIFEST);
    let runner_path = FieldPath::of(fields::SPEC)
        .field(fields::JOB_SPEC)
        .field(fields::RUNNER);
    if manifest.is_empty() {
        violations.add(path.clone(), Reason::Empty, "must not be empty when set");
    } else {
        text::check(
            violations,
            &path,
            manifest,
            MAX_INIT_MANIFEST_BYTES,
            Text::Multiline,
        );
    }
    match spec.job_spec.as_ref().and_then(|job| job.runner.as_ref()) {
        None => violations.add(
            path,
            Reason::Required,
            Message::default()
                .text("needs ")
                .path(&runner_path)
                .text(": the manifest is handed to the job"),
        ),
        Some(runner) if runner.config_map.is_some() => violations.add(
            path,
            Reason::Conflict,
            Message::default()
                .text("set either ")
                .field(fields::INIT_MANIFEST)
                .text(" (the broker creates the ConfigMap) or ")
                .path(&runner_path.field(fields::CONFIG_MAP))
                .text(" (an existing one), not both"),
        ),
        Some(_) => {}
    }
}

/// Checks the namespace (after defaulting) and name of a request about one existing test
/// cluster: Get, Watch, Delete and StreamLogs. kube-rs puts both into the URL path as they are,
/// so a name such as `x/status` or `x?dryRun=All` would reach another resource or change the
/// request; only valid Kubernetes names go on.
pub fn check_object_ref(namespace: &str, name: &str) -> Violations {
    let mut violations = Violations::default();
    check_namespace(&mut violations, namespace);
    let path = FieldPath::of(fields::NAME);
    if name.is_empty() {
        violations.add(path, Reason::Required, "required");
    } else if let Some(problem) = object_name_problem(name) {
        violations.add(path, Reason::InvalidName, problem);
    }
    violations
}

/// Checks a List request's namespace: empty (every namespace) or a valid namespace name.
pub fn check_list_namespace(namespace: &str) -> Violations {
    let mut violations = Violations::default();
    if !namespace.is_empty() {
        check_namespace(&mut violations, namespace);
    }
    violations
}

fn check_namespace(violations: &mut Violations, namespace: &str) {
    if let Some(problem) = namespace_problem(namespace) {
        violations.add(
            FieldPath::of(fields::NAMESPACE),
            Reason::InvalidName,
            problem,
        );
    }
}
