//! logview: a test job's logs, live, and how it ended.
//!
//! It serves `testcluster.v1.LogService/StreamLogs` ([`log_service`]). At start it runs two
//! shared [`informers`], one reflector over every `TestClusterGKE` and one over the job pods:
//! any number of streams cost the API server one watch of each. Each call is a [`session`]:
//!
//! 1. once the informers have listed everything, the `TestClusterGKE` is read from them
//!    (`NOT_FOUND` if it is missing);
//! 2. the job's pod (label `job-name=<name>-runner`, as the runner names its Job) is awaited
//!    on the informers' change signal, for as long as the run can still produce one;
//! 3. the `init` container's log (when there is one), then the `runner` container's, are
//!    streamed as they are written, each line tagged with its container ([`line`]); a container
//!    that cannot start yet (image pull error, missing ConfigMap) is waited for, as the kubelet
//!    retries it, until it starts or the run is over. All the sessions following one container
//!    share one `pods/log` stream and a bounded buffer of its recent lines ([`shared_log`]); a
//!    session that falls behind the buffer reads on alone, from where it stopped. A stream cut
//!    short is reopened where it stopped ([`container_log`], [`resume`]);
//! 4. one `FinalStatus` ends the stream ([`final_status`]): the outcome the runner recorded in
//!    `status.job` (awaited on the informer once the pod is done), or, when the job could not
//!    run, what the pod says, in the same words (`testcluster_resources::outcome`).
//!
//! logview only reads; it owns nothing in the cluster. Nothing polls, and a client that goes
//! away ends its session at once.

pub mod container_log;
pub mod final_status;
pub mod informers;
pub mod line;
pub mod log_service;
pub mod resume;
pub mod session;
pub mod shared_log;

use testcluster_api::v1::log_service_server::LogServiceServer;
use testcluster_service::metrics::Metrics;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How logview is configured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Most log streams open at once; more are refused with `RESOURCE_EXHAUSTED`.
    pub max_streams: usize,
    /// Most bytes of recent lines each shared container log keeps for its followers.
    pub log_buffer_bytes: usize,
    /// TLS for LogService; with a client CA, only clients with the suite's certificates (the
    /// broker) are served. `None`: plaintext (loopback only; the binary checks).
    pub tls: Option<testcluster_service::tls::TlsFiles>,
}

/// The default of [`Settings::log_buffer_bytes`]: 1 MiB.
pub const DEFAULT_LOG_BUFFER_BYTES: usize = 1 << 20;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_streams: 1024,
            log_buffer_bytes: DEFAULT_LOG_BUFFER_BYTES,
            tls: None,
        }
    }
}

/// Where logview serves `/metrics` and `/healthz` unless told otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9103";

/// Serves LogService (with health and reflection) on `listener` until `shutdown` is cancelled,
/// recording into `metrics`.
pub async fn run(
    client: kube::Client,
    listener: TcpListener,
    settings: Settings,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tls = settings.tls.clone();
    let logs = log_service::LogView::new(client, settings, shutdown.clone());
    testcluster_service::grpc::GrpcServer::new(&metrics)
        .tls_files(tls)?
        .add_service(LogServiceServer::new(logs))
        .serve(listener, shutdown)
        .await
}
