//! A tonic server with what every testcluster server carries: one tower stack around every
//! call, and health and reflection beside the server's own services.
//!
//! The stack, outermost first (each layer a module with one job):
//!
//! 1. tracing: tower-http's `TraceLayer` with its gRPC classifier, a span per call;
//! 2. metrics ([`observe`]): calls by method and code, latency, open streams;
//! 3. authentication ([`auth`]): a slot that a service fills (`testcluster_auth`), [`AllowAll`]
//!    when it does not;
//! 4. per-caller rate ([`rate`]), RESOURCE_EXHAUSTED beyond;
//! 5. limits ([`limits`]): calls in progress and open streams, RESOURCE_EXHAUSTED beyond.
//!
//! The stack wraps the router, not each service, so tonic still routes by each service's name
//! and every service (health and reflection too) gets the same stack.
//!
//! Shutdown is graceful: when the token is cancelled, health turns NOT_SERVING (its watchers are
//! told, then their streams end), the server stops accepting calls and waits for the open ones.
//! A server's own long-lived streams must end by themselves then, or that wait never ends: wrap
//! them in [`until_shutdown`].

pub mod auth;
pub mod body;
pub mod limits;
pub mod methods;
pub mod observe;
pub mod rate;

use std::convert::Infallible;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultMakeSpan, DefaultOnBodyChunk, DefaultOnEos, DefaultOnFailure, DefaultOnRequest,
    DefaultOnResponse, TraceLayer,
};
use tracing::Level;

pub use auth::{AllowAll, Authenticate};
pub use limits::Limits;
pub use rate::RateLimit;

use crate::metrics::{GrpcMetrics, Metrics};
use crate::tls::{ReloadingConfig, TlsFiles};

/// The message of the UNAVAILABLE status that ends streams still open at shutdown. UNAVAILABLE
/// tells a client to retry: against another replica, or this one once it is back.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// Every method a server may serve: the testcluster API, health, and reflection itself.
const DESCRIPTOR_SETS: [&[u8]; 4] = [
    testcluster_api::FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

/// Builds up a server's own services, then serves them with health and reflection, behind the
/// stack.
pub struct GrpcServer {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    metrics: GrpcMetrics,
    limits: Limits,
    authenticate: Arc<dyn Authenticate>,
    tls: Option<Arc<ReloadingConfig>>,
}

impl GrpcServer {
    /// A server recording into `metrics`, with the default [`Limits`] and no authentication.
    pub fn new(metrics: &Metrics) -> Self {
        GrpcServer {
            routes: RoutesBuilder::default(),
            names: Vec::new(),
            metrics: metrics.grpc(),
            limits: Limits::default(),
            authenticate: Arc::new(AllowAll),
            tls: None,
        }
    }

    /// Bounds calls in progress and open streams.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Fills the authentication slot: every call passes `authenticate` first.
    pub fn authenticate(mut self, authenticate: impl Authenticate) -> Self {
        self.authenticate = Arc::new(authenticate);
        self
    }

    /// Serves over TLS with `config` (mutual TLS when it names a client CA), instead of plaintext.
    pub fn tls(mut self, config: Arc<ReloadingConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Serves over TLS from `files` when given (loaded now, so that unusable files fail the
    /// start), in plaintext otherwise.
    pub fn tls_files(self, files: Option<TlsFiles>) -> Result<Self, crate::tls::TlsError> {
        Ok(match files {
            Some(files) => self.tls(ReloadingConfig::load(files)?),
            None => self,
        })
    }

    /// Adds one of this server's services; health reports it SERVING while the server runs.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.names.push(S::NAME);
        self
    }

    /// Serves on `listener` until `shutdown` is cancelled, then drains in-flight calls.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let methods = Arc::new(methods::Methods::from_descriptor_sets(&DESCRIPTOR_SETS)?);
        let stack = tower::ServiceBuilder::new()
            .layer(trace_layer())
            .layer(observe::ObserveLayer::new(
                self.metrics.clone(),
                methods.clone(),
            ))
            .layer(auth::AuthLayer::new(self.authenticate))
            .layer(rate::RateLayer::new(
                self.limits.rate,
                self.metrics.clone(),
                methods.clone(),
            ))
            .layer(limits::LimitLayer::new(self.limits, methods, self.metrics))
            .into_inner();
        let (health_reporter, health) = tonic_health::server::health_reporter();
        for name in &self.names {
            health_reporter
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        tokio::spawn(not_serving_on_shutdown(
            health_reporter,
            self.names.clone(),
            shutdown.clone(),
        ));
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let mut routes = self.routes;
        routes
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let local = listener.local_addr()?;
        tracing::info!(address = %local, services = ?self.names, limits = ?self.limits, tls = self.tls.is_some(), "gRPC server listening");
        let server = Server::builder().layer(stack).add_routes(routes.routes());
        match self.tls {
            Some(config) => {
                server
                    .serve_with_incoming_shutdown(
                        crate::tls::incoming(listener, config),
                        shutdown.cancelled_owned(),
                    )
                    .await?
            }
            None => {
                server
                    .serve_with_incoming_shutdown(
                        // TCP_NODELAY on every accepted connection: without it, Nagle's algorithm
                        // holds a response's last small write (HTTP/2 trailers, SETTINGS) until the
                        // client's delayed ACK arrives, which added ~40 ms to a good share of calls
                        // on fresh connections.
                        TcpIncoming::from(listener).with_nodelay(Some(true)),
                        shutdown.cancelled_owned(),
                    )
                    .await?
            }
        }
        Ok(())
    }
}

/// Reflection over the testcluster API, the `google.rpc` error details its statuses carry, and
/// health (the reflection builder adds its own service).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(testcluster_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(testcluster_api::ERROR_DETAILS_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

type GrpcTraceLayer = TraceLayer<
    SharedClassifier<GrpcErrorsAsFailures>,
    DefaultMakeSpan,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    DefaultOnFailure,
>;

/// tower-http's tracing with its gRPC classifier: a span per call (method and path, never
/// headers, which may carry credentials), and a warning for calls that failed on the server's
/// side. Codes that answer the caller's own request (not found, invalid, refused, cancelled) are
/// outcomes, not failures, and stay at debug level with the response.
fn trace_layer() -> GrpcTraceLayer {
    let classifier = [
        GrpcCode::Cancelled,
        GrpcCode::InvalidArgument,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unauthenticated,
    ]
    .into_iter()
    .fold(
        GrpcErrorsAsFailures::new(),
        GrpcErrorsAsFailures::with_success,
    );
    TraceLayer::new(SharedClassifier::new(classifier))
        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
        .on_failure(DefaultOnFailure::new().level(Level::WARN))
}

/// Once `shutdown` is cancelled: every service (and the server as a whole, `""`) NOT_SERVING, so
/// that load balancers and probes stop sending calls while open ones drain. The statuses are then
/// removed, which ends `Health/Watch` streams after they delivered NOT_SERVING: like every open
/// stream they would otherwise hold the graceful shutdown up.
async fn not_serving_on_shutdown(
    mut reporter: HealthReporter,
    names: Vec<&'static str>,
    shutdown: CancellationToken,
) {
    shutdown.cancelled().await;
    let all = std::iter::once("").chain(names);
    for name in all.clone() {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    tracing::info!("shutting down: health is NOT_SERVING");
    for name in all {
        reporter.clear_service_status(name).await;
    }
}

/// `stream`, ended with UNAVAILABLE ([`SHUTTING_DOWN`]) as soon as `shutdown` is cancelled.
///
/// For server streams that may stay open indefinitely (watches, followed logs): tonic's graceful
/// shutdown waits for every open call, so such a stream must end by itself when the server stops.
/// The client is told to retry rather than that the stream is complete.
pub fn until_shutdown<S, T>(
    stream: S,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static
where
    S: Stream<Item = Result<T, Status>> + Send + 'static,
    T: 'static,
{
    UntilShutdown {
        inner: Some(Box::pin(stream)),
        cancelled: Box::pin(shutdown.cancelled_owned()),
    }
}

type BoxedStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

struct UntilShutdown<T> {
    /// `None` once the stream ended, one way or the other.
    inner: Option<BoxedStream<T>>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<T> Stream for UntilShutdown<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // Shutdown first: a stream that always has something ready must still end.
        if this.cancelled.as_mut().poll(cx).is_ready() {
            this.inner = None;
            return Poll::Ready(Some(Err(Status::unavailable(SHUTTING_DOWN))));
        }
        let next = inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            this.inner = None;
        }
        next
    }
}

/// Binds `address`; port 0 picks a free port (read it back from the listener).
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_stream::StreamExt as _;
    use tonic::Code;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    const BOUND: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn streams_end_with_unavailable_on_shutdown() {
        let shutdown = CancellationToken::new();
        let finite = tokio_stream::iter([Ok::<_, Status>(1), Ok(2)]);
        let items: Vec<_> = until_shutdown(finite, shutdown.clone())
            .map(|item| item.map_err(|status| status.code()))
            .collect()
            .await;
        assert_eq!(items, [Ok(1), Ok(2)], "passes a stream through untouched");

        let endless = tokio_stream::pending::<Result<u8, Status>>();
        let mut stream = Box::pin(until_shutdown(endless, shutdown.clone()));
        let waiting = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
        assert!(waiting.is_err(), "nothing before shutdown");
        shutdown.cancel();
        let last = tokio::time::timeout(BOUND, stream.next())
            .await
            .expect("ends at shutdown");
        let status = last.expect("a final item").expect_err("an error");
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), SHUTTING_DOWN);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn health_turns_not_serving_and_its_watches_end_at_shutdown() {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = CancellationToken::new();
        let server =
            tokio::spawn(GrpcServer::new(&Metrics::new()).serve(listener, shutdown.clone()));
        let channel = tonic::transport::Endpoint::from_shared(endpoint)
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut health = HealthClient::new(channel);
        let mut watch = health
            .watch(HealthCheckRequest::default())
            .await
            .expect("watch")
            .into_inner();
        let status = |message: Option<tonic_health::pb::HealthCheckResponse>| {
            message.map(|response| response.status())
        };
        let first = watch.message().await.expect("first status");
        assert_eq!(status(first), Some(Wire::Serving));

        shutdown.cancel();
        let next = tokio::time::timeout(BOUND, watch.message())
            .await
            .expect("told at shutdown")
            .expect("status");
        assert_eq!(status(next), Some(Wire::NotServing));
        let end = tokio::time::timeout(BOUND, watch.message())
            .await
            .expect("the watch ends");
        assert!(matches!(end, Ok(None)), "{end:?}");
        tokio::time::timeout(BOUND, server)
            .await
            .expect("the server stops once its streams ended")
            .expect("task")
            .expect("served");
    }
}
