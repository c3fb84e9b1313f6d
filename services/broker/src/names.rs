//! Names: what makes a valid test cluster name, and generated names.
//!
//! The provisioner names the cloud cluster `<name>-<5 random chars>` (the seed's scheme), and GKE
//! accepts at most 40 characters of lowercase letters, digits and hyphens, starting with a letter and
//! ending with a letter or digit. So a test cluster's name must leave room for the suffix, and a
//! prefix must leave room for the broker's generated part too.

use rand::Rng as _;

/// GKE's limit on a cluster name.
const GKE_MAX_CLUSTER_NAME_LEN: usize = 40;
/// Random characters in a generated name and in the cloud cluster name's suffix.
const SUFFIX_LEN: usize = 5;
/// Longest test cluster name: room for `-` and the cloud cluster name's suffix.
pub const MAX_NAME_LEN: usize = GKE_MAX_CLUSTER_NAME_LEN - 1 - SUFFIX_LEN;
/// Longest name prefix: room for the generated part as well.
pub const MAX_NAME_PREFIX_LEN: usize = MAX_NAME_LEN - SUFFIX_LEN;
/// Kubernetes' alphabet for generated names (no vowels, so no words; no look-alike characters).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Why a test cluster name cannot be used, or `None` when it can.
pub fn name_problem(name: &str) -> Option<String> {
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "must be at most {MAX_NAME_LEN} characters, so that the GKE cluster name \
             \"{name}-xxxxx\" fits in {GKE_MAX_CLUSTER_NAME_LEN}"
        ));
    }
    gke_charset_problem(name, true)
}

/// Why a name prefix cannot be used, or `None` when it can.
pub fn prefix_problem(prefix: &str) -> Option<String> {
    if prefix.len() > MAX_NAME_PREFIX_LEN {
        return Some(format!(
            "must be at most {MAX_NAME_PREFIX_LEN} characters, so that the generated name \
             \"{prefix}xxxxx\" and the GKE cluster name \"{prefix}xxxxx-xxxxx\" fit in \
             {GKE_MAX_CLUSTER_NAME_LEN}"
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
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(format!(
            "{name:?} must start with a lowercase letter (GKE cluster names do)"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "{name:?} contains {bad:?}: only lowercase letters, digits and '-' are allowed"
        ));
    }
    if whole && name.ends_with('-') {
        return Some(format!("{name:?} must end with a letter or digit"));
    }
    None
}

pub use testcluster_resources::object_names::{namespace_problem, object_name_problem};

/// Why `name` is not a valid ConfigMap name, or `None`.
pub fn config_map_problem(name: &str) -> Option<String> {
    object_name_problem(name)
}

/// `prefix` plus 5 random characters, as Kubernetes' `generateName` does. The broker generates
/// names itself, rather than leaving it to the API server, because the user ConfigMap's name
/// (`<name>-user`) goes into the spec before the object is created.
pub fn generate(prefix: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..SUFFIX_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}{suffix}")
}

/// A stand-in for a generated name, of the same length, for validating before generating.
pub fn placeholder(prefix: &str) -> String {
    format!("{prefix}{}", "x".repeat(SUFFIX_LEN))
}

/// Name of the ConfigMap holding a test cluster's init manifest.
pub fn user_config_map(name: &str) -> String {
    format!("{name}-user")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_gke() {
        assert_eq!(MAX_NAME_LEN, 34);
        assert_eq!(MAX_NAME_PREFIX_LEN, 29);
        assert_eq!(name_problem(&"a".repeat(34)), None);
        assert!(name_problem(&"a".repeat(35)).is_some_and(|p| p.contains("at most 34")));
        assert_eq!(prefix_problem(&"a".repeat(29)), None);
        assert!(prefix_problem(&"a".repeat(30)).is_some());
    }

    #[test]
    fn names() {
        assert_eq!(name_problem("testme-1"), None);
        assert!(name_problem("1abc").is_some());
        assert!(name_problem("Abc").is_some());
        assert!(name_problem("a_b").is_some());
        assert!(name_problem("abc-").is_some());
        assert!(name_problem("").is_some());
        assert_eq!(prefix_problem("ci-"), None);
        assert!(prefix_problem("-ci").is_some());
    }

    #[test]
    fn dns_names() {
        assert_eq!(namespace_problem("test-clusters"), None);
        assert!(namespace_problem("a.b").is_some());
        assert!(namespace_problem("-a").is_some());
        assert_eq!(config_map_problem("my.config-1"), None);
        assert!(config_map_problem("My").is_some());
        assert_eq!(object_name_problem("testme-1"), None);
        assert_eq!(object_name_problem("a.b"), None);
        // What would otherwise end up in a URL path or its query.
        for bad in [
            "x?dryRun=All",
            "x/status",
            "..",
            "x y",
            "x%2F",
            &"a".repeat(254),
        ] {
            assert!(object_name_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn generated_names_are_valid() {
        for _ in 0..100 {
            let name = generate("ci-");
            assert_eq!(name.len(), 8);
            assert!(name.starts_with("ci-"));
            assert_eq!(name_problem(&name), None);
        }
        assert_eq!(placeholder("ci-"), "ci-xxxxx");
    }
}
