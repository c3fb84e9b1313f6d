//! The tenancy policy: which identities may use testcluster, and within what bounds.
//!
//! It lives in a ConfigMap (key `policy.yaml`), watched so that changes apply at once. Each tenant
//! lists who belongs to it (`match`: any entry matching is enough; within an entry every field
//! given must match) and what its members may do; the first tenant whose `match` fits the caller
//! is the caller's. Someone matching no tenant may do nothing.
//!
//! ```yaml
//! tenants:
//! - name: cilium-ci
//!   match:
//!   - {repository: cilium/cilium, ref: "refs/heads/*", workflow: "Conformance GKE"}
//!   - {serviceAccount: ci/runner}
//!   - {staticToken: alice}
//!   namespaces: [cilium-ci]        # "*": any
//!   templates: [basic]             # absent or empty: any
//!   maxConcurrentClusters: 10      # absent: no bound
//!   maxNodesPerCluster: 4
//!   maxTotalNodes: 24
//!   maxTTL: 4h
//!   maxHold: 2h
//!   credentials: true              # may fetch a test cluster's kubeconfig; default false
//!   seesUntenanted: false          # also sees clusters made outside the API (kubectl) in its
//!                                  # namespaces; default false
//! ```
//!
//! A policy that does not parse is not taken: the one before it stays in force (and the error is
//! logged), so a typo never opens or closes everything.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::identity::Identity;
use crate::watched::Watched;

/// The ConfigMap key holding the policy.
pub const POLICY_KEY: &str = "policy.yaml";
/// The most tenants a policy may have.
pub const MAX_TENANTS: usize = 1000;

/// The whole policy.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub tenants: Vec<Tenant>,
}

/// One tenant: who belongs, and what they may do.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tenant {
    pub name: String,
    #[serde(rename = "match", default)]
    pub matches: Vec<Match>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub templates: Vec<String>,
    pub max_concurrent_clusters: Option<u32>,
    pub max_nodes_per_cluster: Option<u32>,
    pub max_total_nodes: Option<u32>,
    #[serde(rename = "maxTTL", default, with = "optional_duration")]
    pub max_ttl: Option<Duration>,
    #[serde(default, with = "optional_duration")]
    pub max_hold: Option<Duration>,
    #[serde(default)]
    pub credentials: bool,
    /// Also sees (and may act on) test clusters without a tenant, those created with kubectl
    /// rather than through the API, in its namespaces.
    #[serde(default)]
    pub sees_untenanted: bool,
}

/// Who belongs to a tenant: every field given must match the caller.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// A GitHub repository, `OWNER/REPO`.
    pub repository: Option<String>,
    /// A GitHub ref pattern; `*` matches any characters (`refs/heads/*`, `refs/pull/*/merge`).
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// A GitHub workflow's name.
    pub workflow: Option<String>,
    /// A ServiceAccount, `NAMESPACE/NAME`.
    pub service_account: Option<String>,
    /// A static token's name.
    pub static_token: Option<String>,
    /// A Kubernetes user name (not a ServiceAccount).
    pub user: Option<String>,
}

impl Match {
    fn fits(&self, identity: &Identity) -> bool {
        /// `wanted` is unset, or `actual` is it.
        fn equal(wanted: &Option<String>, actual: Option<&str>) -> bool {
            wanted
                .as_deref()
                .is_none_or(|wanted| actual == Some(wanted))
        }
        let claims = match identity {
            Identity::GitHubActions(claims) => Some(claims),
            _ => None,
        };
        let service_account = match identity {
            Identity::ServiceAccount { namespace, name } => {
                Some((namespace.as_str(), name.as_str()))
            }
            _ => None,
        };
        let static_token = match identity {
            Identity::StaticToken { name } => Some(name.as_str()),
            _ => None,
        };
        let user = match identity {
            Identity::KubernetesUser { username } => Some(username.as_str()),
            _ => None,
        };
        // An empty entry would match everyone: never what was meant ([`Policy::parse`] refuses it).
        *self != Match::default()
            && equal(&self.repository, claims.map(|c| c.repository.as_str()))
            && equal(&self.workflow, claims.map(|c| c.workflow.as_str()))
            && self
                .git_ref
                .as_deref()
                .is_none_or(|pattern| claims.is_some_and(|c| glob_match(pattern, &c.git_ref)))
            && self.service_account.as_deref().is_none_or(|wanted| {
                service_account.is_some_and(|actual| wanted.split_once('/') == Some(actual))
            })
            && equal(&self.static_token, static_token)
            && equal(&self.user, user)
    }
}

/// `*` matches any run of characters (`/` included); everything else itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Tenant {
    /// Whether the tenant may use `namespace`.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == "*" || n == namespace)
    }

    /// Whether the tenant may use `template`.
    pub fn allows_template(&self, template: &str) -> bool {
        self.templates.is_empty() || self.templates.iter().any(|t| t == template)
    }
}

impl Policy {
    /// The tenant `identity` belongs to: the first that matches.
    pub fn tenant_of(&self, identity: &Identity) -> Option<&Tenant> {
        self.tenants
            .iter()
            .find(|tenant| tenant.matches.iter().any(|m| m.fits(identity)))
    }

    /// Parses and checks a policy document.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        if policy.tenants.len() > MAX_TENANTS {
            return Err(format!("more than {MAX_TENANTS} tenants"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, tenant) in policy.tenants.iter().enumerate() {
            if tenant.name.is_empty() {
                return Err(format!("tenants[{i}].name: is required"));
            }
            if !names.insert(tenant.name.as_str()) {
                return Err(format!(
                    "tenants[{i}].name: {:?} appears twice",
                    tenant.name
                ));
            }
            for (j, m) in tenant.matches.iter().enumerate() {
                if *m == Match::default() {
                    return Err(format!("tenants[{i}].match[{j}]: names no field"));
                }
            }
        }
        Ok(policy)
    }
}

/// The policy in force, kept current from its ConfigMap.
#[derive(Clone)]
pub struct PolicySource {
    policy: Watched<Option<Policy>>,
}

impl PolicySource {
    /// Watches ConfigMap `namespace/name` until `shutdown`.
    pub fn watch(
        client: kube::Client,
        namespace: &str,
        name: &str,
        shutdown: CancellationToken,
    ) -> PolicySource {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let what = format!("{namespace}/{name}");
        let last_good = parking_lot::Mutex::new(None::<Policy>);
        let make = move |config_map: Option<&ConfigMap>| {
            let text = config_map
                .and_then(|c| c.data.as_ref())
                .and_then(|data| data.get(POLICY_KEY));
            let Some(text) = text else {
                tracing::warn!(config_map = %what, key = POLICY_KEY, "no policy: every call is refused");
                *last_good.lock() = None;
                return None;
            };
            match Policy::parse(text) {
                Ok(policy) => {
                    tracing::info!(config_map = %what, tenants = policy.tenants.len(), "policy loaded");
                    *last_good.lock() = Some(policy.clone());
                    Some(policy)
                }
                Err(error) => {
                    tracing::error!(config_map = %what, %error, "policy not taken; the one before stays in force");
                    last_good.lock().clone()
                }
            }
        };
        PolicySource {
            policy: Watched::start(api, name, make, shutdown),
        }
    }

    /// A fixed policy, for tests.
    pub fn fixed(policy: Policy) -> PolicySource {
        PolicySource {
            policy: Watched::fixed(Some(policy)),
        }
    }

    /// The tenant of `identity` under the policy now in force.
    pub async fn tenant_of(&self, identity: &Identity) -> Option<Arc<Tenant>> {
        let policy = self.policy.current().await?;
        policy
            .as_ref()
            .as_ref()?
            .tenant_of(identity)
            .cloned()
            .map(Arc::new)
    }
}

/// `4h`, `30m`: durations as humantime writes them.
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => humantime::parse_duration(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::GitHubClaims;

    fn github(repository: &str, git_ref: &str, workflow: &str) -> Identity {
        Identity::GitHubActions(GitHubClaims {
            repository: repository.to_owned(),
            git_ref: git_ref.to_owned(),
            workflow: workflow.to_owned(),
            ..GitHubClaims::default()
        })
    }

    const POLICY: &str = r#"
tenants:
- name: cilium-main
  match:
  - {repository: cilium/cilium, ref: "refs/heads/*", workflow: conformance}
  namespaces: [cilium]
- name: everyone-else
  match:
  - {repository: cilium/cilium}
  - {serviceAccount: ci/runner}
  - {staticToken: alice}
  namespaces: ["*"]
  templates: [basic]
  maxTTL: 2h
"#;

    #[test]
    fn the_first_tenant_that_matches_is_the_callers() {
        let policy = Policy::parse(POLICY).expect("parses");
        let tenant = |identity: &Identity| policy.tenant_of(identity).map(|t| t.name.as_str());
        assert_eq!(
            tenant(&github("cilium/cilium", "refs/heads/main", "conformance")),
            Some("cilium-main")
        );
        assert_eq!(
            tenant(&github("cilium/cilium", "refs/pull/1/merge", "conformance")),
            Some("everyone-else"),
            "the ref pattern decides"
        );
        assert_eq!(tenant(&github("other/repo", "refs/heads/main", "x")), None);
        let account = |namespace: &str| Identity::ServiceAccount {
            namespace: namespace.to_owned(),
            name: "runner".to_owned(),
        };
        assert_eq!(tenant(&account("ci")), Some("everyone-else"));
        assert_eq!(tenant(&account("other")), None);
        let token = |name: &str| Identity::StaticToken {
            name: name.to_owned(),
        };
        assert_eq!(tenant(&token("alice")), Some("everyone-else"));
        assert_eq!(tenant(&token("bob")), None);
        assert_eq!(tenant(&Identity::Anonymous), None);
        let everyone = &policy.tenants[1];
        assert_eq!(everyone.max_ttl, Some(Duration::from_secs(7200)));
        assert!(everyone.allows_namespace("anything"));
        assert!(!everyone.allows_template("other"));
        assert!(!policy.tenants[0].allows_namespace("other"));
    }

    #[test]
    fn a_bad_policy_is_refused_with_its_place() {
        let error = |text: &str| Policy::parse(text).expect_err("refused");
        assert_eq!(
            error("tenants:\n- name: a\n  match: [{}]\n"),
            "tenants[0].match[0]: names no field"
        );
        assert_eq!(
            error("tenants:\n- {name: a}\n- {name: a}\n"),
            "tenants[1].name: \"a\" appears twice"
        );
        assert!(error("tenants:\n- {name: a, maxNodes: 3}\n").contains("unknown field"));
    }

    #[test]
    fn ref_patterns() {
        assert!(glob_match("refs/heads/*", "refs/heads/main"));
        assert!(glob_match("refs/pull/*/merge", "refs/pull/12/merge"));
        assert!(!glob_match("refs/pull/*/merge", "refs/pull/12/head"));
        assert!(glob_match("refs/tags/v1", "refs/tags/v1"));
        assert!(!glob_match("refs/tags/v1", "refs/tags/v10"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*a", "a"));
    }
}
