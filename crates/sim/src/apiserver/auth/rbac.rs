//! The RBAC authoriser, deciding as the real one does: a request is allowed when a rule of a role
//! bound to its user or one of its groups matches it (ClusterRoleBindings everywhere, RoleBindings
//! in their namespace); members of `system:masters` are always allowed.
//!
//! The bindings and roles are compiled into an index by subject, rebuilt only when one of the four
//! RBAC tables has changed since, so a request costs a few hash lookups and a scan of the rules
//! bound to its subjects, not a scan of every binding.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use super::attributes::{Attributes, ResourceAttributes, Target};
use super::identity::{Identity, service_account_user};
use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::store::Store;

const ROLES: &str = "rbac.authorization.k8s.io/roles";
const ROLE_BINDINGS: &str = "rbac.authorization.k8s.io/rolebindings";
const CLUSTER_ROLES: &str = "rbac.authorization.k8s.io/clusterroles";
const CLUSTER_ROLE_BINDINGS: &str = "rbac.authorization.k8s.io/clusterrolebindings";
const TABLES: [&str; 4] = [CLUSTER_ROLE_BINDINGS, ROLE_BINDINGS, CLUSTER_ROLES, ROLES];

/// What the authoriser says about one request, with the reason the real one gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// `RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to Group "z"`, or empty for
    /// `system:masters`.
    Allow(String),
    /// Empty, or `RBAC: ...` naming the roles that bindings of the subject refer to and that do not
    /// exist.
    Deny(String),
}

/// The authoriser of one API server.
#[derive(Default)]
pub struct Rbac {
    index: RwLock<Arc<Index>>,
}

impl Rbac {
    /// Decides whether `identity` may do what `attributes` say.
    pub fn authorize(
        &self,
        store: &Store,
        identity: &Identity,
        attributes: &Attributes,
    ) -> Decision {
        if identity.is_master() {
            return Decision::Allow(String::new());
        }
        self.current(store).decide(identity, attributes)
    }

    /// The index as of the RBAC tables now, rebuilt if they changed since it was built.
    fn current(&self, store: &Store) -> Arc<Index> {
        let stamp = store.last_changes(TABLES);
        {
            let index = self.index.read();
            if index.stamp == stamp {
                return index.clone();
            }
        }
        let mut index = self.index.write();
        if index.stamp != stamp {
            *index = Arc::new(Index::build(store, stamp));
        }
        index.clone()
    }
}

/// Whom a binding names: ServiceAccounts are users named `system:serviceaccount:<ns>:<name>`.
#[derive(Debug, Hash, PartialEq, Eq)]
enum Subject {
    User(String),
    Group(String),
}

/// One binding of a role to one subject.
struct Grant {
    /// The RoleBinding's namespace; `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    /// The role's rules, or why there are none (the role does not exist).
    rules: Result<Arc<[Rule]>, String>,
    /// `RoleBinding "rb/ns" of Role "r" to ServiceAccount "sa/ns"`, for the allow reason.
    source: String,
}

#[derive(Default)]
struct Index {
    /// The RBAC tables' last changes this index was built from.
    stamp: [u64; 4],
    /// Per subject, ClusterRoleBindings' grants first, as the real authoriser visits them.
    grants: HashMap<Subject, Vec<Grant>>,
}

impl Index {
    fn build(store: &Store, stamp: [u64; 4]) -> Index {
        let all = |table: &str| store.list(table, None).0;
        let roles: HashMap<(String, String), Arc<[Rule]>> = all(ROLES)
            .iter()
            .map(|role| {
                let meta = &role["metadata"];
                (
                    (text(&meta["namespace"]), text(&meta["name"])),
                    Rule::all_of(role).into(),
                )
            })
            .collect();
        let cluster_roles = cluster_roles(&all(CLUSTER_ROLES));
        let mut index = Index {
            stamp,
            grants: HashMap::new(),
        };
        for binding in all(CLUSTER_ROLE_BINDINGS).iter() {
            let role = text(&binding["roleRef"]["name"]);
            let rules = cluster_roles.get(&role).cloned().ok_or_else(|| {
                format!("clusterrole.rbac.authorization.k8s.io \"{role}\" not found")
            });
            index.bind(binding, None, rules);
        }
        for binding in all(ROLE_BINDINGS).iter() {
            let namespace = text(&binding["metadata"]["namespace"]);
            let role = text(&binding["roleRef"]["name"]);
            let rules = if binding["roleRef"]["kind"] == "ClusterRole" {
                cluster_roles.get(&role).cloned().ok_or_else(|| {
                    format!("clusterrole.rbac.authorization.k8s.io \"{role}\" not found")
                })
            } else {
                roles
                    .get(&(namespace.clone(), role.clone()))
                    .cloned()
                    .ok_or_else(|| format!("role.rbac.authorization.k8s.io \"{role}\" not found"))
            };
            index.bind(binding, Some(namespace), rules);
        }
        index
    }

    /// Records a binding's grant under each of its subjects.
    fn bind(
        &mut self,
        binding: &Value,
        namespace: Option<String>,
        rules: Result<Arc<[Rule]>, String>,
    ) {
        let name = text(&binding["metadata"]["name"]);
        let (binding_kind, binding_name) = match &namespace {
            Some(ns) => ("RoleBinding", format!("{name}/{ns}")),
            None => ("ClusterRoleBinding", name),
        };
        let role = format!(
            "{} \"{}\"",
            text(&binding["roleRef"]["kind"]),
            text(&binding["roleRef"]["name"])
        );
        for subject in binding["subjects"].as_array().into_iter().flatten() {
            let kind = text(&subject["kind"]);
            let name = text(&subject["name"]);
            let (key, described) = match kind.as_str() {
                "User" => (Subject::User(name.clone()), name),
                "Group" => (Subject::Group(name.clone()), name),
                "ServiceAccount" => {
                    let sa_namespace = subject["namespace"]
                        .as_str()
                        .filter(|ns| !ns.is_empty())
                        .or(namespace.as_deref())
                        .unwrap_or_default()
                        .to_owned();
                    (
                        Subject::User(service_account_user(&sa_namespace, &name)),
                        format!("{name}/{sa_namespace}"),
                    )
                }
                _ => continue,
            };
            self.grants.entry(key).or_default().push(Grant {
                namespace: namespace.clone(),
                rules: rules.clone(),
                source: format!(
                    "{binding_kind} \"{binding_name}\" of {role} to {kind} \"{described}\""
                ),
            });
        }
    }

    fn decide(&self, identity: &Identity, attributes: &Attributes) -> Decision {
        let subjects = std::iter::once(Subject::User(identity.user.clone()))
            .chain(identity.groups.iter().cloned().map(Subject::Group));
        let mut missing = Vec::new();
        for subject in subjects {
            for grant in self.grants.get(&subject).into_iter().flatten() {
                if grant.namespace.is_some() && grant.namespace.as_deref() != attributes.namespace()
                {
                    continue;
                }
                match &grant.rules {
                    Ok(rules) if rules.iter().any(|rule| rule.allows(attributes)) => {
                        return Decision::Allow(format!("RBAC: allowed by {}", grant.source));
                    }
                    Ok(_) => {}
                    Err(why) => missing.push(why.as_str()),
                }
            }
        }
        Decision::Deny(match missing.as_slice() {
            [] => String::new(),
            [one] => format!("RBAC: {one}"),
            many => format!("RBAC: [{}]", many.join(", ")),
        })
    }
}

/// Every ClusterRole's rules by name; an aggregated ClusterRole (one with an `aggregationRule`)
/// also has the rules of every ClusterRole its selectors match, aggregated ones included, as the
/// aggregation controller writes them.
fn cluster_roles(objects: &[Arc<Value>]) -> HashMap<String, Arc<[Rule]>> {
    objects
        .iter()
        .map(|role| {
            (
                text(&role["metadata"]["name"]),
                aggregated_rules(role, objects, MAX_AGGREGATION_DEPTH).into(),
            )
        })
        .collect()
}

/// How deep aggregated ClusterRoles may nest (the defaults nest two deep: admin > edit > view);
/// also what ends a cycle of roles selecting each other.
const MAX_AGGREGATION_DEPTH: usize = 4;

fn aggregated_rules(role: &Arc<Value>, objects: &[Arc<Value>], depth: usize) -> Vec<Rule> {
    let mut rules = Rule::all_of(role);
    let selectors: Vec<LabelSelector> = role["aggregationRule"]["clusterRoleSelectors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(LabelSelector::from_object)
        .collect();
    if selectors.is_empty() || depth == 0 {
        return rules;
    }
    for other in objects.iter().filter(|other| !Arc::ptr_eq(other, role)) {
        if selectors.iter().any(|s| s.matches(other)) {
            rules.extend(aggregated_rules(other, objects, depth - 1));
        }
    }
    rules
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// One `PolicyRule`.
#[derive(Clone, Debug, Default)]
struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

impl Rule {
    fn all_of(role: &Value) -> Vec<Rule> {
        let strings = |rule: &Value, field: &str| -> Vec<String> {
            rule[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        role["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|rule| Rule {
                verbs: strings(rule, "verbs"),
                api_groups: strings(rule, "apiGroups"),
                resources: strings(rule, "resources"),
                resource_names: strings(rule, "resourceNames"),
                non_resource_urls: strings(rule, "nonResourceURLs"),
            })
            .collect()
    }

    fn allows(&self, attributes: &Attributes) -> bool {
        if !has(&self.verbs, &attributes.verb) {
            return false;
        }
        match &attributes.target {
            Target::Resource(r) => {
                has(&self.api_groups, &r.group)
                    && self.matches_resource(r)
                    && self.matches_name(&r.name)
            }
            Target::Path(path) => self.non_resource_urls.iter().any(|url| {
                url == "*"
                    || url == path
                    || url
                        .strip_suffix('*')
                        .is_some_and(|prefix| path.starts_with(prefix))
            }),
        }
    }

    /// `resource`, `resource/subresource`, `*`, or `*/subresource`.
    fn matches_resource(&self, r: &ResourceAttributes) -> bool {
        self.resources.iter().any(|rule| {
            rule == "*"
                || (r.subresource.is_empty() && *rule == r.resource)
                || (!r.subresource.is_empty()
                    && rule.split_once('/').is_some_and(|(resource, sub)| {
                        (resource == r.resource || resource == "*") && sub == r.subresource
                    }))
        })
    }

    /// No `resourceNames` means any name; otherwise the request must name one of them.
    fn matches_name(&self, name: &str) -> bool {
        self.resource_names.is_empty()
            || (!name.is_empty() && self.resource_names.iter().any(|n| n == name))
    }
}

/// Whether `values` holds `value` or `*`.
fn has(values: &[String], value: &str) -> bool {
    values.iter().any(|v| v == "*" || v == value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(value: Value) -> Rule {
        Rule::all_of(&json!({"rules": [value]})).remove(0)
    }

    fn request(verb: &str, resource: &str, subresource: &str, name: &str) -> Attributes {
        Attributes::resource(
            verb,
            ResourceAttributes {
                group: String::new(),
                resource: resource.into(),
                subresource: subresource.into(),
                namespace: "ns".into(),
                name: name.into(),
            },
        )
    }

    #[test]
    fn rules_match_as_the_real_authoriser_matches_them() {
        let pods =
            rule(json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]}));
        assert!(pods.allows(&request("get", "pods", "", "p")));
        assert!(pods.allows(&request("get", "pods", "log", "p")));
        assert!(!pods.allows(&request("get", "pods", "exec", "p")));
        assert!(!pods.allows(&request("list", "pods", "", "")));

        let scale = rule(json!({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]}));
        assert!(scale.allows(&request("update", "deployments", "scale", "d")));
        assert!(!scale.allows(&request("update", "deployments", "", "d")));

        let named = rule(
            json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"], "verbs": ["get", "list"]}),
        );
        assert!(named.allows(&request("get", "configmaps", "", "one")));
        assert!(!named.allows(&request("get", "configmaps", "", "two")));
        assert!(!named.allows(&request("list", "configmaps", "", "")));

        let urls = rule(json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}));
        assert!(urls.allows(&Attributes::path(&http::Method::GET, "/healthz")));
        assert!(urls.allows(&Attributes::path(&http::Method::GET, "/apis/apps/v1")));
        assert!(!urls.allows(&Attributes::path(&http::Method::GET, "/healthz/etcd")));
        assert!(!urls.allows(&Attributes::path(&http::Method::POST, "/healthz")));
        assert!(!urls.allows(&request("get", "pods", "", "p")));
    }
}
