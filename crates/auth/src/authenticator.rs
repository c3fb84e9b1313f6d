//! The authentication layer's decision: which authenticator a call's bearer token is for, and the
//! [`Identity`] it stands for, put into the request's extensions. Fills the slot of
//! `testcluster_service::grpc::GrpcServer`'s stack, so no handler ever sees an unauthenticated call.
//!
//! A token is tried as a static token first (a table lookup), then, when it is a JWT that says it is
//! from the GitHub Actions issuer, as an Actions token, and otherwise with TokenReview. Refusals are
//! UNAUTHENTICATED with a reason; neither they nor any log line quote the token.

use std::sync::Arc;

use http::header::AUTHORIZATION;
use testcluster_service::grpc::auth::{AuthFuture, Authenticate, CallerKey};
use tonic::Status;
use tonic::body::Body;

use crate::github::GitHubOidc;
use crate::identity::Identity;
use crate::static_tokens::StaticTokens;
use crate::token_review::{ReviewError, TokenReviewer};

/// The largest bearer token looked at; GitHub's are about 1 KiB, Kubernetes' a little more.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The authenticators a server accepts tokens from.
#[derive(Clone, Default)]
pub struct Authenticator {
    pub static_tokens: Option<StaticTokens>,
    pub github: Option<Arc<GitHubOidc>>,
    pub token_review: Option<Arc<TokenReviewer>>,
    /// Calls without a token go on as [`Identity::Anonymous`] (development only).
    pub allow_unauthenticated: bool,
}

impl Authenticator {
    /// Whom `token` stands for.
    pub async fn identify(&self, token: &str) -> Result<Identity, Status> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Status::unauthenticated(format!(
                "bearer token longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        if let Some(tokens) = &self.static_tokens
            && let Some(name) = tokens.name_of(token).await
        {
            return Ok(Identity::StaticToken { name });
        }
        if let Some(github) = &self.github
            && github.claims_issuer(token)
        {
            return github
                .verify(token)
                .await
                .map(Identity::GitHubActions)
                .map_err(|e| {
                    tracing::info!(reason = %e, "GitHub Actions token refused");
                    Status::unauthenticated(format!("GitHub Actions token refused: {e}"))
                });
        }
        if let Some(reviewer) = &self.token_review {
            return reviewer.review(token).await.map_err(|e| match e {
                ReviewError::Rejected => Status::unauthenticated(
                    "the bearer token is not a known static token, a GitHub Actions token from the \
                     trusted issuer, or a token the management cluster accepts",
                ),
                ReviewError::Unavailable(_) => {
                    tracing::warn!(error = %e, "TokenReview failed");
                    Status::unavailable(e.to_string())
                }
            });
        }
        Err(Status::unauthenticated(
            "the bearer token is not a known static token or a GitHub Actions token from the trusted issuer",
        ))
    }
}

/// The token of an `authorization: Bearer TOKEN` header.
fn bearer(request: &http::Request<Body>) -> Result<Option<&str>, Status> {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Status::unauthenticated(
            "the authorization header is not `Bearer TOKEN`",
        )),
    }
}

impl Authenticate for Authenticator {
    fn authenticate(&self, mut request: http::Request<Body>) -> AuthFuture {
        let this = self.clone();
        Box::pin(async move {
            let identity = match bearer(&request)? {
                Some(token) => this.identify(token).await?,
                None if this.allow_unauthenticated => Identity::Anonymous,
                None => {
                    return Err(Status::unauthenticated(
                        "no credentials: send `authorization: Bearer TOKEN` (tcctl: --token, \
                         TESTCLUSTER_TOKEN, or a GitHub Actions job with `id-token: write`)",
                    ));
                }
            };
            // The credentials end here: nothing behind this layer needs them, and a handler that
            // forwards metadata must not pass them on.
            request.headers_mut().remove(AUTHORIZATION);
            request
                .extensions_mut()
                .insert(CallerKey(identity.to_string()));
            request.extensions_mut().insert(identity);
            Ok(request)
        })
    }
}
