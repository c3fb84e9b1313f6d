//! The runner: runs each ready test cluster's job and records how it ended.
//!
//! It is a kube-runtime controller on `TestClusterGKE` ([`controller`]). When the provisioner
//! has marked a test cluster Ready (and written the kubeconfig Secret `<name>-kubeconfig` that
//! reaches that one cluster) and its spec has a job, the runner
//!
//! 1. creates the Job `<name>-runner`, owned by the test cluster, with that Secret mounted
//!    ([`job`]), and records it in `status.job`,
//! 2. follows the Job and its pod (both watched; reconciles read them from the watches' stores)
//!    and, when the Job is Complete or Failed, records the runner container's exit code, a reason
//!    and a message (`testcluster_resources::outcome`, the words logview reports too) and the
//!    `Complete` or `Failed` condition ([`status`]),
//! 3. reports each run's lifecycle to GitHub as commit statuses, when the object carries the seed's
//!    GitHub label and annotations ([`github`]; never in the way of the run).
//!
//! Before the job starts (and for a cluster without a job, once it is Ready), it installs the
//! metrics stack and the user's init manifest into the test cluster ([`install`]), and while a
//! test cluster is live it offers that cluster's Prometheus to a central one ([`federation`]:
//! HTTP service discovery and a `/federate` proxy through the test cluster's API server).
//!
//! The runner never writes the phase: the provisioner derives Running, Succeeded and Failed from
//! what the runner recorded. The names it uses ([`names`]) and the status fields it owns are the
//! contract in `docs/lifecycle.md`. The runner keeps no state of its own: a restarted runner picks
//! up every run where the API server says it is.
//!
//! It serves no gRPC; besides federation, its binary serves `/metrics` (reconcile counts, durations and errors by
//! [`Error::kind`]) and the `/healthz` liveness probe over HTTP.

pub mod cluster_access;
pub mod controller;
pub mod error;
pub mod federation;
pub mod github;
pub mod install;
pub mod job;
pub mod names;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, reflector};
use kube::runtime::{Controller, WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource, ResourceExt as _};
use testcluster_resources::TestClusterGKE;
use testcluster_service::metrics::Metrics;
use tokio_util::sync::CancellationToken;

pub use error::Error;

/// How the runner is configured.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Job deadlines (`activeDeadlineSeconds`: the spec's, else the default, at most the
    /// maximum, and never past the cluster's `expiresAt`).
    pub lifetimes: testcluster_resources::lifetime::Lifetimes,
    /// Only this namespace's test clusters; all namespaces when `None`.
    pub namespace: Option<String>,
    /// How long a container of the job may fail to start (image pull errors, a missing
    /// ConfigMap) before the run is failed. The kubelet retries such errors forever, and a run
    /// waiting out `job_deadline` on a mistyped image helps nobody.
    pub start_timeout: Duration,
    /// Commit statuses on GitHub (off without a token Secret).
    pub github: github::GitHubSettings,
    /// The directory of the metrics stack's manifests, installed into every test cluster when it
    /// is Ready; none when `None`.
    pub metrics_stack: Option<PathBuf>,
    /// How federation is served.
    pub federation: federation::FederationSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lifetimes: Default::default(),
            namespace: None,
            start_timeout: Duration::from_secs(5 * 60),
            github: github::GitHubSettings::default(),
            metrics_stack: None,
            federation: federation::FederationSettings::default(),
        }
    }
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Where the runner serves `/metrics` and `/healthz` unless told otherwise.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9104";

/// Runs the controller until `shutdown` is cancelled, recording into `metrics`, and serves
/// federation on `federation` when given.
///
/// Fails at once if `TestClusterGKE` cannot be listed (the CRD is not installed, or RBAC denies
/// it), or the metrics stack's manifests cannot be read, rather than retrying in silence.
pub async fn run(
    client: Client,
    federation: Option<tokio::net::TcpListener>,
    settings: Settings,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stack = match &settings.metrics_stack {
        Some(dir) => Some(
            install::manifests::Manifests::load_dir(dir)
                .with_context(|| format!("the metrics stack ({})", dir.display()))?,
        ),
        None => None,
    };
    let namespace = settings.namespace.clone();
    let resources: Api<TestClusterGKE> = scoped(&client, namespace.as_deref());
    if let Err(error) = resources.list(&ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list TestClusterGKE objects ({error}); is the CRD installed? \
             kubectl apply -f deploy/k8s/crds/"
        );
    }
    let reporter = Reporter {
        controller: names::FIELD_MANAGER.to_owned(),
        instance: std::env::var("HOSTNAME").ok(),
    };
    let recorder = Recorder::new(client.clone(), reporter);

    // Only objects the runner made carry the label; watching just those keeps memory flat. The
    // Job and pod watches fill the stores reconciles read from, and trigger them.
    let ours = watcher::Config::default().labels(names::LABEL_TEST_CLUSTER);
    let (job_store, job_writer) = reflector::store();
    let jobs = reflector(
        job_writer,
        watcher(scoped::<Job>(&client, namespace.as_deref()), ours.clone()),
    )
    .modify(|job| job.managed_fields_mut().clear())
    .touched_objects();
    let (pod_store, pod_writer) = reflector::store();
    let pods = reflector(
        pod_writer,
        watcher(scoped::<Pod>(&client, namespace.as_deref()), ours.clone()),
    )
    .modify(|pod| pod.managed_fields_mut().clear())
    .touched_objects();
    let github = github::Reporter::start(
        &client,
        settings.github.clone(),
        recorder.clone(),
        &metrics,
        shutdown.clone(),
    )?;
    let clients = Arc::new(cluster_access::ClusterClients::new(client.clone()));
    let installer = install::Installer::new(stack, client.clone(), clients.clone());
    let federation_settings = settings.federation.clone();
    let ctx = Arc::new(controller::Context::new(
        client.clone(),
        settings,
        recorder,
        job_store,
        pod_store,
        github,
        installer,
    ));
    tracing::info!(namespace = ?namespace, "runner started");
    let controller = Controller::new(resources, watcher::Config::default());
    // Served beside the controller, within this future (not a spawned task), so that the
    // listener goes when the runner does, however it stops.
    let store = controller.store();
    let stop_serving = shutdown.clone();
    let serving = async move {
        let Some(listener) = federation else { return };
        let served =
            federation::serve(listener, federation_settings, store, clients, stop_serving).await;
        if let Err(error) = served {
            tracing::error!(%error, "federation server failed");
        }
    };
    let controlling = controller
        .owns_stream(jobs)
        // Pods are owned by the Job, not by the test cluster: map them back through the label
        // their template gave them.
        .watches_stream(pods, |pod: Pod| {
            let namespace = pod.metadata.namespace.clone()?;
            let name = pod
                .metadata
                .labels
                .as_ref()?
                .get(names::LABEL_TEST_CLUSTER)?
                .clone();
            Some(ObjectRef::<TestClusterGKE>::new(&name).within(&namespace))
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            metrics
                .controller("runner")
                .instrument(controller::reconcile, Error::kind, None),
            controller::error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile error");
            }
        });
    futures::join!(controlling, serving);
    tracing::info!("runner stopped");
    Ok(())
}
