//! The flags that choose a server's authenticators, shared by the services that authenticate
//! callers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::authenticator::Authenticator;
use crate::github::{GITHUB_ACTIONS_ISSUER, GitHubOidc};
use crate::jwks::JwksCache;
use crate::policy::PolicySource;
use crate::static_tokens::StaticTokens;
use crate::token_review::TokenReviewer;

/// Which callers a server accepts. With none of the three configured and no
/// `--allow-unauthenticated`, every call is refused.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AuthArgs {
    /// Accept GitHub Actions OIDC tokens for this audience (what a workflow asks for with
    /// `core.getIDToken(AUDIENCE)`); unset: Actions tokens are not accepted.
    #[arg(long, env = "TESTCLUSTER_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,

    /// Issuer of the OIDC tokens [default: https://token.actions.githubusercontent.com].
    #[arg(long, env = "TESTCLUSTER_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// Where the issuer publishes its signing keys [default: ISSUER/.well-known/jwks].
    #[arg(long, env = "TESTCLUSTER_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,

    /// Shortest time between two key fetches caused by tokens naming unknown keys.
    #[arg(long, env = "TESTCLUSTER_OIDC_JWKS_MIN_REFRESH", default_value = "30s", value_parser = humantime::parse_duration)]
    pub oidc_jwks_min_refresh: Duration,

    /// Accept static tokens listed (as `NAME: sha256:<hex digest>`) in this Secret, NAMESPACE/NAME;
    /// changes apply without a restart.
    #[arg(long, env = "TESTCLUSTER_STATIC_TOKENS_SECRET")]
    pub static_tokens_secret: Option<String>,

    /// Accept Kubernetes tokens (ServiceAccounts' in particular) that the management cluster's
    /// TokenReview accepts.
    #[arg(long, env = "TESTCLUSTER_TOKEN_REVIEW")]
    pub token_review: bool,

    /// Audience those Kubernetes tokens must be for (repeatable) [default: the API server's].
    #[arg(long, env = "TESTCLUSTER_TOKEN_REVIEW_AUDIENCE")]
    pub token_review_audience: Vec<String>,

    /// The tenancy policy: a ConfigMap, NAMESPACE/NAME, whose key `policy.yaml` maps identities to
    /// what they may do; changes apply without a restart. Unset: every authenticated caller may do
    /// anything.
    #[arg(long, env = "TESTCLUSTER_POLICY_CONFIG_MAP")]
    pub policy_config_map: Option<String>,

    /// Let calls without a token through as `anonymous`. For development on loopback only.
    #[arg(long, env = "TESTCLUSTER_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
}

/// Keys older than this are fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(60 * 60);

impl AuthArgs {
    /// The authenticator these flags describe; the static tokens' watch runs until `shutdown`.
    pub fn build(
        &self,
        client: &kube::Client,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Authenticator> {
        let github = self.oidc_audience.as_ref().map(|audience| {
            let issuer = self
                .oidc_issuer
                .clone()
                .unwrap_or_else(|| GITHUB_ACTIONS_ISSUER.to_owned());
            let jwks_url = self
                .oidc_jwks_url
                .clone()
                .unwrap_or_else(|| format!("{}/.well-known/jwks", issuer.trim_end_matches('/')));
            let keys = JwksCache::new(jwks_url, JWKS_MAX_AGE, self.oidc_jwks_min_refresh);
            Arc::new(GitHubOidc::new(issuer, audience.clone(), keys))
        });
        let static_tokens = match &self.static_tokens_secret {
            Some(secret) => {
                let (namespace, name) = object_ref("--static-tokens-secret", secret)?;
                Some(StaticTokens::watch(
                    client.clone(),
                    namespace,
                    name,
                    shutdown.clone(),
                ))
            }
            None => None,
        };
        let token_review = self.token_review.then(|| {
            Arc::new(TokenReviewer::new(
                client.clone(),
                self.token_review_audience.clone(),
            ))
        });
        Ok(Authenticator {
            static_tokens,
            github,
            token_review,
            allow_unauthenticated: self.allow_unauthenticated,
        })
    }

    /// The policy these flags name, watched until `shutdown`; `None` without one.
    pub fn policy(
        &self,
        client: &kube::Client,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Option<PolicySource>> {
        let Some(config_map) = &self.policy_config_map else {
            return Ok(None);
        };
        let (namespace, name) = object_ref("--policy-config-map", config_map)?;
        Ok(Some(PolicySource::watch(
            client.clone(),
            namespace,
            name,
            shutdown.clone(),
        )))
    }
}

/// `NAMESPACE/NAME` of flag `flag`.
fn object_ref<'a>(flag: &str, value: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    value
        .split_once('/')
        .filter(|(namespace, name)| !namespace.is_empty() && !name.is_empty())
        .with_context(|| format!("{flag} {value:?}: expected NAMESPACE/NAME"))
}
