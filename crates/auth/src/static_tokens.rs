//! Static tokens, for humans and tests: a Secret whose keys are token names and whose values are
//! the tokens' SHA-256 digests (`sha256:<64 hex digits>`), watched so that adding or revoking a
//! token takes effect without a restart.
//!
//! The Secret holds digests, not tokens: whoever can read it still cannot call. A presented token
//! is hashed and looked up by its digest; the lookup's timing depends on the digest only, which
//! tells an attacker nothing about any valid token.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use rand::RngCore as _;
use tokio_util::sync::CancellationToken;

use crate::digest::sha256;
use crate::watched::Watched;

/// The prefix of a digest in the Secret.
const DIGEST_PREFIX: &str = "sha256:";
/// The most tokens one Secret may hold (a Secret is at most 1 MiB anyway).
const MAX_TOKENS: usize = 10_000;

type Table = HashMap<[u8; 32], String>;

/// The table of static tokens, kept current by a watch of the Secret.
#[derive(Clone)]
pub struct StaticTokens {
    table: Watched<Table>,
}

impl StaticTokens {
    /// Watches Secret `namespace/name` until `shutdown`.
    pub fn watch(
        client: kube::Client,
        namespace: &str,
        name: &str,
        shutdown: CancellationToken,
    ) -> StaticTokens {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let what = format!("{namespace}/{name}");
        let make =
            move |secret: Option<&Secret>| secret.map(|s| table_of(s, &what)).unwrap_or_default();
        StaticTokens {
            table: Watched::start(api, name, make, shutdown),
        }
    }

    /// A fixed table, for tests and for callers that read tokens from elsewhere.
    pub fn fixed(tokens: impl IntoIterator<Item = (String, String)>) -> StaticTokens {
        let table = tokens
            .into_iter()
            .map(|(name, token)| (sha256(&token), name))
            .collect();
        StaticTokens {
            table: Watched::fixed(table),
        }
    }

    /// The name of `token`, when it is one of the static tokens.
    pub async fn name_of(&self, token: &str) -> Option<String> {
        self.table.current().await?.get(&sha256(token)).cloned()
    }
}

fn table_of(secret: &Secret, what: &str) -> Table {
    let mut table = Table::new();
    for (name, value) in secret.data.iter().flatten().take(MAX_TOKENS) {
        match parse_digest(&value.0) {
            Some(digest) => {
                table.insert(digest, name.clone());
            }
            // Names the entry only: its value may be a token someone stored by mistake.
            None => {
                tracing::warn!(secret = %what, token = %name, "static token entry is not sha256:<64 hex digits>; ignored")
            }
        }
    }
    table
}

fn parse_digest(value: &[u8]) -> Option<[u8; 32]> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let hex = text.strip_prefix(DIGEST_PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}

/// What to store in the Secret for `token`: `sha256:<hex>`.
pub fn digest_entry(token: &str) -> String {
    let hex: String = sha256(token).iter().map(|b| format!("{b:02x}")).collect();
    format!("{DIGEST_PREFIX}{hex}")
}

/// A new random token: 32 bytes from the OS's generator, as 64 hex digits with a `tc_` prefix (so
/// that secret scanners and people recognise it).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("tc_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_entry_parses_back() {
        let token = generate();
        let entry = digest_entry(&token);
        assert_eq!(parse_digest(entry.as_bytes()), Some(sha256(&token)));
        assert_eq!(
            parse_digest(token.as_bytes()),
            None,
            "a raw token is not a digest"
        );
        assert_eq!(parse_digest(b"sha256:abc"), None);
    }

    #[tokio::test]
    async fn only_listed_tokens_have_names() {
        let tokens = StaticTokens::fixed([("alice".to_owned(), "s3cret".to_owned())]);
        assert_eq!(tokens.name_of("s3cret").await.as_deref(), Some("alice"));
        assert_eq!(tokens.name_of("s3cret ").await, None);
    }
}
