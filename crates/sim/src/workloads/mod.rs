//! Workloads: a Job controller and a kubelet that runs containers as local processes.
//!
//! [`Workloads::start`] runs both against one API server, through an ordinary kube-rs client:
//!
//! - The **Job controller** ([`job_controller`]) creates a Job's pods (`generateName: <job>-`, the
//!   `job-name` / `controller-uid` labels, a controlling owner reference) and keeps the Job's status
//!   as the real one does: `active`, `ready`, `succeeded`, `failed`, `terminating`, `startTime`,
//!   `completionTime`, and the conditions `SuccessCriteriaMet` then `Complete` (`CompletionsReached`),
//!   or `FailureTarget` then `Failed` (`BackoffLimitExceeded`, `DeadlineExceeded`).
//! - The **kubelet** ([`kubelet`]) binds every unscheduled pod to one simulated node and runs each
//!   container's `command` + `args` as a local process (exec'd directly, no shell; without a
//!   `command`, `args` are the whole argv). The image is never run: it only decides whether the "pull"
//!   fails ([`ImagePullRules`]). stdout and stderr become the pod log ([`PodLogs`]); exit codes,
//!   container states, restarts, phases and conditions are the kubelet's, and so are the failure
//!   states: `ErrImagePull` / `ImagePullBackOff`, `StartError` (exit code 128) for a missing
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
//!   `$(VAR)` references are expanded first, as Kubernetes does.
//! - The working directory is the container's `workingDir` rewritten the same way (or placed inside
//!   the pod directory), else the pod directory.
//! - The environment holds only what the pod defines, plus `PATH` ([`WorkloadConfig::path_env`]),
//!   `HOSTNAME` (the pod name), `HOME` and `SIM_POD_DIR`; nothing of the simulator's own environment.
//!
//! Deleting a pod stops its processes (SIGTERM to the container's process group, SIGKILL after
//! `terminationGracePeriodSeconds`, capped by [`WorkloadConfig::max_grace_period`]) and drops its logs
//! and its directory.

mod events;
pub mod job_controller;
pub mod kubelet;
mod logs;

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use kubelet::ImagePullRules;
pub use logs::{DEFAULT_RUN_LIMIT_BYTES, LogError, LogQuery, LogWriter, PodLogs, rfc3339_nano};

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
    /// Which images fail to pull.
    pub image_pull_rules: ImagePullRules,
    /// Back-off for image pulls and container restarts. The kubelet's is 10s doubling to 5m; the
    /// default here is 1s doubling to 30s, so that tests see the same states sooner.
    pub backoff: Backoff,
    /// How soon the kubelet looks at a pod again after an error (a missing ConfigMap, a failed pull
    /// shown as `ErrImagePull` before it turns into `ImagePullBackOff`).
    pub sync_interval: Duration,
    /// Upper bound on `terminationGracePeriodSeconds` (the default 30s would slow every deletion).
    pub max_grace_period: Duration,
    /// Where pod directories are created; a temporary directory (removed on drop) when `None`.
    pub pods_root: Option<PathBuf>,
    /// `PATH` for container processes.
    pub path_env: String,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            node_name: "sim-node".to_owned(),
            image_pull_rules: ImagePullRules::default(),
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
            },
            sync_interval: Duration::from_secs(1),
            max_grace_period: Duration::from_secs(2),
            pods_root: None,
            path_env: std::env::var("PATH").unwrap_or_else(|_| {
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()
            }),
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
    /// Keeps a temporary pods root alive; removed after the processes stopped.
    _pods_root: Option<tempfile::TempDir>,
}

impl Workloads {
    /// Starts the Job controller and the kubelet. `client` should bypass fault injection and request
    /// counting (the API server's internal client); `logs` must be that server's [`PodLogs`].
    pub fn start(
        client: Client,
        logs: PodLogs,
        config: WorkloadConfig,
    ) -> Result<Workloads, WorkloadsError> {
        let (pods_root, temp) = match &config.pods_root {
            Some(root) => {
                std::fs::create_dir_all(root).map_err(WorkloadsError::PodsRoot)?;
                (root.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("testcluster-pods-")
                    .tempdir()
                    .map_err(WorkloadsError::PodsRoot)?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let shutdown = CancellationToken::new();
        let kubelet =
            kubelet::Kubelet::new(client.clone(), logs, config, pods_root, shutdown.clone());
        let tasks = vec![
            tokio::spawn(job_controller::run(client, shutdown.clone())),
            tokio::spawn(kubelet.run()),
        ];
        Ok(Workloads {
            shutdown,
            tasks,
            _pods_root: temp,
        })
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
