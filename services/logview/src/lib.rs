//! logview: a test job's logs, live, and how it ended.
//!
//! It serves `testcluster.v1.LogService/StreamLogs` ([`service`]). Each call is a [`session`]:
//!
//! 1. the `TestClusterGKE` is read (`NOT_FOUND` if it is missing);
//! 2. the job's pod (label `job-name=<name>-runner`, as the runner names its Job) is awaited
//!    with a watch, for as long as the run can still produce one;
//! 3. the `init` container's log (when there is one), then the `runner` container's, are
//!    streamed as they are written, each line tagged with its container ([`line`]); a container
//!    that cannot start yet (image pull error, missing ConfigMap) is waited for, as the kubelet
//!    retries it, until it starts or the run is over; a stream cut short is reopened where it
//!    stopped ([`resume`]);
//! 4. one `FinalStatus` ends the stream ([`final_status`]): the outcome the runner recorded in
//!    `status.job`, or, when the job could not run, what the pod says (image pull failure,
//!    init container failure, start error, missing ConfigMap, deadline, pod deleted).
//!
//! logview only reads; it owns nothing in the cluster. Every wait is a watch ([`watch`]), and a
//! client that goes away ends its session at once.

pub mod final_status;
pub mod line;
pub mod log_service;
pub mod resume;
pub mod session;
pub mod watch;

use std::time::Duration;

use service::metrics::Metrics;
use testcluster_api::v1::log_service_server::LogServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How logview is configured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Once the job's pod is done, how long to wait for the runner to record the outcome in the
    /// test cluster's status before reporting what the pod says.
    pub outcome_wait: Duration,
    /// Most log streams open at once; more are refused with `RESOURCE_EXHAUSTED`.
    pub max_streams: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            outcome_wait: Duration::from_secs(10),
            max_streams: 1024,
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
    let logs = log_service::LogView::new(client, settings, shutdown.clone());
    service::grpc::GrpcServer::new(&metrics)
        .add_service(LogServiceServer::new(logs))
        .serve(listener, shutdown)
        .await
}
