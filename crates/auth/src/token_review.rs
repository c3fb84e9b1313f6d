//! Kubernetes tokens (a ServiceAccount's, typically a pod's projected token), verified by the
//! management cluster's TokenReview API, as the API server itself would verify them.
//!
//! Answers are kept for a short while by the token's digest, so a client's calls cost one review
//! per [`CACHE_TTL`], not one each.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use parking_lot::Mutex;

use crate::digest::sha256;
use crate::identity::Identity;

/// How long an accepted token is believed without asking again. A revoked token works at most this
/// much longer.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Tokens remembered at once; the cache is emptied when full rather than grow.
const CACHE_ENTRIES: usize = 10_000;
/// How long one review may take.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks TokenReview whom a token stands for.
pub struct TokenReviewer {
    client: kube::Client,
    /// Audiences the token must be for; empty: the API server's own.
    audiences: Vec<String>,
    cache: Mutex<HashMap<[u8; 32], (Identity, Instant)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the token was not accepted by the management cluster")]
    Rejected,
    #[error("the management cluster could not review the token: {0}")]
    Unavailable(String),
}

impl TokenReviewer {
    pub fn new(client: kube::Client, audiences: Vec<String>) -> TokenReviewer {
        TokenReviewer {
            client,
            audiences,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The identity `token` stands for.
    pub async fn review(&self, token: &str) -> Result<Identity, ReviewError> {
        let digest = sha256(token);
        if let Some((identity, at)) = self.cache.lock().get(&digest)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(identity.clone());
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: (!self.audiences.is_empty()).then(|| self.audiences.clone()),
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answered =
            tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review))
                .await
                .map_err(|_| ReviewError::Unavailable("timed out".to_owned()))?
                // kube's error names the request, never its body.
                .map_err(|e| ReviewError::Unavailable(e.to_string()))?;
        let status = answered.status.unwrap_or_default();
        let username = match (status.authenticated, status.user.and_then(|u| u.username)) {
            (Some(true), Some(username)) => username,
            _ => return Err(ReviewError::Rejected),
        };
        let identity = identity_of(&username);
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(digest, (identity.clone(), Instant::now()));
        Ok(identity)
    }
}

/// `system:serviceaccount:NS:NAME` is a ServiceAccount; anyone else a user.
fn identity_of(username: &str) -> Identity {
    match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name)) => Identity::ServiceAccount {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
        None => Identity::KubernetesUser {
            username: username.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_are_told_from_users() {
        assert_eq!(
            identity_of("system:serviceaccount:ci:runner"),
            Identity::ServiceAccount {
                namespace: "ci".to_owned(),
                name: "runner".to_owned()
            }
        );
        assert_eq!(
            identity_of("system:admin"),
            Identity::KubernetesUser {
                username: "system:admin".to_owned()
            }
        );
    }
}
