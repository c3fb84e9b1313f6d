//! Labels and annotations: Kubernetes' key rules, the keys the services keep for themselves, and
//! the seed's GitHub and description metadata.

use std::collections::BTreeMap;

use super::limits::{
    MAX_ANNOTATIONS, MAX_ANNOTATIONS_BYTES, MAX_DESCRIPTION_BYTES, MAX_GITHUB_FIELD_LEN, MAX_LABELS,
};
use super::names::{key_problem, label_value_problem};
use super::path::{Field, FieldPath, fields};
use super::text::{self, Text};
use super::violation::{Message, Reason, Violations};
use crate::metadata::{
    ANNOTATION_CLUSTER_DESCRIPTION, ANNOTATION_CREATED_BY, ANNOTATION_GITHUB_CONTEXT,
    ANNOTATION_GITHUB_REPO_NAME, ANNOTATION_GITHUB_REPO_OWNER, ANNOTATION_TENANT, GROUP,
    LABEL_GITHUB_COMMIT_HASH,
};

/// The seed's metadata keys, each with the request field that sets it.
const GITHUB_ANNOTATIONS: [(&str, Field); 3] = [
    (ANNOTATION_GITHUB_REPO_OWNER, fields::REPO_OWNER),
    (ANNOTATION_GITHUB_REPO_NAME, fields::REPO_NAME),
    (ANNOTATION_GITHUB_CONTEXT, fields::CONTEXT),
];

/// Keys under the API group's domain (`clusters.ci.cilium.io/test-cluster`, …) are the services'
/// own: they select the objects of a run by them, so a user's value would confuse that.
pub fn is_reserved(key: &str) -> bool {
    key.split_once('/')
        .is_some_and(|(prefix, _)| prefix == GROUP || prefix.ends_with(&format!(".{GROUP}")))
}

fn reserved(violations: &mut Violations, path: FieldPath) {
    violations.add(
        path,
        Reason::Reserved,
        format!("keys under {GROUP}/ are set by testcluster itself"),
    );
}

/// The description: free text (annotation `ci.cilium.io/cluster-description`).
pub fn check_description(violations: &mut Violations, path: &FieldPath, value: &str) {
    text::check(
        violations,
        path,
        value,
        MAX_DESCRIPTION_BYTES,
        Text::Multiline,
    );
}

/// A GitHub owner, repository name or status context: one short line.
pub fn check_github_field(violations: &mut Violations, path: &FieldPath, value: &str) {
    text::check(violations, path, value, MAX_GITHUB_FIELD_LEN, Text::Line);
}

/// The commit hash becomes a label value.
pub fn check_commit_hash(violations: &mut Violations, path: &FieldPath, value: &str) {
    if let Some(problem) = label_value_problem(value) {
        violations.add(path.clone(), Reason::InvalidValue, problem);
    }
}

/// A request's extra labels: Kubernetes' rules, and none of the keys the services or the
/// request's own fields set.
pub fn check_request_labels(violations: &mut Violations, labels: &BTreeMap<String, String>) {
    let path = FieldPath::of(fields::LABELS);
    if labels.len() > MAX_LABELS {
        violations.add(
            path,
            Reason::TooMany,
            format!(
                "must have at most {MAX_LABELS} entries, got {}",
                labels.len()
            ),
        );
        return;
    }
    for (key, value) in labels {
        let entry = path.key(key);
        if let Some(problem) = key_problem(key) {
            violations.add(entry, Reason::InvalidKey, problem);
        } else if is_reserved(key) {
            reserved(violations, entry);
        } else if key == LABEL_GITHUB_COMMIT_HASH {
            set_by(
                violations,
                entry,
                FieldPath::of(fields::GITHUB).field(fields::COMMIT_HASH),
            );
        } else if let Some(problem) = label_value_problem(value) {
            violations.add(entry, Reason::InvalidValue, problem);
        }
    }
}

/// A request's extra annotations: Kubernetes' key rule, bounded values, and none of the keys the
/// services or the request's own fields set.
pub fn check_request_annotations(
    violations: &mut Violations,
    annotations: &BTreeMap<String, String>,
) {
    let path = FieldPath::of(fields::ANNOTATIONS);
    if annotations.len() > MAX_ANNOTATIONS {
        violations.add(
            path,
            Reason::TooMany,
            format!(
                "must have at most {MAX_ANNOTATIONS} entries, got {}",
                annotations.len()
            ),
        );
        return;
    }
    let bytes: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_ANNOTATIONS_BYTES {
        violations.add(
            path,
            Reason::TooLarge,
            format!(
                "keys and values must add up to at most {MAX_ANNOTATIONS_BYTES} bytes, got {bytes}"
            ),
        );
        return;
    }
    for (key, value) in annotations {
        let entry = path.key(key);
        if let Some(problem) = key_problem(key) {
            violations.add(entry, Reason::InvalidKey, problem);
        } else if is_reserved(key) {
            reserved(violations, entry);
        } else if key == ANNOTATION_CLUSTER_DESCRIPTION {
            set_by(violations, entry, FieldPath::of(fields::DESCRIPTION));
        } else if let Some((_, field)) = GITHUB_ANNOTATIONS.iter().find(|(k, _)| k == key) {
            set_by(
                violations,
                entry,
                FieldPath::of(fields::GITHUB).field(*field),
            );
        } else {
            text::check(
                violations,
                &entry,
                value,
                MAX_ANNOTATIONS_BYTES,
                Text::Multiline,
            );
        }
    }
}

fn set_by(violations: &mut Violations, path: FieldPath, field: FieldPath) {
    violations.add(
        path,
        Reason::Reserved,
        Message::default().text("is set with ").path(&field),
    );
}

/// An object's labels and annotations (created with kubectl, so Kubernetes checked the key
/// syntax): no reserved keys, and the seed's metadata within the same limits as a request's.
pub fn check_object(
    violations: &mut Violations,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) {
    let label_path = FieldPath::of(fields::LABELS);
    for key in labels.keys().filter(|key| is_reserved(key)) {
        reserved(violations, label_path.key(key));
    }
    let annotation_path = FieldPath::of(fields::ANNOTATIONS);
    for (key, value) in annotations {
        let entry = annotation_path.key(key);
        // The broker's own records (who asked; how far Extend moved the end): reserved in a
        // request, expected on an object.
        if [
            ANNOTATION_CREATED_BY,
            ANNOTATION_TENANT,
            crate::lifetime::ANNOTATION_EXTENDED_UNTIL,
        ]
        .contains(&key.as_str())
        {
            continue;
        }
        if is_reserved(key) {
            reserved(violations, entry);
        } else if key == ANNOTATION_CLUSTER_DESCRIPTION {
            check_description(violations, &entry, value);
        } else if GITHUB_ANNOTATIONS.iter().any(|(k, _)| k == key) {
            check_github_field(violations, &entry, value);
        }
    }
}
