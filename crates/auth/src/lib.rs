//! Who is calling, and what they may do.
//!
//! Authentication is a layer of the one server stack (`testcluster_service::grpc`): an
//! [`Authenticator`] reads the call's bearer token, finds the [`Identity`] it stands for and puts
//! it into the request's extensions, or answers UNAUTHENTICATED. It knows three kinds of token:
//!
//! - [`github`]: GitHub Actions OIDC tokens, verified against the issuer's keys ([`jwks`]: cached,
//!   rotated, an unknown key fetched once, rate-limited); their claims (repository, ref, workflow,
//!   actor, commit) become the identity;
//! - [`token_review`]: Kubernetes tokens, ServiceAccounts' in particular, asked of the management
//!   cluster's TokenReview;
//! - [`static_tokens`]: named tokens whose digests are kept in a Secret, for humans and tests.
//!
//! [`args::AuthArgs`] are the flags that choose them. [`client::Bearer`] is the other side: it adds
//! a token to a client's calls.

pub mod args;
pub mod authenticator;
pub mod client;
mod digest;
pub mod github;
pub mod identity;
pub mod jwks;
pub mod policy;
pub mod static_tokens;
pub mod token_review;
mod watched;

pub use args::AuthArgs;
pub use authenticator::Authenticator;
pub use identity::{GitHubClaims, Identity};
