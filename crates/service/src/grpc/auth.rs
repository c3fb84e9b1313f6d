//! The authentication slot of the server stack: every call passes an [`Authenticate`] before it
//! reaches the limits and the handler, so an unauthenticated caller never takes a slot.
//!
//! Until authentication is built, servers use [`AllowAll`]. An implementation reads the call's
//! credentials (its headers), answers UNAUTHENTICATED or PERMISSION_DENIED, or lets the call on
//! with what it learned (the caller's identity) in the request's extensions for handlers to read.
//! It must never log the credentials.
//!
//! Health and reflection are served to everyone ([`OPEN_SERVICES`]): probes and load balancers
//! carry no credentials, and `buf curl --list-methods` shows only the API's shape.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// Who a call is from, as a key for per-caller bounds (the rate limit): put into the request's
/// extensions by an [`Authenticate`] that knows. It names the caller; it is never a credential.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallerKey(pub String);

/// Services every caller may use, authenticated or not: health and reflection.
pub const OPEN_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Whether the call to `path` (`/package.Service/Method`) is to one of [`OPEN_SERVICES`].
fn is_open(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|path| path.split_once('/'))
        .is_some_and(|(service, _)| OPEN_SERVICES.contains(&service))
}

/// What [`Authenticate::authenticate`] returns.
pub type AuthFuture = Pin<Box<dyn Future<Output = Result<http::Request<Body>, Status>> + Send>>;

/// Decides whether a call may go on.
pub trait Authenticate: Send + Sync + 'static {
    /// `Ok` with the request (extensions added as needed) to let the call on; `Err` with the
    /// status to answer instead.
    fn authenticate(&self, request: http::Request<Body>) -> AuthFuture;
}

/// Lets every call on: the stack's authentication until callers are authenticated.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Authenticate for AllowAll {
    fn authenticate(&self, request: http::Request<Body>) -> AuthFuture {
        Box::pin(std::future::ready(Ok(request)))
    }
}

/// Puts an [`Authenticate`] in front of the services it wraps.
#[derive(Clone)]
pub struct AuthLayer {
    authenticate: Arc<dyn Authenticate>,
}

impl AuthLayer {
    pub fn new(authenticate: Arc<dyn Authenticate>) -> AuthLayer {
        AuthLayer { authenticate }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            authenticate: self.authenticate.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    authenticate: Arc<dyn Authenticate>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ResBody> Service<http::Request<Body>> for Auth<S>
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The inner service was made ready for this call: take it, leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_open(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let authenticated = self.authenticate.authenticate(request);
        Box::pin(async move {
            match authenticated.await {
                Ok(request) => inner.call(request).await,
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}
