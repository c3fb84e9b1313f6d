//! Naming rules: test cluster names and prefixes (which become GKE cluster names), environment
//! variable names, and label and annotation keys.

use super::limits::{
    GKE_MAX_CLUSTER_NAME_LEN, MAX_ENV_NAME_LEN, MAX_NAME_LEN, MAX_NAME_PREFIX_LEN, NAME_SUFFIX_LEN,
};
use super::path::FieldPath;
use super::text::quoted;
use super::violation::{Reason, Violations};
use crate::object_names::object_name_problem;

/// Checks a test cluster name at `path`.
pub fn check_name(violations: &mut Violations, path: FieldPath, name: &str) {
    if let Some(problem) = name_problem(name) {
        violations.add(path, length_or_name(name, MAX_NAME_LEN), problem);
    }
}

/// Checks a name prefix at `path`.
pub fn check_prefix(violations: &mut Violations, path: FieldPath, prefix: &str) {
    if let Some(problem) = prefix_problem(prefix) {
        violations.add(path, length_or_name(prefix, MAX_NAME_PREFIX_LEN), problem);
    }
}

fn length_or_name(name: &str, max: usize) -> Reason {
    if name.len() > max {
        Reason::TooLong
    } else {
        Reason::InvalidName
    }
}

/// Why a test cluster name cannot be used, or `None`. The provisioner names the cloud cluster
/// `<name>-<5 random characters>`, and GKE takes at most 40 lowercase letters, digits and
/// hyphens, starting with a letter and ending with a letter or digit.
pub fn name_problem(name: &str) -> Option<String> {
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "must be at most {MAX_NAME_LEN} characters (it is {}), so that the GKE cluster name \
             (name, '-' and {NAME_SUFFIX_LEN} random characters) fits in {GKE_MAX_CLUSTER_NAME_LEN}",
            name.len()
        ));
    }
    gke_charset_problem(name, true)
}

/// Why a name prefix cannot be used, or `None`: it must leave room for the generated part too.
pub fn prefix_problem(prefix: &str) -> Option<String> {
    if prefix.len() > MAX_NAME_PREFIX_LEN {
        return Some(format!(
            "must be at most {MAX_NAME_PREFIX_LEN} characters (it is {}), so that the generated \
             name and the GKE cluster name made from it fit in {GKE_MAX_CLUSTER_NAME_LEN}",
            prefix.len()
        ));
    }
    // A prefix may end with '-' (`ci-`): the generated part follows it.
    gke_charset_problem(prefix, false)
}

/// GKE's (and so DNS-1123's) character rules; `whole` names must also end with a letter or digit.
fn gke_charset_problem(name: &str, whole: bool) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_lowercase());
    let allowed = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !starts_with_letter || !allowed || (whole && name.ends_with('-')) {
        return Some(format!(
            "{} is not a valid GKE cluster name: it must start with a lowercase letter, contain \
             only lowercase letters, digits and '-'{}",
            quoted(name),
            if whole { ", and not end with '-'" } else { "" }
        ));
    }
    None
}

/// Why `name` is not an environment variable name Kubernetes accepts, or `None`: a C identifier
/// that may also hold '-' and '.' (Kubernetes' `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn env_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > MAX_ENV_NAME_LEN {
        return Some(format!("must be at most {MAX_ENV_NAME_LEN} characters"));
    }
    let first_ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || "-._".contains(c));
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    (!(first_ok && rest_ok)).then(|| {
        format!(
            "{} is not a valid environment variable name: letters, digits, '_', '-' and '.', \
             not starting with a digit",
            quoted(name)
        )
    })
}

/// Longest name part of a label or annotation key.
const MAX_KEY_NAME_LEN: usize = 63;

/// Kubernetes' rule for label and annotation keys: an optional DNS subdomain prefix and `/`,
/// then a name of at most 63 characters.
pub fn key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && let Some(problem) = object_name_problem(prefix)
    {
        return Some(format!("key prefix {problem}"));
    }
    if name.is_empty() {
        return Some("key name must not be empty".to_owned());
    }
    label_value_problem(name).map(|problem| format!("key name {problem}"))
}

/// Kubernetes' rule for label values (and key names): at most 63 letters, digits, '-', '_' and
/// '.', starting and ending with a letter or digit; empty is allowed.
pub fn label_value_problem(value: &str) -> Option<String> {
    let edge = |c: char| c.is_ascii_alphanumeric();
    if value.len() > MAX_KEY_NAME_LEN {
        Some(format!("must be at most {MAX_KEY_NAME_LEN} characters"))
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
            "{} must consist of letters, digits, '-', '_' or '.', and start and end with a \
             letter or digit",
            quoted(value)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_gke() {
        assert_eq!(MAX_NAME_LEN, 34);
        assert_eq!(MAX_NAME_PREFIX_LEN, 29);
        assert_eq!(name_problem(&"a".repeat(34)), None);
        assert_eq!(
            name_problem(&"a".repeat(35)).as_deref(),
            Some(
                "must be at most 34 characters (it is 35), so that the GKE cluster name (name, \
                 '-' and 5 random characters) fits in 40"
            )
        );
        for bad in ["1abc", "Abc", "abc-", "a.b", "a_b", "-abc", ""] {
            assert!(name_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(
            name_problem("a_b").as_deref(),
            Some(
                "\"a_b\" is not a valid GKE cluster name: it must start with a lowercase \
                 letter, contain only lowercase letters, digits and '-', and not end with '-'"
            )
        );
        assert_eq!(prefix_problem("ci-"), None);
        assert!(prefix_problem("-ci").is_some());
        assert_eq!(prefix_problem(&"a".repeat(29)), None);
        assert!(prefix_problem(&"a".repeat(30)).is_some());
    }

    #[test]
    fn env_names_are_c_identifiers_with_dash_and_dot() {
        for good in ["A", "_x", "my.var", "-x", "PATH_2"] {
            assert_eq!(env_name_problem(good), None, "{good}");
        }
        assert_eq!(env_name_problem("").as_deref(), Some("must not be empty"));
        assert_eq!(
            env_name_problem("A\0B").as_deref(),
            Some(
                "\"A\\0B\" is not a valid environment variable name: letters, digits, '_', '-' \
                 and '.', not starting with a digit"
            )
        );
        for bad in ["1A", "A=B", "A B", "Ä"] {
            assert!(env_name_problem(bad).is_some(), "{bad}");
        }
        assert!(env_name_problem(&"A".repeat(257)).is_some());
    }

    #[test]
    fn label_keys_and_values() {
        assert_eq!(key_problem("team"), None);
        assert_eq!(key_problem("example.com/team"), None);
        assert!(key_problem("bad key!").is_some());
        assert!(key_problem("Example.com/x").is_some());
        assert!(key_problem("example.com/").is_some());
        assert_eq!(label_value_problem(""), None);
        assert!(label_value_problem("-x").is_some());
        assert!(label_value_problem(&"v".repeat(64)).is_some());
    }
}
