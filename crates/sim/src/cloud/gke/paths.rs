//! Maps container v1 URL paths (both the `locations` and the legacy `zones` forms) to resources.

/// The project and location a request addresses. The location is a zone, a region, or `-` (all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub project: String,
    pub location: String,
}

/// The resource a request path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Clusters(Scope),
    Cluster(Scope, String),
    /// `.../clusters/{c}:setResourceLabels` (or `/resourceLabels` in the zones form).
    SetResourceLabels(Scope, String),
    NodePools(Scope, String),
    NodePool(Scope, String, String),
    /// `.../nodePools/{np}:setSize` (or `/setSize` in the zones form).
    SetSize(Scope, String, String),
    Operations(Scope),
    Operation(Scope, String),
}

/// Parses `/v1/projects/{p}/{locations|zones}/{l}/...`; `None` for anything else.
pub fn parse(path: &str) -> Option<Target> {
    let rest = path
        .strip_prefix("/v1/")
        .or_else(|| path.strip_prefix("/v1beta1/"))?;
    // A custom method (`:setSize`) hangs off the last segment.
    let (rest, custom) = match rest.rsplit_once(':') {
        Some((rest, custom)) if !custom.contains('/') => (rest, Some(custom)),
        _ => (rest, None),
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let [
        "projects",
        project,
        "locations" | "zones",
        location,
        tail @ ..,
    ] = segments.as_slice()
    else {
        return None;
    };
    let scope = Scope {
        project: (*project).to_owned(),
        location: (*location).to_owned(),
    };
    let own = |s: &str| s.to_owned();
    Some(match (tail, custom) {
        (["clusters"], None) => Target::Clusters(scope),
        (["clusters", c], None) => Target::Cluster(scope, own(c)),
        (["clusters", c], Some("setResourceLabels"))
        | (["clusters", c, "resourceLabels"], None) => Target::SetResourceLabels(scope, own(c)),
        (["clusters", c, "nodePools"], None) => Target::NodePools(scope, own(c)),
        (["clusters", c, "nodePools", np], None) => Target::NodePool(scope, own(c), own(np)),
        (["clusters", c, "nodePools", np], Some("setSize"))
        | (["clusters", c, "nodePools", np, "setSize"], None) => {
            Target::SetSize(scope, own(c), own(np))
        }
        (["operations"], None) => Target::Operations(scope),
        (["operations", op], None) => Target::Operation(scope, own(op)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(location: &str) -> Scope {
        Scope {
            project: "p".into(),
            location: location.into(),
        }
    }

    #[test]
    fn parses_both_forms() {
        assert_eq!(
            parse("/v1/projects/p/locations/-/clusters"),
            Some(Target::Clusters(scope("-")))
        );
        assert_eq!(
            parse("/v1/projects/p/zones/us-central1-a/clusters/c/nodePools/np/setSize"),
            Some(Target::SetSize(
                scope("us-central1-a"),
                "c".into(),
                "np".into()
            ))
        );
        assert_eq!(
            parse("/v1/projects/p/locations/us-central1-a/clusters/c/nodePools/np:setSize"),
            Some(Target::SetSize(
                scope("us-central1-a"),
                "c".into(),
                "np".into()
            ))
        );
        assert_eq!(
            parse("/v1/projects/p/locations/eu/operations/operation-1"),
            Some(Target::Operation(scope("eu"), "operation-1".into()))
        );
        assert_eq!(
            parse("/v1/projects/p/locations/eu/clusters/c:setResourceLabels"),
            Some(Target::SetResourceLabels(scope("eu"), "c".into()))
        );
        assert_eq!(parse("/v1/projects/p/locations/eu/clusters/c:frob"), None);
        assert_eq!(parse("/v1/projects/p/locations//clusters"), None);
        assert_eq!(parse("/v2/projects/p/locations/eu/clusters"), None);
    }
}
