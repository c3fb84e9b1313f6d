//! The broker: testcluster's public gRPC front door.
//!
//! A CI job (through `tcctl`, `buf curl` or any gRPC client) talks only to the broker:
//!
//! - [`TestClusterService`](testcluster_api::v1::test_cluster_service_server::TestClusterService)
//!   (`clusters`): `CreateTestCluster` checks and defaults the request with the shared rules
//!   (`validate`; the provisioner's `ListTemplates` over internal gRPC says which templates exist,
//!   `provisioner`), then writes the user ConfigMap and the `TestClusterGKE` object that owns it
//!   (`create`). `Get`, `List` (`list`, paged by count and bytes) and `WatchTestCluster` (`watch`)
//!   read from one shared informer (`cache`): a kube-rs reflector over every `TestClusterGKE`,
//!   whose changes are fanned out to the open watch streams in-process. Any number of clients cost
//!   the API server one list and one watch; each stream holds a bounded receiver, so a slow client
//!   neither buffers without limit nor holds up the others. A cache miss is checked with the API
//!   server before NOT_FOUND, and a write returns once the informer has it, so a client reads its
//!   own writes.
//! - [`LogService`](testcluster_api::v1::log_service_server::LogService) (`logs`): passed through
//!   to logview, so CI needs one endpoint.
//!
//! The broker holds no state of its own: everything lives in the Kubernetes API, so it can restart or
//! run as several replicas. Cross-cutting concerns (tracing, limits on calls and open streams,
//! metrics, authentication) are the shared tower stack of `testcluster_service::grpc::GrpcServer`;
//! Kubernetes errors become gRPC statuses through `testcluster_service::kube_errors`, as in every service.

mod audit;
mod cache;
mod clusters;
mod create;
mod list;
mod logs;
mod names;
mod provenance;
mod provisioner;
mod selector;
mod tenancy;
mod validate;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use testcluster_api::v1::log_service_server::LogServiceServer;
use testcluster_api::v1::test_cluster_service_server::TestClusterServiceServer;
use testcluster_auth::AuthArgs;
use testcluster_service::grpc::{Limits, RateLimit};
use testcluster_service::metrics::Metrics;
use testcluster_service::tls::ClientTlsArgs;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use testcluster_resources::validation::limits::{MAX_NAME_LEN, MAX_NAME_PREFIX_LEN};

/// The broker's configuration. Every flag has a `TESTCLUSTER_*` environment fallback; the defaults
/// match the ports `tcctl up` uses.
#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    /// gRPC endpoint of the provisioner's internal `ProvisionerService`.
    #[arg(
        long,
        env = "TESTCLUSTER_PROVISIONER_ENDPOINT",
        default_value = "http://127.0.0.1:50052"
    )]
    pub provisioner_endpoint: String,

    /// gRPC endpoint of logview's `LogService`, which the broker proxies.
    #[arg(
        long,
        env = "TESTCLUSTER_LOGVIEW_ENDPOINT",
        default_value = "http://127.0.0.1:50053"
    )]
    pub logview_endpoint: String,

    /// Namespace used when a request leaves `namespace` empty.
    #[arg(
        long,
        env = "TESTCLUSTER_DEFAULT_NAMESPACE",
        default_value = "test-clusters"
    )]
    pub default_namespace: String,

    /// Calls handled at once (a stream counts until it has started); more are answered
    /// RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "TESTCLUSTER_BROKER_MAX_CONCURRENT_REQUESTS",
        default_value_t = 256
    )]
    pub max_concurrent_requests: usize,

    /// Watch and log streams open at once, for their whole life; more are answered
    /// RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "TESTCLUSTER_BROKER_MAX_OPEN_STREAMS",
        default_value_t = 16_384
    )]
    pub max_open_streams: usize,

    /// Calls per second each caller (identity) may make on average; 0: no per-caller limit.
    /// Beyond it, calls are answered RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "TESTCLUSTER_BROKER_RATE_PER_CALLER",
        default_value_t = 50.0
    )]
    pub rate_per_caller: f64,

    /// Calls each caller may make at once before its rate applies.
    #[arg(long, env = "TESTCLUSTER_BROKER_RATE_BURST", default_value_t = 200.0)]
    pub rate_burst: f64,

    /// How long a call to the provisioner may take before the broker answers UNAVAILABLE.
    #[arg(long, env = "TESTCLUSTER_BROKER_PROVISIONER_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub provisioner_timeout: Duration,

    /// Recent test-cluster changes kept (shared by all watches) so that a `WatchTestCluster` from
    /// a `resource_version` replays what happened since; older versions start from the current
    /// state.
    #[arg(
        long,
        env = "TESTCLUSTER_BROKER_WATCH_WINDOW",
        default_value_t = DEFAULT_WATCH_WINDOW
    )]
    pub watch_window: usize,

    /// Who may call, and what they may do.
    #[command(flatten)]
    pub auth: AuthArgs,

    /// How the broker reaches the provisioner's and logview's internal APIs (mutual TLS).
    #[command(flatten)]
    pub internal_tls: ClientTlsArgs,
}

/// About the changes of a few hundred lifecycles: a few MiB at most, since the objects are shared
/// with the store until they are replaced.
const DEFAULT_WATCH_WINDOW: usize = 1024;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            provisioner_endpoint: "http://127.0.0.1:50052".to_owned(),
            logview_endpoint: "http://127.0.0.1:50053".to_owned(),
            default_namespace: "test-clusters".to_owned(),
            max_concurrent_requests: 256,
            max_open_streams: 16_384,
            rate_per_caller: 50.0,
            rate_burst: 200.0,
            provisioner_timeout: Duration::from_secs(5),
            watch_window: DEFAULT_WATCH_WINDOW,
            auth: AuthArgs::default(),
            internal_tls: ClientTlsArgs::default(),
        }
    }
}

/// Where the broker serves `/metrics` and `/healthz` unless told otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9101";

/// Largest request the broker decodes. A ConfigMap holds at most 1 MiB, so an init manifest cannot
/// usefully be bigger; the rest of a request is small.
const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

/// Serves the broker's gRPC API on `listener` until `shutdown` is cancelled, recording into
/// `metrics`.
///
/// At shutdown, open watches and log streams end with UNAVAILABLE (`server shutting down`), so the
/// graceful shutdown returns promptly and clients know to reconnect; health turns NOT_SERVING.
///
/// The provisioner and logview need not be up yet: their channels connect lazily, and calls that
/// need them answer UNAVAILABLE until they are.
pub async fn run(
    client: kube::Client,
    listener: TcpListener,
    settings: Settings,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let internal_tls = settings
        .internal_tls
        .config()
        .context("the internal APIs' TLS files")?;
    let provisioner = provisioner::Provisioner::connect_lazy(
        &settings.provisioner_endpoint,
        settings.provisioner_timeout,
        internal_tls.clone(),
    )
    .context("provisioner endpoint")?;
    let authenticator = settings.auth.build(&client, &shutdown)?;
    let tenancy = Arc::new(tenancy::Tenancy::new(
        settings.auth.policy(&client, &shutdown)?,
    ));
    let cache = cache::ClusterCache::start(client.clone(), settings.watch_window, shutdown.clone());
    let logs = logs::LogProxy::connect_lazy(
        &settings.logview_endpoint,
        settings.default_namespace.clone(),
        logs::Access {
            cache: cache.clone(),
            client: client.clone(),
            tenancy: tenancy.clone(),
        },
        internal_tls,
        shutdown.clone(),
    )
    .context("logview endpoint")?;
    let broker = clusters::Broker::new(
        client,
        cache,
        provisioner,
        tenancy,
        settings.default_namespace.clone(),
        shutdown.clone(),
    );

    let clusters =
        TestClusterServiceServer::new(broker).max_decoding_message_size(MAX_REQUEST_BYTES);
    let logs = LogServiceServer::new(logs);
    testcluster_service::grpc::GrpcServer::new(&metrics)
        .limits(Limits {
            max_calls: settings.max_concurrent_requests,
            max_streams: settings.max_open_streams,
            rate: (settings.rate_per_caller > 0.0).then_some(RateLimit {
                per_second: settings.rate_per_caller,
                burst: settings.rate_burst.max(1.0),
            }),
        })
        .authenticate(authenticator)
        .add_service(clusters)
        .add_service(logs)
        .serve(listener, shutdown)
        .await
}
