//! The runner's environment variables, and what their values may come from.
//!
//! The count is checked first and on its own: a list over the limit gets one violation and no
//! per-item work, so a 100,000-entry list costs a length comparison. Below the limit, each item
//! is checked once and duplicates are found with a set, so the whole check is linear.
//!
//! ## What `valueFrom` may read
//!
//! The job's pod runs in the namespace every run shares. Its Secrets include each run's cluster
//! credentials (`<name>-kubeconfig`, made by the runner) and its ConfigMaps other runs' init
//! manifests. So a job may read its own pod's fields (`fieldRef`, `resourceFieldRef`) and keys of
//! its own ConfigMap (the one `configMap` names, which is mounted anyway), and nothing else:
//! `secretKeyRef` is refused outright, as is a `configMapKeyRef` to any other ConfigMap. The
//! job's own cluster credentials are at `$KUBECONFIG`.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource};

use super::limits::{MAX_ENV, MAX_ENV_VALUE_BYTES};
use super::names::env_name_problem;
use super::path::{FieldPath, fields};
use super::text::{self, Text, quoted};
use super::violation::{Message, Reason, Violations};

/// The environment variables the runner sets itself (docs/lifecycle.md); a user's value would cut
/// the job off from its test cluster.
pub const RESERVED_ENV: &[&str] = &["KUBECONFIG", "CLUSTER_NAME", "CLUSTER_LOCATION"];

/// The pod fields Kubernetes can put into an environment variable (`fieldRef.fieldPath`).
const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The container resources Kubernetes can put into an environment variable.
const CONTAINER_RESOURCES: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

/// Checks `env` at `path`; `own_config_map` is the run's own ConfigMap, if it has one.
pub fn check(
    violations: &mut Violations,
    path: &FieldPath,
    env: &[EnvVar],
    own_config_map: Option<&str>,
) {
    if env.len() > MAX_ENV {
        violations.add(
            path.clone(),
            Reason::TooMany,
            format!("must have at most {MAX_ENV} entries, got {}", env.len()),
        );
        return;
    }
    let mut seen: HashSet<&str> = HashSet::with_capacity(env.len());
    for (index, var) in env.iter().enumerate() {
        let item = path.index(index);
        let name = var.name.as_str();
        let name_path = item.field(fields::ENV_NAME);
        if let Some(problem) = env_name_problem(name) {
            violations.add(name_path, Reason::InvalidName, problem);
        } else if RESERVED_ENV.contains(&name) {
            violations.add(
                name_path,
                Reason::Reserved,
                format!("{name} is set by the runner to reach the test cluster"),
            );
        } else if !seen.insert(name) {
            violations.add(name_path, Reason::Duplicate, format!("{name} is set twice"));
        }
        if let Some(value) = &var.value {
            text::check(
                violations,
                &item.field(fields::VALUE),
                value,
                MAX_ENV_VALUE_BYTES,
                Text::Multiline,
            );
        }
        if let Some(source) = &var.value_from {
            let source_path = item.field(fields::VALUE_FROM);
            if var.value.is_some() {
                violations.add(
                    source_path.clone(),
                    Reason::Conflict,
                    Message::default()
                        .text("set either ")
                        .field(fields::VALUE)
                        .text(" or ")
                        .field(fields::VALUE_FROM)
                        .text(", not both"),
                );
            }
            check_source(violations, &source_path, source, own_config_map);
        }
    }
}

fn check_source(
    violations: &mut Violations,
    path: &FieldPath,
    source: &EnvVarSource,
    own_config_map: Option<&str>,
) {
    let set = [
        source.field_ref.is_some(),
        source.resource_field_ref.is_some(),
        source.config_map_key_ref.is_some(),
        source.secret_key_ref.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    let one_of = || {
        Message::default()
            .field(fields::FIELD_REF)
            .text(", ")
            .field(fields::RESOURCE_FIELD_REF)
            .text(" or ")
            .field(fields::CONFIG_MAP_KEY_REF)
    };
    if set == 0 {
        violations.add(
            path.clone(),
            Reason::Required,
            Message::default()
                .text("must set one source: ")
                .then(one_of()),
        );
        return;
    }
    if set > 1 {
        violations.add(
            path.clone(),
            Reason::Conflict,
            Message::default().text("must set only one source"),
        );
    }
    if let Some(field) = &source.field_ref {
        let field_path = path.field(fields::FIELD_REF);
        if !POD_FIELDS.contains(&field.field_path.as_str())
            && !is_pod_metadata_key(&field.field_path)
        {
            violations.add(
                field_path.field(fields::FIELD_PATH),
                Reason::InvalidValue,
                format!(
                    "{} is not a pod field Kubernetes can expose: one of {}, or \
                     metadata.labels['KEY'] / metadata.annotations['KEY']",
                    quoted(&field.field_path),
                    POD_FIELDS.join(", ")
                ),
            );
        }
        if let Some(version) = &field.api_version
            && version != "v1"
        {
            violations.add(
                field_path.field(fields::API_VERSION),
                Reason::InvalidValue,
                format!("must be v1, got {}", quoted(version)),
            );
        }
    }
    if let Some(resource) = &source.resource_field_ref
        && !CONTAINER_RESOURCES.contains(&resource.resource.as_str())
    {
        violations.add(
            path.field(fields::RESOURCE_FIELD_REF)
                .field(fields::RESOURCE),
            Reason::InvalidValue,
            format!(
                "{} is not a container resource: one of {}",
                quoted(&resource.resource),
                CONTAINER_RESOURCES.join(", ")
            ),
        );
    }
    if let Some(key_ref) = &source.config_map_key_ref
        && own_config_map != Some(key_ref.name.as_str())
    {
        violations.add(
            path.field(fields::CONFIG_MAP_KEY_REF)
                .field(fields::KEY_REF_NAME),
            Reason::Forbidden,
            Message::default()
                .text(format!(
                    "{} is not this run's ConfigMap: a job may read keys of its own ConfigMap \
                     (",
                    quoted(&key_ref.name)
                ))
                .path(&config_map_path())
                .text(") only; the namespace's other ConfigMaps belong to other runs"),
        );
    }
    if source.secret_key_ref.is_some() {
        violations.add(
            path.field(fields::SECRET_KEY_REF),
            Reason::Forbidden,
            "a job may not read Secrets: the namespace's Secrets include every run's cluster \
             credentials. The job's own test cluster is reachable through $KUBECONFIG; pass other \
             values with value, or in the run's ConfigMap",
        );
    }
}

fn config_map_path() -> FieldPath {
    FieldPath::of(fields::SPEC)
        .field(fields::JOB_SPEC)
        .field(fields::RUNNER)
        .field(fields::CONFIG_MAP)
}

/// `metadata.labels['KEY']` and `metadata.annotations['KEY']`: one label or annotation of the
/// pod.
fn is_pod_metadata_key(field_path: &str) -> bool {
    ["metadata.labels['", "metadata.annotations['"]
        .iter()
        .any(|prefix| {
            field_path
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix("']"))
                .is_some_and(|key| !key.is_empty())
        })
}
