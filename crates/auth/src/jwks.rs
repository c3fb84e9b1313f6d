//! An OIDC issuer's signing keys (its JWKS), fetched once, kept, and fetched again when they are
//! old or when a token names a key the cache does not hold.
//!
//! Issuers rotate keys by publishing the new key before signing with it, so a token with an
//! unknown `kid` usually means the cache is behind: one refresh brings the key. Anyone can make up
//! a `kid`, though, so those refreshes are rate-limited: a
//! flood of made-up kids costs the issuer at most one request per interval. A refresh replaces the
//! whole set, so a key the issuer withdrew stops verifying tokens as soon as the cache learns of it.
//!
//! Only fetches caused by unknown kids count against the rate limit; the first fetch and those of
//! an old cache do not, so a rotation soon after start is still seen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use parking_lot::RwLock;

/// The largest JWKS document read; GitHub's is a few KiB.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A usable key: the JWK (for its algorithm) and the key made from it.
#[derive(Clone)]
pub struct SigningKey {
    pub jwk: Jwk,
    pub key: DecodingKey,
}

struct Cached {
    keys: HashMap<String, SigningKey>,
    fetched: Option<Instant>,
    /// When an unknown kid last caused a fetch: the rate limit counts only those.
    miss_fetched: Option<Instant>,
}

/// The cache of one issuer's keys.
pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    cached: RwLock<Cached>,
    /// Held while fetching, so that concurrent misses cause one fetch.
    fetching: tokio::sync::Mutex<()>,
    /// Keys older than this are fetched again on the next lookup.
    max_age: Duration,
    /// At most one fetch per this interval for unknown kids.
    min_refresh_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the issuer's keys from {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("the token's key {kid:?} is not among the issuer's keys")]
    UnknownKid { kid: String },
}

impl JwksCache {
    pub fn new(url: String, max_age: Duration, min_refresh_interval: Duration) -> Arc<JwksCache> {
        Arc::new(JwksCache {
            url,
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .unwrap_or_default(),
            cached: RwLock::new(Cached {
                keys: HashMap::new(),
                fetched: None,
                miss_fetched: None,
            }),
            fetching: tokio::sync::Mutex::new(()),
            max_age,
            min_refresh_interval,
        })
    }

    /// The key `kid`, from the cache or, when it is missing or the cache is old, from a fetch.
    pub async fn key(&self, kid: &str) -> Result<SigningKey, JwksError> {
        let fetched = self.cached.read().fetched;
        let stale = fetched.is_none_or(|at| at.elapsed() >= self.max_age);
        if !stale && let Some(key) = self.cached.read().keys.get(kid) {
            return Ok(key.clone());
        }
        let _fetching = self.fetching.lock().await;
        // Someone else may have fetched while this call waited.
        let fetched_now = self.cached.read().fetched;
        if fetched_now != fetched
            && let Some(key) = self.cached.read().keys.get(kid)
        {
            return Ok(key.clone());
        }
        let stale = fetched_now.is_none_or(|at| at.elapsed() >= self.max_age);
        let miss_fetched = self.cached.read().miss_fetched;
        let miss_allowed = miss_fetched.is_none_or(|at| at.elapsed() >= self.min_refresh_interval);
        if stale || miss_allowed {
            let keys = self.fetch().await?;
            let now = Instant::now();
            *self.cached.write() = Cached {
                keys,
                fetched: Some(now),
                miss_fetched: if stale { miss_fetched } else { Some(now) },
            };
        }
        self.cached
            .read()
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| JwksError::UnknownKid {
                kid: kid.chars().take(64).collect(),
            })
    }

    async fn fetch(&self) -> Result<HashMap<String, SigningKey>, JwksError> {
        let error = |message: String| JwksError::Fetch {
            url: self.url.clone(),
            message,
        };
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| error(e.to_string()))?;
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| error(e.to_string()))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(error(format!("larger than {MAX_JWKS_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| error(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // Keys of kinds this verifier does not handle are skipped, not fatal: the issuer may
            // publish more than it signs with.
            match DecodingKey::from_jwk(&jwk) {
                Ok(key) => {
                    keys.insert(kid, SigningKey { jwk, key });
                }
                Err(e) => tracing::warn!(url = %self.url, %kid, error = %e, "skipping a JWKS key"),
            }
        }
        tracing::info!(url = %self.url, keys = keys.len(), "fetched the issuer's signing keys");
        Ok(keys)
    }
}
