//! Kubernetes' rules for object names, checked before a name goes into a request path: kube-rs
//! puts names into URLs as they are, so `x?dryRun=All` or `x/status` would change the request.

/// Longest DNS-1123 label (namespace names).
const MAX_LABEL_LEN: usize = 63;
/// Longest DNS-1123 subdomain (most object names).
const MAX_SUBDOMAIN_LEN: usize = 253;

/// Why `namespace` is not a valid namespace name (a DNS-1123 label), or `None`.
pub fn namespace_problem(namespace: &str) -> Option<String> {
    dns_problem(namespace, MAX_LABEL_LEN, false)
}

/// Why `name` cannot name an object such as a custom resource, a ConfigMap or a pod (a DNS-1123
/// subdomain), or `None`.
pub fn object_name_problem(name: &str) -> Option<String> {
    dns_problem(name, MAX_SUBDOMAIN_LEN, true)
}

/// Name of the ConfigMap the broker creates for a request's init manifest (`<name>-user`).
pub fn user_config_map(name: &str) -> String {
    format!("{name}-user")
}

fn dns_problem(name: &str, max: usize, dots: bool) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name.len() > max {
        return Some(format!("must be at most {max} characters"));
    }
    // A subdomain is dot-separated labels; each label is letters, digits and '-', starting and
    // ending with a letter or digit.
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let label_ok = |label: &str| {
        label.chars().all(|c| alnum(c) || c == '-')
            && label.starts_with(alnum)
            && label.ends_with(alnum)
    };
    let valid = if dots {
        name.split('.').all(label_ok)
    } else {
        label_ok(name)
    };
    (!valid).then(|| {
        format!(
            "{name:?} is not a DNS-1123 {}: it must consist of lowercase letters, digits and \
             '-'{}, and start and end with a letter or digit",
            if dots { "subdomain" } else { "label" },
            if dots { " or '.'" } else { "" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_change_a_request_path_are_refused() {
        for bad in [
            "",
            "x?dryRun=All",
            "x/status",
            "..",
            "a..b",
            ".a",
            "-x",
            "x-",
            "X",
            "a_b",
        ] {
            assert!(object_name_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["testme-1", "a.b-c", "x"] {
            assert_eq!(object_name_problem(good), None, "{good:?}");
        }
        assert_eq!(
            namespace_problem("a.b").as_deref(),
            Some(
                "\"a.b\" is not a DNS-1123 label: it must consist of lowercase letters, digits \
                 and '-', and start and end with a letter or digit"
            )
        );
        assert_eq!(
            namespace_problem(&"n".repeat(64)).as_deref(),
            Some("must be at most 63 characters")
        );
    }
}
