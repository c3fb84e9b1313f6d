//! The whole suite on this machine: the simulator (the management cluster, its cloud and workloads)
//! and the four services, in-process, talking to each other over loopback gRPC and to the simulator
//! over HTTPS with a normal kubeconfig — the same paths as in a real installation.
//!
//! Used by `tcctl up`, `tcctl run --local` and the end-to-end tests. Each service runs as its own
//! task with its own [`CancellationToken`] and Kubernetes client, so a test can stop and restart one
//! mid-lifecycle ([`Suite::restart`]) as a crash and a new pod would.
//!
//! Each service also has its own metrics registry, served with `/healthz` on its own HTTP port
//! ([`Suite::metrics_url`]) as its binary would serve it. The registry and its port outlive a
//! restart of the service, so counts carry on across restarts.

mod certs;
mod setup;

pub use certs::SuiteCerts;

// For a suite whose services run as their own processes (the lifecycle benchmark): the same
// management-cluster setup and readiness check as the in-process one.
pub use setup::{install, wait_serving};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use testcluster_service::metrics::Metrics;
use testcluster_sim::{SimConfig, Simulator};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Namespace the suite creates for test clusters (the services' default).
pub const NAMESPACE: &str = "test-clusters";
/// How long a stopped service may take to drain before its task is aborted.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start the suite.
#[derive(Clone, Debug)]
pub struct SuiteConfig {
    /// Where the broker serves; port 0 picks a free one (tests).
    pub broker_listen: SocketAddr,
    /// Where to write the management cluster's kubeconfig; `None`: a file in a temporary directory
    /// removed with the suite.
    pub kubeconfig: Option<PathBuf>,
    /// Where each service serves `/metrics` and `/healthz`; a service not named here gets a free
    /// port on the loopback interface (tests). `tcctl up` uses [`Component::default_metrics_listen`].
    pub metrics_listen: BTreeMap<Component, SocketAddr>,
    /// The simulator's configuration (delays, faults).
    pub sim: SimConfig,
    /// TTLs, holds and job deadlines, the same for broker, provisioner and runner.
    pub lifetimes: testcluster_resources::lifetime::Lifetimes,
    /// Where the runner sends commit statuses; none are sent without.
    pub github: Option<GitHubConfig>,
    /// How long finished runs are kept as records (the provisioner's `--record-retention`).
    pub record_retention: std::time::Duration,
    /// The runner's configuration (the metrics stack it installs, how it federates).
    pub runner: testcluster_runner::Settings,
    /// Where the runner serves federation (service discovery and `/federate`); port 0 picks a
    /// free one (tests).
    pub federation_listen: SocketAddr,
}

/// A GitHub API for the suite's commit statuses (a test server, say) and the token for it, which
/// the suite stores in the Secret the runner reads ([`GITHUB_TOKEN_SECRET`] in
/// [`SYSTEM_NAMESPACE`]).
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    pub api_url: String,
    pub token: String,
}

/// The suite's own namespace: the runner's GitHub token Secret lives there, away from the jobs.
pub const SYSTEM_NAMESPACE: &str = "testcluster-system";
/// The Secret with the GitHub token.
pub const GITHUB_TOKEN_SECRET: &str = "github-token";

impl Default for SuiteConfig {
    fn default() -> Self {
        let mut sim = SimConfig::default();
        jobs_find_kubectl(&mut sim);
        // What the runner installs into a test cluster runs there, and answers its service proxy.
        sim.test_cluster_workloads = true;
        SuiteConfig {
            broker_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            kubeconfig: None,
            metrics_listen: BTreeMap::new(),
            sim,
            lifetimes: Default::default(),
            github: None,
            record_retention: testcluster_provisioner::DEFAULT_RECORD_RETENTION,
            runner: testcluster_runner::Settings::default(),
            federation_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Jobs run as processes on this machine with its `PATH`. When `$KUBECTL` names a kubectl
/// elsewhere (CI unpacks Debian's beside the build), its directory goes first, so that a job's
/// `kubectl` is that one.
fn jobs_find_kubectl(sim: &mut SimConfig) {
    let Some(kubectl) = std::env::var_os("KUBECTL").map(PathBuf::from) else {
        return;
    };
    if let Some(dir) = kubectl.parent().filter(|dir| dir.is_absolute())
        && kubectl.file_name().is_some_and(|name| name == "kubectl")
    {
        let path = &mut sim.workloads.path_env;
        *path = format!("{}:{path}", dir.display());
    }
}

/// One of the suite's services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Provisioner,
    Runner,
    Logview,
    Broker,
}

impl Component {
    /// In start order: each after what it calls.
    pub const ALL: [Component; 4] = [
        Component::Provisioner,
        Component::Runner,
        Component::Logview,
        Component::Broker,
    ];

    /// Where the service's binary serves its metrics by default, as in its `--metrics-listen`.
    pub fn default_metrics_listen(self) -> &'static str {
        match self {
            Component::Broker => testcluster_broker::DEFAULT_METRICS_LISTEN,
            Component::Provisioner => testcluster_provisioner::DEFAULT_METRICS_LISTEN,
            Component::Logview => testcluster_logview::DEFAULT_METRICS_LISTEN,
            Component::Runner => testcluster_runner::DEFAULT_METRICS_LISTEN,
        }
    }
}

/// A running service: its stop token and its task.
struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The running suite. Dropping it stops everything; [`Suite::shutdown`] does so gracefully.
pub struct Suite {
    // Field order is drop order: the services stop before the simulator they talk to.
    running: BTreeMap<Component, Running>,
    addresses: BTreeMap<Component, SocketAddr>,
    metrics: BTreeMap<Component, (Metrics, SocketAddr)>,
    runner_settings: testcluster_runner::Settings,
    /// Stops the metrics servers when the suite goes.
    _metrics_stop: DropGuard,
    kubeconfig: PathBuf,
    /// The static token the suite made for its user (see [`Suite::token`]).
    token: String,
    /// The suite's CA and certificates (see [`Suite::certs`]).
    certs: SuiteCerts,
    lifetimes: testcluster_resources::lifetime::Lifetimes,
    github: Option<GitHubConfig>,
    record_retention: Duration,
    sim: Simulator,
    _dir: tempfile::TempDir,
}

impl Suite {
    /// Starts the simulator, installs the CRD and the namespace, then the services, and returns
    /// once the broker answers health checks.
    pub async fn start(config: SuiteConfig) -> anyhow::Result<Suite> {
        testcluster_service::install_crypto();
        let dir = tempfile::Builder::new()
            .prefix("testcluster-suite-")
            .tempdir()
            .context("creating a temporary directory")?;
        let sim = Simulator::start(config.sim)
            .await
            .context("starting the simulator")?;
        let kubeconfig = config
            .kubeconfig
            .unwrap_or_else(|| dir.path().join("kubeconfig"));
        setup::write_kubeconfig(&sim, &kubeconfig)?;
        let client = testcluster_service::kube_client(Some(&kubeconfig)).await?;
        setup::install(&client).await?;
        let token = testcluster_auth::static_tokens::generate();
        setup::install_auth(&client, &token).await?;
        let certs = SuiteCerts::create(dir.path()).context("the suite's certificates")?;
        if let Some(github) = &config.github {
            setup::store_github_token(&client, &github.token).await?;
        }

        let mut addresses = BTreeMap::new();
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        for (component, address) in [
            (Component::Provisioner, loopback),
            (Component::Runner, config.federation_listen),
            (Component::Logview, loopback),
            (Component::Broker, config.broker_listen),
        ] {
            // Bound once here so every service knows the others' ports before any starts; a
            // restarted service binds the same address again.
            let listener = testcluster_service::grpc::bind(address)
                .await
                .with_context(|| format!("binding {component:?}"))?;
            addresses.insert(component, listener.local_addr()?);
        }
        let metrics_stop = CancellationToken::new();
        let mut metrics = BTreeMap::new();
        for component in Component::ALL {
            let address = config
                .metrics_listen
                .get(&component)
                .copied()
                .unwrap_or(loopback);
            let listener = testcluster_service::grpc::bind(address)
                .await
                .with_context(|| format!("binding {component:?}'s metrics"))?;
            let address = listener.local_addr()?;
            let registry = Metrics::new();
            tokio::spawn(testcluster_service::cli::serve_metrics(
                listener,
                registry.clone(),
                metrics_stop.clone(),
            ));
            metrics.insert(component, (registry, address));
        }
        let mut suite = Suite {
            running: BTreeMap::new(),
            addresses,
            metrics,
            runner_settings: config.runner,
            _metrics_stop: metrics_stop.drop_guard(),
            kubeconfig,
            token,
            certs,
            lifetimes: config.lifetimes,
            github: config.github,
            record_retention: config.record_retention,
            sim,
            _dir: dir,
        };
        for component in Component::ALL {
            suite.start_component(component).await?;
        }
        setup::wait_serving(&suite.broker_endpoint(), Duration::from_secs(10)).await?;
        Ok(suite)
    }

    /// Where the runs' log pages are: logview's HTTP port, `/runs` (a page is
    /// `<base>/<namespace>/<name>`).
    pub fn logs_base_url(&self) -> String {
        match self.metrics.get(&Component::Logview) {
            Some((_, address)) => format!("http://{address}/runs"),
            None => testcluster_runner::github::GitHubSettings::default().logs_base_url,
        }
    }

    /// The runner's GitHub reporting: to the configured API with the stored token, linking to
    /// logview's pages on its HTTP port.
    fn github_settings(&self) -> testcluster_runner::github::GitHubSettings {
        let logs_base_url = self.logs_base_url();
        match &self.github {
            Some(github) => testcluster_runner::github::GitHubSettings {
                api_url: github.api_url.clone(),
                token_secret: Some(GITHUB_TOKEN_SECRET.to_owned()),
                secret_namespace: SYSTEM_NAMESPACE.to_owned(),
                logs_base_url,
                ..Default::default()
            },
            None => testcluster_runner::github::GitHubSettings {
                logs_base_url,
                ..Default::default()
            },
        }
    }

    /// The broker's gRPC endpoint, such as `http://127.0.0.1:50051`.
    pub fn broker_endpoint(&self) -> String {
        self.endpoint(Component::Broker).unwrap_or_default()
    }

    /// The static token (named `tcctl-up`) the broker accepts from the suite's user: the one tenant
    /// of the suite's policy, which may do anything. Secret: never log it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A service's gRPC endpoint: `http://` for the broker, `https://` for the internal APIs
    /// (mutual TLS: see [`Suite::certs`]); for the runner, which serves no gRPC, its plain-HTTP
    /// federation server.
    pub fn endpoint(&self, component: Component) -> Option<String> {
        let scheme = match component {
            Component::Broker | Component::Runner => "http",
            _ => "https",
        };
        self.addresses
            .get(&component)
            .map(|address| format!("{scheme}://{address}"))
    }

    /// The suite's CA and the certificates its services present to each other.
    pub fn certs(&self) -> &SuiteCerts {
        &self.certs
    }

    /// The runner's Prometheus service discovery (`http_sd_configs`), such as
    /// `http://127.0.0.1:9105/federation/targets`.
    pub fn federation_targets_url(&self) -> String {
        format!(
            "{}{}",
            self.endpoint_or_empty(Component::Runner),
            testcluster_runner::federation::TARGETS_PATH
        )
    }

    /// Where a service serves its Prometheus metrics, such as `http://127.0.0.1:9101/metrics`.
    pub fn metrics_url(&self, component: Component) -> String {
        self.metrics
            .get(&component)
            .map(|(_, address)| format!("http://{address}/metrics"))
            .unwrap_or_default()
    }

    /// A service's metrics registry.
    fn metrics(&self, component: Component) -> Metrics {
        self.metrics
            .get(&component)
            .map(|(metrics, _)| metrics.clone())
            .unwrap_or_default()
    }

    /// The management cluster's kubeconfig (mode 0600: it holds the admin token).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The simulator: inventory, fault switches, the API server.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// A Kubernetes client for the management cluster, through the kubeconfig.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        testcluster_service::kube_client(Some(&self.kubeconfig)).await
    }

    /// Stops one service: cancels its token and waits for it to drain (aborting it after a grace
    /// period), as a pod's termination would.
    pub async fn stop(&mut self, component: Component) {
        if let Some(running) = self.running.remove(&component) {
            running.stop.cancel();
            let mut task = running.task;
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                tracing::warn!(?component, "did not stop in time; aborting");
                task.abort();
            }
        }
    }

    /// Kills one service without letting it drain, as SIGKILL or a node loss would: whatever it
    /// was doing is dropped at its current await point.
    pub async fn kill(&mut self, component: Component) {
        if let Some(running) = self.running.remove(&component) {
            running.task.abort();
            let _ = running.task.await;
            // Tasks the service spawned outlive an aborted parent; in a killed process they die
            // with it, so end them too.
            running.stop.cancel();
        }
    }

    /// Kills one service and starts it again, on the same address, with a fresh client.
    pub async fn kill_and_restart(&mut self, component: Component) -> anyhow::Result<()> {
        self.kill(component).await;
        self.start_component(component).await
    }

    /// Stops every service (the broker first), then the simulator.
    pub async fn shutdown(mut self) {
        for component in Component::ALL.into_iter().rev() {
            self.stop(component).await;
        }
        self.sim.api().shutdown();
    }

    /// Starts `component` if it is not running.
    pub async fn start_component(&mut self, component: Component) -> anyhow::Result<()> {
        if self.running.contains_key(&component) {
            return Ok(());
        }
        let client = testcluster_service::kube_client(Some(&self.kubeconfig)).await?;
        let listener = match self.addresses.get(&component) {
            Some(address) => Some(
                testcluster_service::grpc::bind(*address)
                    .await
                    .with_context(|| format!("binding {component:?}"))?,
            ),
            None => None,
        };
        let stop = CancellationToken::new();
        let service = setup::service_future(self, component, client, listener, stop.clone())?;
        let task = tokio::spawn(async move {
            match service.await {
                Ok(()) => tracing::debug!(?component, "stopped"),
                Err(error) => tracing::error!(?component, error = format!("{error:#}"), "failed"),
            }
        });
        self.running.insert(component, Running { stop, task });
        Ok(())
    }

    fn endpoint_or_empty(&self, component: Component) -> String {
        self.endpoint(component).unwrap_or_default()
    }
}
