//! One `StreamLogs` call: find the job's pod, stream `init` then `runner`, end with one
//! `FinalStatus`.
//!
//! Every wait is a watch (the test cluster, the pod), never a poll, and ends when what it waits
//! for happens or can no longer happen: the run is over, the pod is gone. A container that cannot
//! start (image pull error, missing ConfigMap) is not the end: the kubelet retries, and the runner
//! gives up only after its start timeout (docs/lifecycle.md, step 4). So a blocked container is
//! waited on, watching the pod and the test cluster, until it starts, the pod finishes or goes,
//! or the run is over (then the runner's record is the final status). The caller drops the whole
//! session when the client goes away.
//!
//! A followed log cut short while its container still runs (API server restart, proxy reset) is
//! reopened from the last line's timestamp, without repeating lines ([`Resume`]).

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::api::{ListParams, LogParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use testcluster_api::v1::stream_logs_response::Event;
use testcluster_api::v1::{self as api, Container, FinalStatus, StreamLogsResponse};
use testcluster_resources::job_pod::{self, CONTAINER_INIT, CONTAINER_RUNNER, LABEL_JOB_NAME};
use testcluster_resources::{Phase, TestClusterGKE};
use tokio::sync::mpsc;

use crate::final_status;
use crate::line;
use crate::resume::Resume;
use crate::watch::Watched;

/// Reopens of a cut log in a row that may bring nothing new (or fail to open) before the session
/// gives up on that log and lets the pod's state tell the rest.
const MAX_IDLE_REOPENS: u32 = 5;
/// Wait before the first idle reopen; doubled for each next one.
const REOPEN_BACKOFF: Duration = Duration::from_millis(200);

/// Where a session's messages go: the gRPC response stream.
pub type Output = mpsc::Sender<Result<StreamLogsResponse, tonic::Status>>;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the client went away")]
    Disconnected,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("a watch ended unexpectedly")]
    WatchEnded,
}

/// One log stream's parameters and output.
pub struct Session {
    pub client: Client,
    pub namespace: String,
    pub name: String,
    pub follow: bool,
    /// How long to wait, once the pod is done, for the runner to record the outcome.
    pub outcome_wait: Duration,
    pub out: Output,
}

/// How following one container ended.
enum Fate {
    /// It ran and terminated.
    Exited(ContainerStateTerminated),
    /// The pod finished without starting it.
    Blocked,
    /// The pod was deleted.
    Gone,
    /// It could not start, and the run ended meanwhile: this is how.
    RunOver(FinalStatus),
}

/// How a log stream ended.
enum LogEnd {
    /// Cleanly, as when the container terminates.
    Eof,
    /// With an error: the connection was cut.
    Cut,
}

/// What the search for the job's pod found.
enum PodSearch {
    Found(Arc<Pod>),
    /// There is no pod and will be none; `deleted` when the test cluster itself went away.
    Never {
        resource: Arc<TestClusterGKE>,
        deleted: bool,
    },
}

/// The latest state of one pod (`None` once deleted), from a watch on it.
struct PodWatch {
    watched: Watched<Pod>,
    latest: Option<Arc<Pod>>,
}

impl PodWatch {
    async fn next(&mut self) -> Result<(), SessionError> {
        let objects = self
            .watched
            .changed()
            .await
            .ok_or(SessionError::WatchEnded)?;
        self.latest = objects.into_iter().next();
        Ok(())
    }
}

/// The test cluster, watched only while a container is blocked (started on first use).
#[derive(Default)]
struct RunWatch {
    watched: Option<Watched<TestClusterGKE>>,
    /// `None` until the first list; then the object, `None` once deleted.
    latest: Option<Option<Arc<TestClusterGKE>>>,
    /// The last object seen, for a final status after its deletion.
    last: Option<Arc<TestClusterGKE>>,
}

impl RunWatch {
    async fn next(&mut self, session: &Session) -> Result<(), SessionError> {
        let watched = self.watched.get_or_insert_with(|| {
            Watched::new(session.resources(), Session::by_name(&session.name))
        });
        let objects = watched.changed().await.ok_or(SessionError::WatchEnded)?;
        let current = objects.into_iter().next();
        if let Some(resource) = &current {
            self.last = Some(resource.clone());
        }
        self.latest = Some(current);
        Ok(())
    }

    /// How the run ended, once it has (terminal phase, deletion), with `pod` as the pod now.
    fn over(&self, pod: &Pod) -> Option<FinalStatus> {
        match self.latest.as_ref()? {
            None => Some(match &self.last {
                Some(last) => final_status::without_pod(last, true),
                None => final_status::from_pod(api::Phase::Unspecified, pod),
            }),
            Some(resource) => {
                if let Some(recorded) = final_status::recorded(resource) {
                    return Some(recorded);
                }
                let deleting = resource.status.as_ref().and_then(|s| s.phase)
                    == Some(Phase::Deleting)
                    || resource.metadata.deletion_timestamp.is_some();
                deleting.then(|| final_status::from_pod(final_status::phase_of(resource), pod))
            }
        }
    }
}

impl Session {
    /// Streams until done; a failure is reported to the client as `UNAVAILABLE`.
    pub async fn run(self, resource: TestClusterGKE) {
        match self.stream(resource).await {
            Ok(()) | Err(SessionError::Disconnected) => {}
            Err(error) => {
                tracing::warn!(namespace = %self.namespace, name = %self.name, %error, "log stream failed");
                let status = tonic::Status::unavailable(format!("streaming logs: {error}"));
                let _ = self.out.send(Err(status)).await;
            }
        }
    }

    async fn stream(&self, resource: TestClusterGKE) -> Result<(), SessionError> {
        if !self.follow {
            return self.snapshot(&resource).await;
        }
        match self.wait_for_pod(resource).await? {
            PodSearch::Found(pod) => self.follow_pod(pod).await,
            PodSearch::Never { resource, deleted } => {
                self.finish(final_status::without_pod(&resource, deleted))
                    .await
            }
        }
    }

    fn resources(&self) -> Api<TestClusterGKE> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn job_pods_selector(&self) -> String {
        format!("{LABEL_JOB_NAME}={}", job_pod::job_name(&self.name))
    }

    fn by_name(name: &str) -> watcher::Config {
        watcher::Config::default().fields(&format!("metadata.name={name}"))
    }

    /// follow=false: what exists now, then the final status as currently known.
    async fn snapshot(&self, resource: &TestClusterGKE) -> Result<(), SessionError> {
        let pods = self
            .pods()
            .list(&ListParams::default().labels(&self.job_pods_selector()))
            .await?;
        let pods: Vec<Arc<Pod>> = pods.items.into_iter().map(Arc::new).collect();
        let Some(pod) = pick(&pods, resource) else {
            return self
                .finish(final_status::without_pod(resource, false))
                .await;
        };
        for (container, tag) in containers_of(&pod) {
            let started = job_pod::container_state(&pod, container)
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
            if started {
                self.stream_log(&pod.name_any(), container, tag, false)
                    .await?;
            }
        }
        let status = final_status::recorded(resource)
            .unwrap_or_else(|| final_status::from_pod(final_status::phase_of(resource), &pod));
        self.finish(status).await
    }

    /// Waits for the job's pod, as long as one can still appear.
    async fn wait_for_pod(&self, resource: TestClusterGKE) -> Result<PodSearch, SessionError> {
        let mut resource_watch = Watched::new(self.resources(), Self::by_name(&self.name));
        let pod_selector = self.job_pods_selector();
        let mut pod_watch = Watched::new(
            self.pods(),
            watcher::Config::default().labels(&pod_selector),
        );
        let mut last = Arc::new(resource);
        let (mut current, mut pods) = (None, None);
        loop {
            tokio::select! {
                objects = resource_watch.changed() => {
                    let objects = objects.ok_or(SessionError::WatchEnded)?;
                    current = Some(objects.into_iter().next());
                }
                objects = pod_watch.changed() => {
                    pods = Some(objects.ok_or(SessionError::WatchEnded)?);
                }
            }
            // Decide only on a complete picture: both initial lists in.
            let (Some(current), Some(pods)) = (&current, &pods) else {
                continue;
            };
            let Some(resource) = current else {
                return Ok(PodSearch::Never {
                    resource: last,
                    deleted: true,
                });
            };
            last = resource.clone();
            if let Some(pod) = pick(pods, resource) {
                return Ok(PodSearch::Found(pod));
            }
            let phase = resource.status.as_ref().and_then(|s| s.phase);
            let over = phase.is_some_and(|p| p.is_terminal() || p == Phase::Deleting)
                || resource.metadata.deletion_timestamp.is_some();
            if over || !final_status::has_job(resource) {
                return Ok(PodSearch::Never {
                    resource: last,
                    deleted: false,
                });
            }
        }
    }

    /// Streams `init` (when the pod has it) then `runner`, then the final status.
    async fn follow_pod(&self, pod: Arc<Pod>) -> Result<(), SessionError> {
        let pod_name = pod.name_any();
        let mut watch = PodWatch {
            watched: Watched::new(self.pods(), Self::by_name(&pod_name)),
            latest: Some(pod.clone()),
        };
        let mut run = RunWatch::default();
        for (container, tag) in containers_of(&pod) {
            match self
                .follow_container(&mut watch, &mut run, container, tag)
                .await?
            {
                Fate::Exited(terminated)
                    if container == CONTAINER_INIT && terminated.exit_code == 0 => {}
                // The pod runs nothing after a failed init container (restartPolicy Never) nor
                // after the runner: it is done.
                Fate::Exited(_) => return self.conclude(watch.latest.as_deref(), true).await,
                Fate::Blocked => {
                    let done = watch
                        .latest
                        .as_deref()
                        .is_some_and(final_status::pod_finished);
                    return self.conclude(watch.latest.as_deref(), done).await;
                }
                Fate::Gone => return self.conclude_gone(&pod_name).await,
                Fate::RunOver(status) => return self.finish(status).await,
            }
        }
        // A pod without a runner container is not one the runner made; say what it shows.
        self.conclude(watch.latest.as_deref(), false).await
    }

    /// Waits for `container` to start, streams its log, and waits for it to terminate.
    ///
    /// While the container cannot start, the kubelet keeps retrying (a pull may succeed, a
    /// missing ConfigMap may appear) and the runner waits its start timeout before failing the
    /// run; so the wait goes on, watching the test cluster too, until the container starts, the
    /// pod finishes or goes, or the run is over.
    async fn follow_container(
        &self,
        watch: &mut PodWatch,
        run: &mut RunWatch,
        container: &str,
        tag: Container,
    ) -> Result<Fate, SessionError> {
        loop {
            let Some(pod) = watch.latest.clone() else {
                return Ok(Fate::Gone);
            };
            let mut blocked = false;
            if let Some(state) = job_pod::container_state(&pod, container) {
                if state.running.is_some() || state.terminated.is_some() {
                    break;
                }
                blocked = job_pod::start_failure(&state).is_some();
            }
            if final_status::pod_finished(&pod) {
                return Ok(Fate::Blocked);
            }
            if !blocked {
                watch.next().await?;
                continue;
            }
            if let Some(status) = run.over(&pod) {
                return Ok(Fate::RunOver(status));
            }
            tokio::select! {
                changed = watch.next() => changed?,
                changed = run.next(self) => changed?,
            }
        }
        let pod_name = watch
            .latest
            .as_ref()
            .map(|p| p.name_any())
            .unwrap_or_default();
        // With follow the log ends when the container exits (or the pod goes).
        self.stream_log(&pod_name, container, tag, true).await?;
        loop {
            let Some(pod) = watch.latest.clone() else {
                return Ok(Fate::Gone);
            };
            let state = job_pod::container_state(&pod, container);
            if let Some(terminated) = state.and_then(|s| s.terminated) {
                return Ok(Fate::Exited(terminated));
            }
            watch.next().await?;
        }
    }

    /// Sends every line of one container's log. With `follow`, a stream that ends while the
    /// container still runs (or that was cut) is reopened from the last line sent.
    async fn stream_log(
        &self,
        pod: &str,
        container: &str,
        tag: Container,
        follow: bool,
    ) -> Result<(), SessionError> {
        let mut resume = Resume::default();
        let mut since_time = None;
        // Set once the first stream ended: from then on every open is a reopen.
        let mut reopening = false;
        let mut idle_reopens = 0u32;
        loop {
            let sent_before = resume.count();
            let params = LogParams {
                container: Some(container.to_owned()),
                follow,
                timestamps: true,
                since_time,
                ..LogParams::default()
            };
            let end = match self.pods().log_stream(pod, &params).await {
                Ok(reader) => self.send_lines(reader, tag, &mut resume).await?,
                // Not started after all, or deleted meanwhile: the pod's state tells the rest.
                Err(kube::Error::Api(status)) if matches!(status.code, 400 | 404) => {
                    tracing::debug!(pod, container, message = %status.message, "no log");
                    return Ok(());
                }
                // Reopening while the API server comes back: try again, a few times.
                Err(error) if reopening && idle_reopens < MAX_IDLE_REOPENS => {
                    tracing::debug!(pod, container, %error, "reopening the log failed");
                    LogEnd::Cut
                }
                Err(error) => return Err(error.into()),
            };
            if !follow || !self.log_may_go_on(pod, container, &end).await {
                return Ok(());
            }
            if reopening && resume.count() == sent_before {
                // Nothing new came through the last stream: don't spin on a log that is done.
                if idle_reopens >= MAX_IDLE_REOPENS {
                    tracing::debug!(pod, container, "log reopened without progress; giving up");
                    return Ok(());
                }
                tokio::time::sleep(REOPEN_BACKOFF.saturating_mul(1 << idle_reopens)).await;
                idle_reopens += 1;
            } else {
                idle_reopens = 0;
            }
            tracing::debug!(pod, container, "log stream ended early; reopening");
            since_time = resume.reopen();
            reopening = true;
        }
    }

    /// Sends the lines of one log stream that `resume` admits, until it ends.
    async fn send_lines(
        &self,
        reader: impl futures::AsyncBufRead,
        tag: Container,
        resume: &mut Resume,
    ) -> Result<LogEnd, SessionError> {
        let mut reader = pin!(reader);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw).await {
                Ok(0) => return Ok(LogEnd::Eof),
                Ok(_) => {
                    let line = line::parse(&raw, tag);
                    if resume.admit(&line) {
                        resume.sent(&line);
                        self.send(Event::Line(line)).await?;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "log stream ended with an error");
                    return Ok(LogEnd::Cut);
                }
            }
        }
    }

    /// After a followed log ended: whether more of it may come. A clean end while the container
    /// runs, or a cut stream while the pod exists (it may have terminated meanwhile, with lines
    /// not read yet), is reopened; a pod that is gone has no log left.
    async fn log_may_go_on(&self, pod: &str, container: &str, end: &LogEnd) -> bool {
        match self.pods().get_opt(pod).await {
            Ok(Some(pod)) => {
                let state = job_pod::container_state(&pod, container);
                let running = state.as_ref().is_some_and(|s| s.running.is_some());
                let terminated = state.as_ref().is_some_and(|s| s.terminated.is_some());
                running || (terminated && matches!(end, LogEnd::Cut))
            }
            Ok(None) => false,
            // The API server may be coming back: a reopen says more than giving up would.
            Err(error) => {
                tracing::debug!(pod, container, %error, "reading the pod after its log ended");
                true
            }
        }
    }

    /// Ends the stream after the pod finished or got stuck. When it finished, the runner records
    /// the outcome moments later; that record is preferred as the final word.
    async fn conclude(&self, pod: Option<&Pod>, pod_done: bool) -> Result<(), SessionError> {
        let (recorded, phase) = if pod_done {
            self.await_recorded().await?
        } else {
            (None, self.current_phase().await?)
        };
        let status = match (recorded, pod) {
            (Some(recorded), _) => recorded,
            (None, Some(pod)) => final_status::from_pod(phase, pod),
            (None, None) => final_status::pod_deleted(phase, ""),
        };
        self.finish(status).await
    }

    async fn conclude_gone(&self, pod_name: &str) -> Result<(), SessionError> {
        let (recorded, phase) = self.await_recorded().await?;
        let status = recorded.unwrap_or_else(|| final_status::pod_deleted(phase, pod_name));
        self.finish(status).await
    }

    async fn current_phase(&self) -> Result<api::Phase, SessionError> {
        let resource = self.resources().get_opt(&self.name).await?;
        Ok(resource
            .as_ref()
            .map_or(api::Phase::Unspecified, final_status::phase_of))
    }

    /// Watches the test cluster, at most `outcome_wait`, for its recorded outcome; else returns
    /// the phase it has.
    async fn await_recorded(&self) -> Result<(Option<FinalStatus>, api::Phase), SessionError> {
        let mut watch = Watched::new(self.resources(), Self::by_name(&self.name));
        let mut phase = api::Phase::Unspecified;
        let wait = async {
            loop {
                let objects = watch.changed().await.ok_or(SessionError::WatchEnded)?;
                let Some(resource) = objects.first() else {
                    return Ok::<_, SessionError>(None);
                };
                phase = final_status::phase_of(resource);
                if let Some(recorded) = final_status::recorded(resource) {
                    return Ok(Some(recorded));
                }
            }
        };
        match tokio::time::timeout(self.outcome_wait, wait).await {
            Ok(result) => Ok((result?, phase)),
            Err(_elapsed) => Ok((None, phase)),
        }
    }

    async fn finish(&self, status: FinalStatus) -> Result<(), SessionError> {
        self.send(Event::FinalStatus(status)).await
    }

    async fn send(&self, event: Event) -> Result<(), SessionError> {
        let message = StreamLogsResponse { event: Some(event) };
        self.out
            .send(Ok(message))
            .await
            .map_err(|_| SessionError::Disconnected)
    }
}

/// The containers to stream, in order: `init` when the pod has it, then `runner`.
fn containers_of(pod: &Pod) -> Vec<(&'static str, Container)> {
    let spec = pod.spec.as_ref();
    let has = |name: &str, init: bool| {
        spec.is_some_and(|s| {
            let containers = if init {
                s.init_containers.as_deref().unwrap_or_default()
            } else {
                &s.containers
            };
            containers.iter().any(|c| c.name == name)
        })
    };
    let mut containers = Vec::new();
    if has(CONTAINER_INIT, true) {
        containers.push((CONTAINER_INIT, Container::Init));
    }
    if has(CONTAINER_RUNNER, false) {
        containers.push((CONTAINER_RUNNER, Container::Runner));
    }
    containers
}

/// The job's pod among `pods`: the one the runner recorded, else the newest.
fn pick(pods: &[Arc<Pod>], resource: &TestClusterGKE) -> Option<Arc<Pod>> {
    let recorded = resource
        .status
        .as_ref()
        .and_then(|s| s.job.as_ref())
        .and_then(|j| j.pod.as_deref());
    if let Some(name) = recorded
        && let Some(pod) = pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    {
        return Some(pod.clone());
    }
    pods.iter()
        .max_by(|a, b| a.creation_timestamp().cmp(&b.creation_timestamp()))
        .cloned()
}
