//! Workloads: the Job, ReplicaSet and Deployment controllers, Services (endpoints and a proxy), and
//! a kubelet that runs containers as local processes.
//!
//! [`Workloads::start`] runs them all against one API server, through an ordinary kube-rs client:
//!
//! - The **Job controller** ([`job_controller`]) creates a Job's pods (`generateName: <job>-`, the
//!   `job-name` / `controller-uid` labels, a controlling owner reference) and keeps the Job's status
//!   as the real one does: `active`, `ready`, `succeeded`, `failed`, `terminating`, `startTime`,
//!   `completionTime`, and the conditions `SuccessCriteriaMet` then `Complete` (`CompletionsReached`),
//!   or `FailureTarget` then `Failed` (`BackoffLimitExceeded`, `DeadlineExceeded`).
//! - The **Deployment controller** ([`deployment_controller`]) keeps one ReplicaSet per pod template
//!   (`<deployment>-<pod-template-hash>`, revision annotations), rolls out with RollingUpdate
//!   (`maxSurge` / `maxUnavailable`) or Recreate, and writes the status `kubectl rollout status`
//!   reads. The **ReplicaSet controller** keeps `spec.replicas` pods. `kubectl scale` goes through
//!   the API server's `scale` subresource.
//! - **Services** ([`services`]): an endpoints controller (Endpoints, EndpointSlices) and a proxy
//!   listening on each Service's loopback cluster IP, so a pod reaches another by the Service's name.
//! - The **kubelet** ([`kubelet`]) binds every unscheduled pod to one simulated node, gives it a
//!   loopback address of its own (`status.podIP`), and runs each container's `command` + `args` as a
//!   local process (exec'd directly, no shell). An image mapped in [`WorkloadConfig::image_binaries`]
//!   runs its executable as the entrypoint; any other image is never run (without a `command`, `args`
//!   are the whole argv) and only decides whether the "pull" fails ([`ImagePullRules`]). stdout and
//!   stderr become the pod log ([`PodLogs`]). Probes (`httpGet`, `tcpSocket`, `grpc`, `exec`) drive
//!   `ready` / `started` and restarts; `resources.limits.memory` is enforced (`OOMKilled`, exit code
//!   137); [`Workloads::evict_for_memory_pressure`] evicts as node pressure would (`Evicted`). Exit
//!   codes, container states, restarts, phases and conditions are the kubelet's, and so are the
//!   failure states: `ErrImagePull` / `ImagePullBackOff`, `StartError` (exit code 128) for a missing
//!   executable, `CreateContainerConfigError` for a missing ConfigMap or Secret, `CrashLoopBackOff`,
//!   and an init container failure blocking the main containers in `PodInitializing`.
//!
//! # Where a container's files are
//!
//! A local process cannot see a `mountPath` such as `/credentials`, so each pod gets a directory
//! (`<pods root>/<namespace>_<pod>_<uid>`, exported to the process as `SIM_POD_DIR` and `HOME`):
//!
//! - Every volume (`emptyDir`, `configMap`, `secret`, `downwardAPI`, `projected` ConfigMap/Secret
//!   sources; other kinds are empty directories) is written to `<pod dir>/.volumes/<volume>`, with
//!   `items` (key → path) and `defaultMode` / `mode` honoured.
//! - Each `volumeMount` appears at `<pod dir>/<mountPath>` (a symlink to the volume, or to its
//!   `subPath`).
//! - In every env value, `command` and `args` entry, each occurrence of a mount path as a whole path
//!   (at the start or after a space, `=`, `:`, a quote or a bracket) is replaced by where it is on this
//!   machine: `--kubeconfig=/credentials/config` and `sh -c 'cat /credentials/token'` both work.
//!   `$(VAR)` references are expanded first, as Kubernetes does. Service names are rewritten the
//!   same way (see [`services`]).
//! - The working directory is the container's `workingDir` rewritten the same way (or placed inside
//!   the pod directory), else the pod directory.
//! - The environment holds only what the pod defines, the Service variables, plus `PATH`
//!   ([`WorkloadConfig::path_env`]), `HOSTNAME` (the pod name), `HOME` and `SIM_POD_DIR`; nothing of
//!   the simulator's own environment.
//!
//! # Containment
//!
//! Pods are processes of the user, beside everything else of theirs, so: the pods root and every
//! directory in it are mode 0700 and files 0600 unless the pod sets a mode; a process is pointed only
//! at its own pod's directory; each container is its own process group and gets SIGKILL when the
//! simulator dies (`PR_SET_PDEATHSIG`); and each simulator's pods root carries its owner's pid, so
//! that the next simulator removes what a killed one left behind ([`pods_root`]).
//!
//! Deleting a pod marks it Terminating (`deletionTimestamp`, `deletionGracePeriodSeconds`); the
//! kubelet stops its processes (SIGTERM to the container's process group, SIGKILL after the grace
//! period, capped by [`WorkloadConfig::max_grace_period`]), then deletes the object with grace
//! period 0 and drops its logs and its directory.

pub mod deployment_controller;
mod events;
pub mod job_controller;
pub mod kubelet;
mod logs;
mod owned_objects;
mod pods_root;
mod replicaset_controller;
pub mod services;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use kubelet::KubeletCommand;
pub use kubelet::{ImageBinaries, ImagePullRules};
pub use logs::{DEFAULT_RUN_LIMIT_BYTES, LogError, LogQuery, LogWriter, PodLogs, rfc3339_nano};
use pods_root::PodsRoot;
use services::ServiceTable;

/// Exponential back-off: `initial`, doubling per step, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before attempt `step` (0-based).
    pub fn delay(&self, step: u32) -> Duration {
        let factor = 2u32.saturating_pow(step.min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// How the Job controller and the kubelet behave.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// The simulated node's name; pods without a `nodeName` are bound to it.
    pub node_name: String,
    /// Whether the kubelet creates that Node object. A test cluster's Nodes are its node pools'
    /// (GKE's names and count), so its kubelet adds none of its own.
    pub register_node: bool,
    /// Which images fail to pull.
    pub image_pull_rules: ImagePullRules,
    /// Images that run a local executable as their entrypoint.
    pub image_binaries: ImageBinaries,
    /// Back-off for image pulls and container restarts. The kubelet's is 10s doubling to 5m; the
    /// default here is 1s doubling to 30s, so that tests see the same states sooner.
    pub backoff: Backoff,
    /// How soon the kubelet looks at a pod again after an error (a missing ConfigMap, a failed pull
    /// shown as `ErrImagePull` before it turns into `ImagePullBackOff`).
    pub sync_interval: Duration,
    /// Upper bound on `terminationGracePeriodSeconds` (the default 30s would slow every deletion).
    pub max_grace_period: Duration,
    /// Where this simulator's pods root (`testcluster-pods-*`, removed on drop) is created; the
    /// system's temporary directory when `None`. Roots there of simulators that are gone are removed.
    pub pods_parent: Option<PathBuf>,
    /// `PATH` for container processes.
    pub path_env: String,
    /// How containers reach the API server: `KUBERNETES_SERVICE_HOST` / `_PORT` and the projected
    /// ServiceAccount token's `ca.crt`. Without it, pods get neither.
    pub api_server: Option<ApiServerAccess>,
}

/// The API server as pods reach it (HTTPS).
#[derive(Clone, Debug)]
pub struct ApiServerAccess {
    pub address: SocketAddr,
    pub ca_pem: String,
}

impl ApiServerAccess {
    /// How pods reach `api`: its HTTPS address and CA.
    pub fn of(api: &crate::apiserver::ApiServer) -> Option<ApiServerAccess> {
        let address = url::Url::parse(&api.https_url())
            .ok()?
            .socket_addrs(|| None)
            .ok()?
            .into_iter()
            .next()?;
        Some(ApiServerAccess {
            address,
            ca_pem: api.ca_pem().to_owned(),
        })
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            node_name: "sim-node".to_owned(),
            register_node: true,
            image_pull_rules: ImagePullRules::default(),
            image_binaries: ImageBinaries::default(),
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            sync_interval: Duration::from_secs(1),
            max_grace_period: Duration::from_secs(2),
            pods_parent: None,
            path_env: std::env::var("PATH").unwrap_or_else(|_| {
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()
            }),
            api_server: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadsError {
    #[error("creating the pods directory: {0}")]
    PodsRoot(#[source] std::io::Error),
}

/// The running Job controller and kubelet. Dropping it (or [`Workloads::shutdown`]) stops both and
/// every container process.
pub struct Workloads {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    kubelet: mpsc::Sender<KubeletCommand>,
    services: ServiceTable,
    /// Removed when dropped (after the kubelet was told to stop its processes).
    pods_root: PodsRoot,
}

impl Workloads {
    /// Starts the Job controller and the kubelet. `client` should bypass fault injection and request
    /// counting (the API server's internal client); `logs` must be that server's [`PodLogs`].
    pub fn start(
        client: Client,
        logs: PodLogs,
        config: WorkloadConfig,
    ) -> Result<Workloads, WorkloadsError> {
        let parent = config
            .pods_parent
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let pods_root = PodsRoot::create(&parent)?;
        let shutdown = CancellationToken::new();
        let (commands, command_queue) = mpsc::channel(16);
        let services = ServiceTable::new(config.api_server.as_ref().map(|a| a.address));
        let kubelet = kubelet::Kubelet::new(
            client.clone(),
            logs,
            config,
            kubelet::NodeSetup {
                pods_root: pods_root.path().to_owned(),
                services: services.clone(),
                commands: command_queue,
            },
            shutdown.clone(),
        );
        let tasks = vec![
            tokio::spawn(job_controller::run(client.clone(), shutdown.clone())),
            tokio::spawn(replicaset_controller::run(client.clone(), shutdown.clone())),
            tokio::spawn(deployment_controller::run(client.clone(), shutdown.clone())),
            tokio::spawn(services::run(client, services.clone(), shutdown.clone())),
            tokio::spawn(kubelet.run()),
        ];
        Ok(Workloads {
            shutdown,
            tasks,
            kubelet: commands,
            services,
            pods_root,
        })
    }

    /// The ready endpoints of the Services, for the API server's service proxy
    /// ([`crate::apiserver::ApiServer::set_service_resolver`]).
    pub fn service_resolver(&self) -> crate::apiserver::ServiceResolver {
        let services = self.services.clone();
        std::sync::Arc::new(move |namespace: &str, name: &str, port: Option<&str>| {
            services.ready_endpoint(namespace, name, port)
        })
    }

    /// Where this simulator's pod directories are.
    pub fn pods_root(&self) -> &std::path::Path {
        self.pods_root.path()
    }

    /// Evicts a pod as the kubelet does under memory pressure: its containers are killed and it
    /// ends `Failed`, reason `Evicted`. False when no running pod of that name is on the node.
    pub async fn evict_for_memory_pressure(&self, namespace: &str, name: &str) -> bool {
        let (reply, answer) = oneshot::channel();
        let command = KubeletCommand::Evict {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            reply,
        };
        if self.kubelet.send(command).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Stops the controller and the kubelet; container processes get SIGTERM, then SIGKILL.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops everything and waits until the controller and the kubelet have ended.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Workloads {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        };
        let delays: Vec<u64> = (0..7).map(|s| backoff.delay(s).as_secs()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.delay(u32::MAX).as_secs(), 300);
    }
}
