//! Who a caller is, as the authenticators found out: what handlers read from a request's
//! extensions.

use std::fmt;

use serde::Deserialize;

/// The caller of a gRPC call, put into the request's extensions by the authentication layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A GitHub Actions job, by its OIDC token's claims.
    GitHubActions(GitHubClaims),
    /// A Kubernetes ServiceAccount, by a token the management cluster's TokenReview accepted.
    ServiceAccount { namespace: String, name: String },
    /// Another Kubernetes user TokenReview accepted (not a ServiceAccount).
    KubernetesUser { username: String },
    /// A static token, by the name it has in the tokens Secret.
    StaticToken { name: String },
    /// Nobody: the server was started with `--allow-unauthenticated` and the call had no token.
    Anonymous,
}

/// The claims of a GitHub Actions OIDC token that say what ran: the repository, the ref, the
/// workflow and who started it. Names as in GitHub's token.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct GitHubClaims {
    /// `repo:OWNER/REPO:ref:refs/heads/main` and similar.
    #[serde(default)]
    pub sub: String,
    /// `OWNER/REPO`.
    #[serde(default)]
    pub repository: String,
    /// `OWNER`.
    #[serde(default)]
    pub repository_owner: String,
    /// `refs/heads/main`, `refs/pull/12/merge`, `refs/tags/v1`.
    #[serde(default, rename = "ref")]
    pub git_ref: String,
    /// The commit the workflow runs on.
    #[serde(default)]
    pub sha: String,
    /// The workflow's name.
    #[serde(default)]
    pub workflow: String,
    /// Who started the run.
    #[serde(default)]
    pub actor: String,
}

impl GitHubClaims {
    /// The repository's owner and name, when the claims name one as `OWNER/REPO`.
    pub fn owner_and_name(&self) -> Option<(&str, &str)> {
        self.repository
            .split_once('/')
            .filter(|(owner, name)| !owner.is_empty() && !name.is_empty())
    }
}

impl Identity {
    /// `system:serviceaccount:NAMESPACE:NAME` for a ServiceAccount, as Kubernetes names it.
    pub fn service_account_username(&self) -> Option<String> {
        match self {
            Identity::ServiceAccount { namespace, name } => {
                Some(format!("system:serviceaccount:{namespace}:{name}"))
            }
            _ => None,
        }
    }
}

/// One line naming the caller for audit lines and annotations, such as
/// `github:cilium/cilium@refs/heads/main`, `serviceaccount:ci/runner` or `token:alice`. It holds
/// nothing secret.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::GitHubActions(claims) => {
                write!(f, "github:{}@{}", claims.repository, claims.git_ref)
            }
            Identity::ServiceAccount { namespace, name } => {
                write!(f, "serviceaccount:{namespace}/{name}")
            }
            Identity::KubernetesUser { username } => write!(f, "user:{username}"),
            Identity::StaticToken { name } => write!(f, "token:{name}"),
            Identity::Anonymous => f.write_str("anonymous"),
        }
    }
}
