//! One pod's life on the node: volumes, init containers one after another, then the main containers
//! side by side, each through image pull, configuration, start and exit, probed while it runs, and
//! restarted as the pod's `restartPolicy` says with the kubelet's back-off; every change published to
//! `pods/status`. When the pod is deleted its containers get their grace period, and then the kubelet
//! removes the pod object; when it is evicted it ends `Failed` / `Evicted`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod, Probe};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::KubeletContext;
use super::env::{self, ConfigSource, Environment};
use super::images::ImageRef;
use super::memory;
use super::probes::{ProbeKind, ProbeTarget, Timing, Verdict};
use super::process::Launch;
use super::service_account;
use super::status::{ContainerRecord, PodRuntime, RestartPolicy, RunState, Terminated};
use super::stop::{PodStop, StopCause};
use super::volumes::{self, MountTable, VolumeError};
use crate::workloads::events::EventType;

/// Default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// Exit code containerd reports for a container whose process could not be started.
const START_ERROR_EXIT_CODE: i32 = 128;
/// A container that ran this long without failing starts its back-off afresh (as the kubelet).
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Init,
    Main,
}

/// How one attempt to run a container ended.
enum Attempt {
    Exited(i32),
    /// The pod is being deleted (or the kubelet stops).
    Stopped,
}

pub(super) struct PodWorker {
    ctx: Arc<KubeletContext>,
    pod: Pod,
    namespace: String,
    name: String,
    dir: PathBuf,
    runtime: Mutex<PodRuntime>,
    /// Serialises status writes, each computed from the newest state, so none overtakes a later one.
    publish_lock: tokio::sync::Mutex<()>,
    stop: Arc<PodStop>,
    /// The pod gets a ServiceAccount token (its `kube-api-access` volume was added).
    token: bool,
    /// `terminationGracePeriodSeconds`, capped: for a container the kubelet kills on its own (a
    /// failed liveness probe).
    grace: Duration,
}

impl PodWorker {
    pub(super) fn new(
        ctx: Arc<KubeletContext>,
        pod: Pod,
        dir: PathBuf,
        stop: Arc<PodStop>,
        pod_ip: Ipv4Addr,
        token: bool,
    ) -> PodWorker {
        let mut pod = pod;
        if token {
            service_account::add_volume(&mut pod);
        }
        // The downward API (`status.podIP`) reads the address from the pod the worker holds.
        pod.status.get_or_insert_with(Default::default).pod_ip = Some(pod_ip.to_string());
        let spec = pod.spec.clone().unwrap_or_default();
        let init = spec.init_containers.unwrap_or_default();
        // Main containers wait for the init containers (PodInitializing) or for their own creation.
        let main_waiting = if init.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let runtime = PodRuntime {
            restart_policy: RestartPolicy::parse(spec.restart_policy.as_deref()),
            init: init.iter().map(|c| record(c, "PodInitializing")).collect(),
            main: spec
                .containers
                .iter()
                .map(|c| record(c, main_waiting))
                .collect(),
            start_time: Timestamp::now(),
            terminating: false,
            conditions: Vec::new(),
            pod_ip,
            evicted: None,
        };
        let grace_seconds = spec
            .termination_grace_period_seconds
            .unwrap_or(DEFAULT_GRACE_SECONDS)
            .max(0);
        let grace =
            Duration::from_secs(grace_seconds.unsigned_abs()).min(ctx.config.max_grace_period);
        PodWorker {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            ctx,
            pod,
            dir,
            token,
            runtime: Mutex::new(runtime),
            publish_lock: tokio::sync::Mutex::new(()),
            stop,
            grace,
        }
    }

    pub(super) async fn run(self: Arc<Self>) {
        // So that a log request before a container starts says what it waits for.
        let waiting: Vec<(String, String)> = {
            let runtime = self.runtime.lock();
            runtime
                .init
                .iter()
                .chain(runtime.main.iter())
                .filter_map(|c| match &c.state {
                    RunState::Waiting { reason, .. } => Some((c.name.clone(), reason.clone())),
                    _ => None,
                })
                .collect()
        };
        for (container, reason) in waiting {
            self.ctx
                .logs
                .set_waiting_reason(&self.namespace, &self.name, &container, &reason);
        }
        self.publish().await;
        if !self.prepare_volumes().await {
            return self.finish().await;
        }
        let init_count = self.runtime.lock().init.len();
        for index in 0..init_count {
            match self.clone().run_until_done(Kind::Init, index).await {
                Attempt::Stopped => return self.finish().await,
                Attempt::Exited(0) => {}
                // Only reached with restartPolicy Never: the pod has failed; the main containers
                // never leave PodInitializing.
                Attempt::Exited(_) => return self.publish().await,
            }
        }
        let main_count = self.runtime.lock().main.len();
        let runs = (0..main_count).map(|index| self.clone().run_until_done(Kind::Main, index));
        futures::future::join_all(runs).await;
        self.finish().await;
    }

    /// The last status: when the pod is being deleted, its phase becomes terminal and the object is
    /// removed; when it is evicted, it is `Failed` with reason `Evicted`.
    async fn finish(&self) {
        match self.stop.cause() {
            Some(StopCause::Deleted) => {
                self.runtime.lock().terminating = true;
                self.publish().await;
                self.remove_object().await;
            }
            Some(StopCause::Evicted { message }) => {
                self.runtime.lock().evicted = Some(message);
                self.publish().await;
            }
            Some(StopCause::Shutdown) | None => self.publish().await,
        }
    }

    /// The kubelet's last word on a deleted pod: its containers are gone, so the object may go
    /// (a delete with grace period 0, for this very pod).
    async fn remove_object(&self) {
        remove_pod_object(&self.ctx, &self.pod).await;
    }

    async fn prepare_volumes(&self) -> bool {
        if let Err(e) = volumes::private_dir(&self.dir).await {
            tracing::warn!(pod = %self.name, error = %e, "creating the pod directory failed");
        }
        let source = ConfigSource::new(self.ctx.client.clone(), &self.namespace);
        loop {
            let materialised = match volumes::materialise(&self.pod, &source, &self.dir).await {
                Ok(()) => self.project_token().await,
                Err(e) => Err(e),
            };
            match materialised {
                Ok(()) => return true,
                Err(e @ VolumeError::SetUp { .. }) => {
                    self.ctx
                        .events
                        .publish(&self.pod, EventType::Warning, "FailedMount", &e.to_string())
                        .await;
                }
                Err(e) => tracing::warn!(pod = %self.name, error = %e, "preparing volumes failed"),
            }
            if !self.pause(self.ctx.config.sync_interval).await {
                return false;
            }
        }
    }

    /// Writes the ServiceAccount token files, when the pod gets them.
    async fn project_token(&self) -> Result<(), VolumeError> {
        let Some(access) = self.ctx.config.api_server.as_ref().filter(|_| self.token) else {
            return Ok(());
        };
        let volume = volumes::volume_dir(&self.dir, service_account::VOLUME);
        service_account::project(&self.ctx.client, &self.pod, &self.dir, &volume, access)
            .await
            .map_err(|reason| VolumeError::SetUp {
                volume: service_account::VOLUME.to_owned(),
                reason,
            })
    }

    /// Runs a container until it needs no more restarts; returns its last exit code.
    async fn run_until_done(self: Arc<Self>, kind: Kind, index: usize) -> Attempt {
        let policy = self.runtime.lock().restart_policy;
        let mut restarts: u32 = 0;
        loop {
            let started = tokio::time::Instant::now();
            let code = match self.clone().run_once(kind, index).await {
                Attempt::Stopped => return Attempt::Stopped,
                Attempt::Exited(code) => code,
            };
            let restart = match kind {
                // Init containers run until they succeed, unless the pod never restarts anything.
                Kind::Init => code != 0 && policy != RestartPolicy::Never,
                Kind::Main => policy.restarts(code),
            };
            if !restart {
                return Attempt::Exited(code);
            }
            if started.elapsed() >= BACKOFF_RESET_AFTER {
                restarts = 0;
            }
            // The first restart is immediate; then 1x, 2x, 4x ... the initial back-off, up to the cap.
            let delay = match restarts {
                0 => Duration::ZERO,
                n => self.ctx.config.backoff.delay(n - 1),
            };
            restarts = restarts.saturating_add(1);
            let container_name = self.container(kind, index).name;
            self.ctx
                .logs
                .mark_restarting(&self.namespace, &self.name, &container_name);
            let message = (!delay.is_zero()).then(|| {
                format!(
                    "back-off {} restarting failed container={container_name} pod={}",
                    go_duration(delay),
                    self.pod_description()
                )
            });
            self.update(kind, index, |c| {
                if let RunState::Terminated(t) = &c.state {
                    c.last_terminated = Some(t.clone());
                }
                c.restart_count += 1;
                if let Some(message) = message {
                    c.state = RunState::waiting("CrashLoopBackOff", Some(message));
                }
            })
            .await;
            if !delay.is_zero() {
                let note = format!(
                    "Back-off restarting failed container {container_name} in pod {}",
                    self.pod_description()
                );
                self.container_event(kind, index, EventType::Warning, "BackOff", &note)
                    .await;
                if !self.pause(delay).await {
                    return Attempt::Stopped;
                }
            }
        }
    }

    /// One run: pull, configure, start, probe, wait for the exit.
    async fn run_once(self: Arc<Self>, kind: Kind, index: usize) -> Attempt {
        let container = self.container(kind, index);
        if !self.pull_image(kind, index, &container).await {
            return Attempt::Stopped;
        }
        let Some((launch, mounts)) = self.configure(kind, index, &container).await else {
            return Attempt::Stopped;
        };
        let container_id = format!(
            "containerd://{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let log = self
            .ctx
            .logs
            .start_run(&self.namespace, &self.name, &container.name);
        self.container_event(
            kind,
            index,
            EventType::Normal,
            "Created",
            &format!("Created container: {}", container.name),
        )
        .await;
        let process = match launch.start(Some(log)) {
            Ok(process) => process,
            Err(message) => {
                let error = message.clone();
                self.update(kind, index, |c| {
                    c.state = RunState::Terminated(Terminated {
                        exit_code: START_ERROR_EXIT_CODE,
                        reason: "StartError".to_owned(),
                        message: Some(message),
                        started_at: None,
                        finished_at: Timestamp::now(),
                        container_id,
                    });
                })
                .await;
                self.container_failed(kind, index, &error).await;
                return Attempt::Exited(START_ERROR_EXIT_CODE);
            }
        };
        let started_at = Timestamp::now();
        let id = container_id.clone();
        let probed = kind == Kind::Main;
        let has_startup = probed && container.startup_probe.is_some();
        let has_readiness = probed && container.readiness_probe.is_some();
        self.update(kind, index, |c| {
            c.state = RunState::Running {
                started_at,
                container_id: id,
            };
            c.started = !has_startup;
            c.ready = !has_startup && !has_readiness;
        })
        .await;
        self.container_event(
            kind,
            index,
            EventType::Normal,
            "Started",
            &format!("Started container {}", container.name),
        )
        .await;
        // This run ends when the pod stops, or earlier when a probe says the container must restart.
        let run_stop = self.stop.token().child_token();
        let prober = probed.then(|| {
            let target = ProbeTarget {
                pod_ip: self.runtime.lock().pod_ip,
                ports: container.ports.clone().unwrap_or_default(),
                exec: launch,
                mounts,
                services: self.ctx.services.names_for(&self.namespace),
            };
            tokio::spawn(
                self.clone()
                    .probe(index, container.clone(), target, run_stop.clone()),
            )
        });
        let exit = process
            .wait(&run_stop, || {
                if self.stop.is_requested() {
                    self.stop.grace()
                } else {
                    self.grace
                }
            })
            .await;
        if let Some(prober) = prober {
            prober.abort();
        }
        let code = exit.code;
        if self.stop.is_requested() {
            self.container_event(
                kind,
                index,
                EventType::Normal,
                "Killing",
                &format!("Stopping container {}", container.name),
            )
            .await;
        }
        self.update(kind, index, |c| {
            let mut terminated =
                Terminated::exited(code, started_at, Timestamp::now(), container_id);
            if exit.oom_killed {
                terminated.reason = "OOMKilled".to_owned();
            }
            c.state = RunState::Terminated(terminated);
            c.started = false;
            c.ready = false;
        })
        .await;
        if self.stop.is_requested() {
            Attempt::Stopped
        } else {
            Attempt::Exited(code)
        }
    }

    /// Ensures the image is "present", going through ErrImagePull and ImagePullBackOff while it cannot
    /// be pulled. False when the pod stops first.
    async fn pull_image(&self, kind: Kind, index: usize, container: &Container) -> bool {
        let image = container.image.clone().unwrap_or_default();
        let reference = ImageRef::parse(&image);
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).to_owned());
        // An image mapped to a local executable is always there.
        let mapped = self.ctx.config.image_binaries.binary_for(&image).is_some();
        let present = mapped || self.ctx.images_present.lock().contains(&reference.full());
        if present && policy != "Always" {
            let note = format!(
                "Container image \"{image}\" already present on machine and can be accessed by the pod"
            );
            self.container_event(kind, index, EventType::Normal, "Pulled", &note)
                .await;
            self.set_image_id(kind, index, &reference);
            return true;
        }
        if !present && policy == "Never" {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            self.set_waiting(kind, index, "ErrImageNeverPull", Some(message.clone()))
                .await;
            self.container_event(
                kind,
                index,
                EventType::Warning,
                "ErrImageNeverPull",
                &message,
            )
            .await;
            // Nothing will change by waiting; the pod stays Pending until deleted.
            self.stop.requested().await;
            return false;
        }
        let mut failures: u32 = 0;
        loop {
            let named = &reference.with_tag;
            self.container_event(
                kind,
                index,
                EventType::Normal,
                "Pulling",
                &format!("Pulling image \"{named}\""),
            )
            .await;
            if mapped || self.ctx.config.image_pull_rules.can_pull(&image) {
                self.ctx.images_present.lock().insert(reference.full());
                let note = format!(
                    "Successfully pulled image \"{named}\" in 0s (0s including waiting). \
                     Image size: 0 bytes."
                );
                self.container_event(kind, index, EventType::Normal, "Pulled", &note)
                    .await;
                self.set_image_id(kind, index, &reference);
                return true;
            }
            let error = reference.not_found_error();
            self.container_event(
                kind,
                index,
                EventType::Warning,
                "Failed",
                &format!("Failed to pull image \"{named}\": {error}"),
            )
            .await;
            self.set_waiting(kind, index, "ErrImagePull", Some(error.clone()))
                .await;
            self.container_failed(kind, index, "ErrImagePull").await;
            let backoff = self.ctx.config.backoff.delay(failures);
            failures = failures.saturating_add(1);
            let until = tokio::time::Instant::now() + backoff;
            // The kubelet shows ErrImagePull until its next sync of the pod, then ImagePullBackOff
            // until the back-off ends.
            if !self.pause(self.ctx.config.sync_interval.min(backoff)).await {
                return false;
            }
            let message = format!("Back-off pulling image \"{named}\": ErrImagePull: {error}");
            self.set_waiting(kind, index, "ImagePullBackOff", Some(message))
                .await;
            self.container_event(
                kind,
                index,
                EventType::Normal,
                "BackOff",
                &format!("Back-off pulling image \"{named}\""),
            )
            .await;
            self.container_failed(kind, index, "ImagePullBackOff").await;
            let remaining = until.saturating_duration_since(tokio::time::Instant::now());
            if !self.pause(remaining).await {
                return false;
            }
        }
    }

    /// The process to start: environment, argv and working directory, with paths rewritten onto the
    /// materialised volumes. Waits in CreateContainerConfigError while a ConfigMap or Secret is
    /// missing. `None` when the pod stops first.
    async fn configure(
        &self,
        kind: Kind,
        index: usize,
        container: &Container,
    ) -> Option<(Launch, MountTable)> {
        let source = ConfigSource::new(self.ctx.client.clone(), &self.namespace);
        loop {
            let mounts = match MountTable::link(container, &self.dir).await {
                Ok(mounts) => mounts,
                Err(e) => {
                    tracing::warn!(pod = %self.name, error = %e, "linking volume mounts failed");
                    if !self.pause(self.ctx.config.sync_interval).await {
                        return None;
                    }
                    continue;
                }
            };
            match env::resolve(&self.pod, container, &source).await {
                Ok(container_env) => {
                    let launch = self.launch(container, container_env, &mounts);
                    return Some((launch, mounts));
                }
                Err(e) => {
                    let message = e.to_string();
                    self.set_waiting(
                        kind,
                        index,
                        "CreateContainerConfigError",
                        Some(message.clone()),
                    )
                    .await;
                    self.container_failed(kind, index, &message).await;
                }
            }
            if !self.pause(self.ctx.config.sync_interval).await {
                return None;
            }
        }
    }

    fn launch(
        &self,
        container: &Container,
        container_env: Environment,
        mounts: &MountTable,
    ) -> Launch {
        let services = self.ctx.services.names_for(&self.namespace);
        let service_links = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let rewrite = |text: &str| mounts.rewrite(&services.rewrite(text));
        let mut process_env = Environment::default();
        process_env.set("PATH", self.ctx.config.path_env.clone());
        process_env.set("HOSTNAME", self.name.clone());
        process_env.set("HOME", self.dir.to_string_lossy().into_owned());
        process_env.set("SIM_POD_DIR", self.dir.to_string_lossy().into_owned());
        // The Services' variables first: the container's own override them.
        for (name, value) in services.env() {
            if service_links || name.starts_with("KUBERNETES_") {
                process_env.set(name, value.clone());
            }
        }
        for (name, value) in container_env.iter() {
            process_env.set(name, rewrite(value));
        }
        // Kubernetes: `command` replaces the image's entrypoint and `args` its cmd. A mapped image's
        // entrypoint is its executable; for any other image, without a command the args are the
        // whole argv.
        let image = container.image.as_deref().unwrap_or_default();
        let entrypoint = match (
            &container.command,
            self.ctx.config.image_binaries.binary_for(image),
        ) {
            (None, Some(binary)) => vec![binary.to_string_lossy().into_owned()],
            _ => Vec::new(),
        };
        let argv: Vec<String> = container
            .command
            .iter()
            .flatten()
            .chain(container.args.iter().flatten())
            .map(|arg| rewrite(&container_env.expand(arg)))
            .collect();
        let argv = entrypoint.into_iter().chain(argv).collect();
        let memory_limit = container
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|limits| limits.get("memory"))
            .and_then(|quantity| memory::parse_quantity(&quantity.0));
        let working_dir = mounts.working_dir(container.working_dir.as_deref());
        // Shells print $PWD when it names the working directory, so `pwd` shows the mount path's
        // rewritten form rather than the resolved `.volumes/...` one.
        process_env.set("PWD", working_dir.to_string_lossy().into_owned());
        Launch {
            argv,
            env: process_env,
            working_dir,
            memory_limit,
        }
    }

    /// Runs a main container's probes for one run: the startup probe until it succeeds, then
    /// liveness and readiness side by side. A failed startup or liveness probe kills the run
    /// (`run_stop`); readiness only moves the container's `ready`.
    async fn probe(
        self: Arc<Self>,
        index: usize,
        container: Container,
        target: ProbeTarget,
        run_stop: CancellationToken,
    ) {
        if let Some(startup) = &container.startup_probe {
            if !self
                .probe_until(index, ProbeKind::Startup, startup, &target, true)
                .await
            {
                return self
                    .kill_for_probe(index, ProbeKind::Startup, &run_stop)
                    .await;
            }
            self.update(Kind::Main, index, |c| {
                c.started = true;
                c.ready = container.readiness_probe.is_none();
            })
            .await;
        }
        let liveness = async {
            if let Some(probe) = &container.liveness_probe {
                // Passing probes never end the loop; a failing one does.
                self.probe_until(index, ProbeKind::Liveness, probe, &target, false)
                    .await;
                self.kill_for_probe(index, ProbeKind::Liveness, &run_stop)
                    .await;
            }
        };
        let readiness = async {
            if let Some(probe) = &container.readiness_probe {
                self.probe_readiness(index, probe, &target).await;
            }
        };
        futures::join!(liveness, readiness);
    }

    /// Probes every period until the verdict is `wanted`; returns it. Each failure is an
    /// `Unhealthy` event.
    async fn probe_until(
        &self,
        index: usize,
        kind: ProbeKind,
        probe: &Probe,
        target: &ProbeTarget,
        wanted: bool,
    ) -> bool {
        let timing = Timing::of(probe);
        let mut verdict = Verdict::new(timing);
        tokio::time::sleep(timing.initial_delay).await;
        loop {
            let result = target.check(probe, timing.timeout).await;
            if let Err(failure) = &result {
                self.unhealthy(index, kind, failure).await;
            }
            // A startup probe ends with its first verdict, whichever it is.
            if let Some(passing) = verdict.record(result.is_ok())
                && (passing == wanted || kind == ProbeKind::Startup)
            {
                return passing;
            }
            tokio::time::sleep(timing.period).await;
        }
    }

    async fn probe_readiness(&self, index: usize, probe: &Probe, target: &ProbeTarget) {
        let timing = Timing::of(probe);
        let mut verdict = Verdict::new(timing);
        tokio::time::sleep(timing.initial_delay).await;
        loop {
            let result = target.check(probe, timing.timeout).await;
            if let Err(failure) = &result {
                self.unhealthy(index, ProbeKind::Readiness, failure).await;
            }
            if let Some(ready) = verdict.record(result.is_ok()) {
                self.update(Kind::Main, index, |c| c.ready = ready).await;
            }
            tokio::time::sleep(timing.period).await;
        }
    }

    async fn unhealthy(&self, index: usize, kind: ProbeKind, failure: &str) {
        let note = format!("{} probe failed: {failure}", kind.name());
        self.container_event(Kind::Main, index, EventType::Warning, "Unhealthy", &note)
            .await;
    }

    async fn kill_for_probe(&self, index: usize, kind: ProbeKind, run_stop: &CancellationToken) {
        let name = self.container(Kind::Main, index).name;
        let note = format!(
            "Container {name} failed {} probe, will be restarted",
            kind.name().to_lowercase()
        );
        self.container_event(Kind::Main, index, EventType::Normal, "Killing", &note)
            .await;
        run_stop.cancel();
    }

    fn container(&self, kind: Kind, index: usize) -> Container {
        let spec = self.pod.spec.as_ref();
        let list = match kind {
            Kind::Init => spec.and_then(|s| s.init_containers.as_ref()),
            Kind::Main => spec.map(|s| &s.containers),
        };
        list.and_then(|l| l.get(index)).cloned().unwrap_or_default()
    }

    fn set_image_id(&self, kind: Kind, index: usize, reference: &ImageRef) {
        if let Some(c) = self.runtime.lock().container_mut(kind == Kind::Init, index) {
            c.image_id = Some(reference.image_id());
        }
    }

    async fn set_waiting(&self, kind: Kind, index: usize, reason: &str, message: Option<String>) {
        let name = self.container(kind, index).name;
        self.ctx
            .logs
            .set_waiting_reason(&self.namespace, &self.name, &name, reason);
        self.update(kind, index, |c| {
            c.state = RunState::waiting(reason, message)
        })
        .await;
    }

    async fn update(&self, kind: Kind, index: usize, change: impl FnOnce(&mut ContainerRecord)) {
        if let Some(c) = self.runtime.lock().container_mut(kind == Kind::Init, index) {
            change(c);
        }
        self.publish().await;
    }

    /// Writes the pod's status through the status subresource.
    pub(super) async fn publish(&self) {
        if self.ctx.shutdown.is_cancelled() {
            return;
        }
        let _serial = self.publish_lock.lock().await;
        let status = self.runtime.lock().status_at(Timestamp::now());
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let patch = serde_json::json!({ "status": status });
        if let Err(e) = api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            // Gone already (deleted): nothing left to report to.
            tracing::debug!(pod = %self.name, error = %e, "writing pod status failed");
        }
    }

    /// `name_namespace(uid)`, as kubelet messages name a pod.
    fn pod_description(&self) -> String {
        format!(
            "{}_{}({})",
            self.name,
            self.namespace,
            self.pod.uid().unwrap_or_default()
        )
    }

    /// Sleeps unless the pod stops first; false when it stopped.
    async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.stop.requested() => false,
        }
    }

    /// The kubelet's Warning `Failed` event for a container that cannot go on: `Error: <error>`.
    async fn container_failed(&self, kind: Kind, index: usize, error: &str) {
        let note = format!("Error: {error}");
        self.container_event(kind, index, EventType::Warning, "Failed", &note)
            .await;
    }

    async fn container_event(
        &self,
        kind: Kind,
        index: usize,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let name = self.container(kind, index).name;
        let field = match kind {
            Kind::Init => "initContainers",
            Kind::Main => "containers",
        };
        let involved = ObjectReference {
            field_path: Some(format!("spec.{field}{{{name}}}")),
            ..self.pod.object_ref(&())
        };
        self.ctx
            .events
            .publish_about(involved, type_, reason, note)
            .await;
    }
}

/// Deletes the pod object with grace period 0, for this very pod (a uid precondition): what the
/// kubelet does once a deleted pod's containers are gone.
pub(super) async fn remove_pod_object(ctx: &KubeletContext, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if let Err(e) = api.delete(&pod.name_any(), &params).await {
        tracing::debug!(pod = %pod.name_any(), error = %e, "removing a deleted pod");
    }
}

fn record(container: &Container, waiting_reason: &str) -> ContainerRecord {
    ContainerRecord::new(
        &container.name,
        container.image.as_deref().unwrap_or_default(),
        waiting_reason,
    )
}

/// The API server's default: `Always` for `:latest` or untagged images, else `IfNotPresent`.
fn default_pull_policy(image: &str) -> &'static str {
    let reference = ImageRef::parse(image);
    if !image.contains('@') && reference.with_tag.ends_with(":latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

/// A duration as Go prints one (`10s`, `1m20s`, `500ms`), as kubelet messages show it.
pub(crate) fn go_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let total_secs = duration.as_secs();
    let (hours, minutes, secs) = (total_secs / 3600, (total_secs / 60) % 60, total_secs % 60);
    let frac = duration.subsec_millis();
    let seconds = if frac == 0 {
        format!("{secs}s")
    } else {
        format!("{secs}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (hours, minutes) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3661)), "1h1m1s");
    }

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }
}
