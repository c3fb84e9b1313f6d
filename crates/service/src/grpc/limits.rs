//! Request limits: how many calls a server handles at once, and how many response streams it
//! keeps open.
//!
//! Two bounds, because calls and streams cost different things. A call's slot is held while its
//! handler works (until the response starts); a stream's slot is held for the stream's whole
//! life, until its body ends or is dropped, so that open watches and log streams are bounded
//! (a limit that freed its slot when the response headers left would let them grow without end).
//! When either is full the call is answered RESOURCE_EXHAUSTED at once: queueing would hold the
//! caller (and its HTTP/2 connection) for as long as some other client keeps a stream open.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tower::{Layer, Service};

use super::body::EndOfCall;
use super::methods::Methods;
use super::rate::RateLimit;
use crate::metrics::GrpcMetrics;

/// The bounds of one server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Calls whose handler is working at once.
    pub max_calls: usize,
    /// Response streams open at once (server and bidirectional streaming calls).
    pub max_streams: usize,
    /// Calls per caller over time ([`super::rate`]); `None`: unbounded.
    pub rate: Option<RateLimit>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_calls: 256,
            max_streams: 16_384,
            rate: None,
        }
    }
}

/// The message of the RESOURCE_EXHAUSTED answer when the calls are at their limit.
pub const TOO_MANY_CALLS: &str = "too many calls in progress; retry later";
/// The message of the RESOURCE_EXHAUSTED answer when the streams are at their limit.
pub const TOO_MANY_STREAMS: &str = "too many open streams; retry later";

/// Applies [`Limits`] to every call of the services it wraps.
#[derive(Clone)]
pub struct LimitLayer {
    calls: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    methods: Arc<Methods>,
    metrics: GrpcMetrics,
}

impl LimitLayer {
    pub fn new(limits: Limits, methods: Arc<Methods>, metrics: GrpcMetrics) -> LimitLayer {
        LimitLayer {
            calls: Arc::new(Semaphore::new(limits.max_calls)),
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            methods,
            metrics,
        }
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Limit<S> {
        Limit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`LimitLayer`] makes.
#[derive(Clone)]
pub struct Limit<S> {
    inner: S,
    layer: LimitLayer,
}

/// A response body holding its stream slot, if it has one, until it ends.
pub type LimitedBody<B> = EndOfCall<B, Option<OwnedSemaphorePermit>>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Limit<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<LimitedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = self.layer.methods.get(request.uri().path());
        let Ok(call) = self.layer.calls.clone().try_acquire_owned() else {
            self.layer.metrics.limited(&method.labels, "calls");
            return refuse(TOO_MANY_CALLS);
        };
        let stream = if method.streams_responses {
            match self.layer.streams.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.layer.metrics.limited(&method.labels, "streams");
                    return refuse(TOO_MANY_STREAMS);
                }
            }
        } else {
            None
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            // The handler is done: the call's slot goes back; a stream keeps its own slot in
            // its body.
            drop(call);
            response.map(|response| response.map(|body| EndOfCall::new(body, stream)))
        })
    }
}

/// RESOURCE_EXHAUSTED with `message`, at once.
pub(super) fn refuse<B: Default + Send + 'static, E: Send + 'static>(
    message: &'static str,
) -> BoxFuture<Result<http::Response<B>, E>> {
    let response = Status::resource_exhausted(message).into_http();
    Box::pin(std::future::ready(Ok(response)))
}
