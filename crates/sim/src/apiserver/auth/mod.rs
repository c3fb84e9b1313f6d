//! Who a request comes from and whether it may do what it asks, as the real API server's
//! authentication and authorisation filters decide before any handler runs.
//!
//! - [`tokens`]: bearer tokens and the [`Identity`] each stands for (the admin token, tokens added
//!   with `ApiServer::add_token`, and ServiceAccount tokens minted by TokenRequest, which die with
//!   their ServiceAccount).
//! - [`rbac`]: the RBAC authoriser over Roles, ClusterRoles and their bindings, with the default
//!   roles of [`defaults`] seeded at start.
//! - [`attributes`]: a request in the authoriser's terms, and the 403 that refuses it.
//! - [`reviews`]: TokenReview and the SubjectAccessReviews, which ask the two questions above
//!   through the API.
//!
//! Requests on the plain-HTTP listener without a token (the simulator's own controllers) are
//! `system:unsecured` in `system:masters`, as on the real server's old insecure port; a token, on
//! either listener, must be valid.

pub mod attributes;
pub mod defaults;
mod identity;
pub mod rbac;
pub mod reviews;
pub mod tokens;

use http::{HeaderMap, header};

pub use identity::Identity;

use super::errors::ApiError;
use super::store::Store;
use tokens::Tokens;

/// The identity of a request from its headers, or 401.
pub fn authenticate(
    tokens: &Tokens,
    store: &Store,
    headers: &HeaderMap,
    over_tls: bool,
) -> Result<Identity, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    match bearer {
        Some(token) => tokens
            .authenticate(store, token)
            .ok_or_else(ApiError::unauthorized),
        None if over_tls => Err(ApiError::unauthorized()),
        None => Ok(Identity::unsecured()),
    }
}
