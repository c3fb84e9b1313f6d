//! Container image references: `[registry[:port]/]path[:tag][@algorithm:hex]`, checked before a
//! Job is made of them, so that a typo is a field violation rather than an ImagePullBackOff.

/// A pragmatic subset of the distribution reference grammar:
/// `[registry[:port]/]path[:tag][@algorithm:hex]`, path components lowercase.
pub fn image_problem(image: &str) -> Result<(), &'static str> {
    if image.is_empty() {
        return Err("it is empty");
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
            assert_eq!(image_problem(good), Ok(()), "{good}");
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
            assert_eq!(image_problem(bad), Err(problem), "{bad}");
        }
    }
}
