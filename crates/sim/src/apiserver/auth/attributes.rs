//! What a request asks to do, in the authoriser's terms, and the 403 that refuses it.

use serde_json::{Map, Value};

use crate::apiserver::errors::ApiError;

/// The authoriser's view of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection` for
    /// resources; the lower-case HTTP method for paths.
    pub verb: String,
    pub target: Target,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Resource(ResourceAttributes),
    /// A request outside the resource tree: discovery, `/healthz`, `/version`, `/openapi/v2`.
    Path(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for cluster-scoped requests.
    pub namespace: String,
    /// Empty for collections (unless a field selector pins one name).
    pub name: String,
}

impl Attributes {
    /// A request on a resource. A namespace is its own namespace (as the real request-info parser
    /// has it), so that a RoleBinding in `ns` can grant `get` on the Namespace `ns`.
    pub fn resource(verb: &str, mut resource: ResourceAttributes) -> Attributes {
        if resource.group.is_empty()
            && resource.resource == "namespaces"
            && !resource.name.is_empty()
        {
            resource.namespace = resource.name.clone();
        }
        Attributes {
            verb: verb.to_owned(),
            target: Target::Resource(resource),
        }
    }

    /// A request for a path outside the resource tree.
    pub fn path(method: &http::Method, path: &str) -> Attributes {
        Attributes {
            verb: method.as_str().to_ascii_lowercase(),
            target: Target::Path(path.to_owned()),
        }
    }

    /// The namespace a namespaced grant must match; `None` for cluster-scoped requests and paths.
    pub fn namespace(&self) -> Option<&str> {
        match &self.target {
            Target::Resource(r) if !r.namespace.is_empty() => Some(&r.namespace),
            _ => None,
        }
    }

    /// The real API server's 403 for `user`, with the authoriser's `reason` (if any) appended.
    pub fn forbidden(&self, user: &str, reason: &str) -> ApiError {
        let verb = &self.verb;
        let (prefix, why, details) = match &self.target {
            Target::Path(path) => (
                "forbidden".to_owned(),
                format!("User \"{user}\" cannot {verb} path \"{path}\""),
                Map::new(),
            ),
            Target::Resource(r) => {
                let qualified = if r.group.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}.{}", r.resource, r.group)
                };
                let prefix = if r.name.is_empty() {
                    format!("{qualified} is forbidden")
                } else {
                    format!("{qualified} \"{}\" is forbidden", r.name)
                };
                let resource = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                let scope = if r.namespace.is_empty() {
                    "at the cluster scope".to_owned()
                } else {
                    format!("in the namespace \"{}\"", r.namespace)
                };
                let why = format!(
                    "User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
                    r.group
                );
                // Empty fields are omitted, as Go's `omitempty` does.
                let details = [
                    ("name", &r.name),
                    ("group", &r.group),
                    ("kind", &r.resource),
                ]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_owned(), Value::String(v.clone())))
                .collect();
                (prefix, why, details)
            }
        };
        let why = if reason.is_empty() {
            why
        } else {
            format!("{why}: {reason}")
        };
        ApiError {
            details: Some(Value::Object(details)),
            ..ApiError::forbidden(format!("{prefix}: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmap(namespace: &str, name: &str, subresource: &str) -> ResourceAttributes {
        ResourceAttributes {
            group: String::new(),
            resource: "configmaps".into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn forbidden_texts_are_the_real_api_servers() {
        let user = "system:serviceaccount:a:reader";
        let cases = [
            (
                Attributes::resource("get", configmap("b", "settings", "")),
                "configmaps \"settings\" is forbidden: User \"system:serviceaccount:a:reader\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"b\"",
            ),
            (
                Attributes::resource("list", configmap("", "", "")),
                "configmaps is forbidden: User \"system:serviceaccount:a:reader\" cannot list resource \"configmaps\" in API group \"\" at the cluster scope",
            ),
            (
                Attributes::resource(
                    "get",
                    ResourceAttributes {
                        group: "apps".into(),
                        resource: "deployments".into(),
                        subresource: "scale".into(),
                        namespace: "a".into(),
                        name: "web".into(),
                    },
                ),
                "deployments.apps \"web\" is forbidden: User \"system:serviceaccount:a:reader\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"a\"",
            ),
            (
                Attributes::path(&http::Method::GET, "/metrics"),
                "forbidden: User \"system:serviceaccount:a:reader\" cannot get path \"/metrics\"",
            ),
        ];
        for (attributes, message) in cases {
            let error = attributes.forbidden(user, "");
            assert_eq!(
                (error.code, error.reason, error.message.as_str()),
                (403, "Forbidden", message)
            );
        }
        let error = Attributes::resource("get", configmap("a", "x", "")).forbidden(
            user,
            "RBAC: role.rbac.authorization.k8s.io \"gone\" not found",
        );
        assert!(error.message.ends_with(
            "in the namespace \"a\": RBAC: role.rbac.authorization.k8s.io \"gone\" not found"
        ));
        assert_eq!(
            error.details,
            Some(serde_json::json!({"name": "x", "kind": "configmaps"}))
        );
    }
}
