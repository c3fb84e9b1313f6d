//! The provisioner: turns `TestClusterGKE` requests into GKE clusters through Config Connector, and
//! gives other services what they need to use them.
//!
//! How the pieces fit:
//!
//! - [`controller`] watches `TestClusterGKE` objects (and the Config Connector objects they own)
//!   and drives each through Pending → Provisioning → Ready, tearing the cloud resources down once
//!   the run is over or the object is deleted. The contract with the other services is
//!   `docs/lifecycle.md`.
//! - [`template`] renders a named template (`basic`) into Config Connector objects.
//! - [`readiness`] folds those objects' conditions into the `Ready` condition; the phase follows
//!   from the facts by `testcluster_resources::lifecycle`, and the provisioner alone writes it.
//! - [`classify`] recognises the dependency failures that end a run (quota, zone stockout).
//! - [`validation`] applies the shared rules (`testcluster_resources::validation`) with the
//!   provisioner's templates, for `ValidateSpec` and for objects applied with kubectl.
//! - [`access`] gives a kubeconfig that reaches one test cluster only.
//! - [`grpc`] serves `testcluster.internal.v1.ProvisionerService` over those.
//! - [`metrics`] reads an object's phase history for the lifecycle phase durations.
//!
//! [`run`] starts the controller and the gRPC server together and stops both on shutdown.

pub mod access;
pub mod classify;
pub mod controller;
pub mod grpc;
pub mod metrics;
pub mod readiness;
pub mod template;
pub mod validation;

use std::sync::Arc;
use std::time::Duration;

use testcluster_api::internal::v1::provisioner_service_server::ProvisionerServiceServer;
use testcluster_service::metrics::Metrics;
use testcluster_service::tls::TlsFiles;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The provisioner's configuration. Nothing environment-specific is baked in: project and location
/// only fill specs that leave them unset.
#[derive(Clone, Debug)]
pub struct Settings {
    /// GCP project for specs without `project` (the seed's `cilium-ci`).
    pub default_project: String,
    /// Zone (or region) for specs without `location` (the seed's `europe-west2-b`).
    pub default_location: String,
    /// `host:port` (or URL) of the GCE metadata server that gives the provisioner its cloud
    /// identity; `None` uses google-cloud-auth's default (`GCE_METADATA_HOST`, else GCE's).
    pub metadata_host: Option<String>,
    /// Lifetime of the test-runner tokens minted for a job (and by `GetClusterAccess`).
    pub token_expiration: Duration,
    /// How long dependencies may take to become ready, from `phaseTimestamps.provisioningTime`;
    /// after that the run ends in phase Error, code `ProvisioningTimeout` (and its cloud resources
    /// are deleted).
    pub provision_timeout: Duration,
    /// TLS for the internal API; with a client CA, only clients with the suite's certificates
    /// are served (mutual TLS). `None`: plaintext (loopback only; the binary checks).
    pub tls: Option<TlsFiles>,
}

/// Default of [`Settings::provision_timeout`]: GKE creates a cluster in minutes, but a stockout can
/// take more than half an hour to surface as an error.
pub const DEFAULT_PROVISION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_project: "cilium-ci".to_owned(),
            default_location: "europe-west2-b".to_owned(),
            metadata_host: None,
            token_expiration: Duration::from_secs(2 * 60 * 60),
            provision_timeout: DEFAULT_PROVISION_TIMEOUT,
            tls: None,
        }
    }
}

/// Where the provisioner serves `/metrics` and `/healthz` unless told otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9102";

/// Runs the controller and the gRPC server (on `listener`) until `shutdown` is cancelled or one
/// of them fails; then stops the other and returns. Both record into `metrics`.
pub async fn run(
    client: kube::Client,
    listener: TcpListener,
    settings: Settings,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    testcluster_service::install_crypto();
    controller::check_crd(&client).await?;
    let settings = Arc::new(settings);
    let access = Arc::new(access::AccessIssuer::new(client.clone(), &settings)?);
    let server = testcluster_service::grpc::GrpcServer::new(&metrics)
        .tls_files(settings.tls.clone())?
        .add_service(ProvisionerServiceServer::new(grpc::ProvisionerApi::new(
            access.clone(),
        )));
    let controller_metrics = metrics.controller("provisioner");
    // A child token: one half failing stops the other without cancelling the caller's token,
    // which may be shared with other services (`tcctl up`).
    let stop = shutdown.child_token();
    let controller = {
        let stop = stop.clone();
        async move {
            controller::run(client, settings, access, controller_metrics, stop.clone()).await;
            stop.cancel();
        }
    };
    let grpc = {
        let stop = stop.clone();
        async move {
            let result = server.serve(listener, stop.clone()).await;
            stop.cancel();
            result
        }
    };
    let ((), served) = tokio::join!(controller, grpc);
    served
}
