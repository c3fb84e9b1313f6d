//! Cross-cutting concerns as tower layers, so handlers hold only their own logic.
//!
//! tonic routes a service by its [`NamedService::NAME`], which a tower layer's output type does not
//! carry; [`Layered`] wraps a layered service and keeps the name of the service inside.

use std::marker::PhantomData;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tonic::server::NamedService;
use tower::{Layer, Service};
use tracing::Instrument as _;

/// A service with layers applied that tonic still routes under `N`'s name.
pub struct Layered<S, N> {
    inner: S,
    // fn() -> N: the marker is Send, Sync and Clone whatever N is.
    name: PhantomData<fn() -> N>,
}

impl<S, N> Layered<S, N> {
    /// Applies `layer` to `service`, keeping `service`'s gRPC name.
    pub fn new<L: Layer<N, Service = S>>(service: N, layer: &L) -> Self {
        Layered {
            inner: layer.layer(service),
            name: PhantomData,
        }
    }
}

impl<S: Clone, N> Clone for Layered<S, N> {
    fn clone(&self) -> Self {
        Layered {
            inner: self.inner.clone(),
            name: PhantomData,
        }
    }
}

impl<S, N: NamedService> NamedService for Layered<S, N> {
    const NAME: &'static str = N::NAME;
}

impl<S, N, R> Service<R> for Layered<S, N>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.inner.call(request)
    }
}

/// One span per gRPC call, named by its method, and one event when the call is answered with the
/// gRPC status (when it is known at that point: errors are, streams end later) and latency.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcTraceLayer;

impl<S> Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;

    fn layer(&self, inner: S) -> GrpcTrace<S> {
        GrpcTrace { inner }
    }
}

/// The service [`GrpcTraceLayer`] produces.
#[derive(Clone, Debug)]
pub struct GrpcTrace<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for GrpcTrace<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = tracing::info_span!("grpc", method = %request.uri().path());
        let started = Instant::now();
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let result = response.await;
                let elapsed_ms = started.elapsed().as_millis() as u64;
                match &result {
                    // A status in the headers is a trailers-only answer: an error, or an empty
                    // stream. (Statuses of streams that started come later, in trailers.)
                    Ok(response) => match tonic::Status::from_header_map(response.headers()) {
                        Some(status) if status.code() != tonic::Code::Ok => {
                            tracing::info!(
                                code = ?status.code(),
                                message = status.message(),
                                elapsed_ms,
                                "call failed"
                            );
                        }
                        _ => tracing::debug!(elapsed_ms, "call answered"),
                    },
                    Err(error) => tracing::warn!(%error, elapsed_ms, "call errored"),
                }
                result
            }
            .instrument(span),
        )
    }
}
