//! The metrics layer: every call counted by method and status code, timed from its arrival to its
//! status, and every open response stream counted while it is open.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::Code;
use tower::{Layer, Service};

use super::body::{EndOfCall, OnEnd, grpc_code};
use super::methods::{Method, Methods};
use crate::metrics::GrpcMetrics;
use crate::metrics::OpenStream;

/// Records [`GrpcMetrics`] for every call of the services it wraps.
#[derive(Clone)]
pub struct ObserveLayer {
    metrics: GrpcMetrics,
    methods: Arc<Methods>,
}

impl ObserveLayer {
    pub fn new(metrics: GrpcMetrics, methods: Arc<Methods>) -> ObserveLayer {
        // Every stream method shows 0 open streams from the start: a series that appears only
        // once a stream opened would read as "unknown" rather than "none" until then.
        for method in methods.iter().filter(|method| method.streams_responses) {
            metrics.declare_streams(&method.labels);
        }
        ObserveLayer { metrics, methods }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ObserveLayer`] makes.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

/// One call being observed. Recorded once: with the status when the call ends, or as CANCELLED
/// when it is dropped before (the client went away).
pub struct CallRecord {
    metrics: GrpcMetrics,
    method: Arc<Method>,
    started: Instant,
    /// Held while a response stream is open: the open-streams gauge counts it.
    _open: Option<OpenStream>,
    recorded: bool,
}

impl CallRecord {
    fn record(&mut self, code: Code) {
        if !std::mem::replace(&mut self.recorded, true) {
            self.metrics
                .handled(&self.method.labels, code, self.started.elapsed());
        }
    }
}

impl OnEnd for CallRecord {
    fn on_end(mut self, code: Option<Code>) {
        // A body that ends without a status is a broken answer.
        self.record(code.unwrap_or(Code::Unknown));
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

/// A response body that completes its [`CallRecord`] when it ends.
pub type ObservedBody<B> = EndOfCall<B, CallRecord>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Observe<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = self.layer.methods.get(request.uri().path());
        let metrics = &self.layer.metrics;
        let open = method
            .streams_responses
            .then(|| metrics.stream_opened(&method.labels));
        let mut record = CallRecord {
            metrics: metrics.clone(),
            method,
            started: Instant::now(),
            _open: open,
            recorded: false,
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // A trailers-only answer (an error, or a refusal by an inner layer) has its status
            // in the headers: the call is over now.
            if let Some(code) = grpc_code(response.headers()) {
                record.record(code);
                record._open = None;
            }
            Ok(response.map(|body| EndOfCall::new(body, record)))
        })
    }
}
