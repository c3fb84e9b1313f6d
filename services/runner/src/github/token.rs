//! The token statuses are written with, from a Secret of the management cluster (never logged):
//!
//! - key `token`: a personal or fine-grained access token (or any token GitHub takes as Bearer);
//! - keys `app-id`, `installation-id` and `private-key` (the App's PEM key): a GitHub App. A JWT
//!   signed with the key (RS256, 9 minutes) buys an installation token from
//!   `POST /app/installations/{id}/access_tokens`, used until shortly before it expires.
//!
//! The Secret is read when a token is first needed and again after GitHub refused one (401), so a
//! rotated token is picked up without a restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use parking_lot::Mutex;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use serde::{Deserialize, Serialize};

use super::client::{CallError, GitHubApi, check};

/// An installation token is replaced this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);
/// Lifetime of the App's JWT (GitHub allows at most 10 minutes).
const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);

/// Where the token comes from: the Secret `name` in the namespace of `secrets`.
pub struct Tokens {
    secrets: Api<Secret>,
    name: String,
    cached: Mutex<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    token: String,
    /// When an installation token must be renewed; `None` for a plain token.
    renew_at: Option<Timestamp>,
}

#[derive(Serialize)]
struct Claims {
    iat: u64,
    exp: u64,
    iss: String,
}

#[derive(Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: Option<Timestamp>,
}

impl Tokens {
    pub fn new(secrets: Api<Secret>, name: String) -> Tokens {
        Tokens {
            secrets,
            name,
            cached: Mutex::new(None),
        }
    }

    /// Forgets the token GitHub just refused.
    pub fn invalidate(&self) {
        *self.cached.lock() = None;
    }

    /// A token to call GitHub with.
    pub async fn token(&self, api: &GitHubApi) -> Result<String, CallError> {
        let cached = self.cached.lock().clone();
        if let Some(cached) = cached
            && cached.renew_at.is_none_or(|at| Timestamp::now() < at)
        {
            return Ok(cached.token);
        }
        let fresh = self.fetch(api).await?;
        let token = fresh.token.clone();
        *self.cached.lock() = Some(fresh);
        Ok(token)
    }

    async fn fetch(&self, api: &GitHubApi) -> Result<Cached, CallError> {
        let what = format!("GitHub token Secret {}", self.name);
        let secret = self
            .secrets
            .get_opt(&self.name)
            .await
            .map_err(|e| CallError::Transient(format!("reading {what}: {e}")))?
            .ok_or_else(|| CallError::Transient(format!("{what} does not exist")))?;
        let data = secret.data.unwrap_or_default();
        let key = |name: &str| {
            data.get(name)
                .map(|value| String::from_utf8_lossy(&value.0).trim().to_owned())
        };
        if let Some(token) = key("token") {
            return Ok(Cached {
                token,
                renew_at: None,
            });
        }
        let (Some(app_id), Some(installation), Some(private_key)) =
            (key("app-id"), key("installation-id"), key("private-key"))
        else {
            return Err(CallError::Transient(format!(
                "{what} has neither `token` nor `app-id`, `installation-id` and `private-key`"
            )));
        };
        let jwt = app_jwt(&app_id, &private_key, SystemTime::now())
            .map_err(|e| CallError::Transient(format!("{what}: signing the App's JWT: {e}")))?;
        let call = format!("POST /app/installations/{installation}/access_tokens");
        let response = api
            .http()
            .post(api.url(&["app", "installations", &installation, "access_tokens"]))
            .header(AUTHORIZATION, format!("Bearer {jwt}"))
            .header(ACCEPT, "application/vnd.github+json")
            .send()
            .await
            .map_err(|e| CallError::Transient(format!("{call}: {e}")))?;
        let response = check(&call, response).await?;
        let minted: InstallationToken = response
            .json()
            .await
            .map_err(|e| CallError::Transient(format!("{call}: {e}")))?;
        Ok(Cached {
            token: minted.token,
            renew_at: minted
                .expires_at
                .and_then(|at| at.checked_sub(RENEW_BEFORE).ok()),
        })
    }
}

/// The App's JWT: issued a minute in the past (clock drift, as GitHub advises), RS256.
pub fn app_jwt(
    app_id: &str,
    private_key_pem: &str,
    now: SystemTime,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let claims = Claims {
        iat: now.saturating_sub(60),
        exp: now + JWT_LIFETIME.as_secs(),
        iss: app_id.to_owned(),
    };
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())?;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key made for this test only (`openssl genrsa -traditional 2048`), in the PKCS#1 PEM a
    /// GitHub App's private key comes in.
    const PRIVATE_KEY: &str = include_str!("../../testdata/github-app-test-key.pem");
    const PUBLIC_KEY: &str = include_str!("../../testdata/github-app-test-key.pub.pem");

    #[derive(Deserialize)]
    struct Read {
        iat: u64,
        exp: u64,
        iss: String,
    }

    #[test]
    fn the_app_jwt_is_rs256_signed_and_issued_by_the_app() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let jwt = app_jwt("12345", PRIVATE_KEY, now).expect("signed");
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        // The token is from a fixed past instant: check the signature and claims, not the clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss"]);
        let read = jsonwebtoken::decode::<Read>(&jwt, &key, &validation).expect("verified");
        assert_eq!(read.claims.iss, "12345");
        assert_eq!(read.claims.iat, 1_000_000 - 60);
        assert_eq!(read.claims.exp, 1_000_000 + 9 * 60);
        assert!(app_jwt("12345", "not a key", now).is_err());
    }
}
