//! Per-caller rate limits: each caller (as the authentication layer named it, [`CallerKey`]) has a
//! token bucket of `burst` calls refilled at `per_second`; a call finding it empty is answered
//! RESOURCE_EXHAUSTED at once, so one busy client cannot take every slot of [`super::limits`] from
//! the others. Calls without a caller key (no authentication) share one bucket.
//!
//! The buckets are bounded ([`MAX_CALLERS`]): when full, those that have refilled (idle callers,
//! whom forgetting costs nothing) are dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use parking_lot::Mutex;
use tower::{Layer, Service};

use super::auth::CallerKey;
use super::limits::refuse;
use super::methods::Methods;
use crate::metrics::GrpcMetrics;

/// Callers remembered at once.
pub const MAX_CALLERS: usize = 100_000;
/// The message of the RESOURCE_EXHAUSTED answer to a caller over its rate.
pub const TOO_FAST: &str = "too many calls from this caller; slow down and retry";

/// A caller's allowance: `burst` calls at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Applies a [`RateLimit`] per caller.
#[derive(Clone)]
pub struct RateLayer {
    limit: Option<RateLimit>,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    metrics: GrpcMetrics,
    methods: Arc<Methods>,
}

impl RateLayer {
    /// `None`: no rate limit.
    pub fn new(limit: Option<RateLimit>, metrics: GrpcMetrics, methods: Arc<Methods>) -> Self {
        RateLayer {
            limit,
            buckets: Arc::new(Mutex::new(HashMap::new())),
            metrics,
            methods,
        }
    }

    /// Takes one call from `caller`'s bucket; false when it is empty.
    fn admit(&self, limit: RateLimit, caller: &str) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_CALLERS && !buckets.contains_key(caller) {
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * limit.per_second
                    < limit.burst
            });
        }
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: limit.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * limit.per_second;
        bucket.tokens = (bucket.tokens + refill).min(limit.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl<S> Layer<S> for RateLayer {
    type Service = Rate<S>;

    fn layer(&self, inner: S) -> Rate<S> {
        Rate {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RateLayer`] makes.
#[derive(Clone)]
pub struct Rate<S> {
    inner: S,
    layer: RateLayer,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Rate<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if let Some(limit) = self.layer.limit {
            let caller = request
                .extensions()
                .get::<CallerKey>()
                .map_or("", |key| key.0.as_str());
            if !self.layer.admit(limit, caller) {
                let method = self.layer.methods.get(request.uri().path());
                self.layer.metrics.limited(&method.labels, "rate");
                tracing::info!(caller, "call refused: over its rate limit");
                return refuse(TOO_FAST);
            }
        }
        Box::pin(self.inner.call(request))
    }
}
