//! GitHub Actions OIDC tokens: a JWT signed by the issuer's keys ([`JwksCache`]), for this
//! service's audience, within its validity. Every check is jsonwebtoken's; this module says which.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::identity::GitHubClaims;
use crate::jwks::{JwksCache, JwksError};

/// GitHub's issuer for Actions tokens.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Seconds of clock difference tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

/// The algorithms accepted: GitHub signs with RS256; ES256 for issuers that use EC keys.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// Verifies tokens of one issuer for one audience.
pub struct GitHubOidc {
    issuer: String,
    audience: String,
    keys: Arc<JwksCache>,
}

/// Why a token was refused; the text is the UNAUTHENTICATED message (it never quotes the token).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token's header names no key (kid)")]
    NoKid,
    #[error("the token's algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error(transparent)]
    Keys(#[from] JwksError),
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token is from another issuer")]
    Issuer,
    #[error("the token is for another audience")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("the token is invalid: {0}")]
    Other(String),
}

#[derive(Deserialize)]
struct IssuerOnly {
    #[serde(default)]
    iss: String,
}

impl GitHubOidc {
    pub fn new(issuer: String, audience: String, keys: Arc<JwksCache>) -> GitHubOidc {
        GitHubOidc {
            issuer,
            audience,
            keys,
        }
    }

    /// Whether `token` claims to come from this issuer (unverified): which authenticator to ask.
    pub fn claims_issuer(&self, token: &str) -> bool {
        jsonwebtoken::dangerous::insecure_decode::<IssuerOnly>(token)
            .is_ok_and(|data| data.claims.iss == self.issuer)
    }

    /// The token's claims once every check passed.
    pub async fn verify(&self, token: &str) -> Result<GitHubClaims, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| OidcError::Malformed)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(OidcError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(OidcError::NoKid)?;
        let key = self.keys.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        // The key's own algorithm, when the JWKS says, must be the token's: a key is never used
        // with another algorithm than its owner meant.
        // (Both serialise to their JWA names, `ES256`.)
        if let Some(alg) = key.jwk.common.key_algorithm
            && serde_json::to_value(alg).ok() != serde_json::to_value(header.alg).ok()
        {
            return Err(OidcError::Algorithm(header.alg));
        }
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<GitHubClaims>(token, &key.key, &validation).map_err(
            |e| match e.into_kind() {
                ErrorKind::InvalidSignature => OidcError::Signature,
                ErrorKind::InvalidIssuer => OidcError::Issuer,
                ErrorKind::InvalidAudience => OidcError::Audience,
                ErrorKind::ExpiredSignature => OidcError::Expired,
                ErrorKind::ImmatureSignature => OidcError::NotYetValid,
                ErrorKind::MissingRequiredClaim(claim) => OidcError::MissingClaim(claim),
                ErrorKind::InvalidAlgorithm => OidcError::Algorithm(header.alg),
                other => OidcError::Other(format!("{other:?}")),
            },
        )?;
        Ok(data.claims)
    }
}
