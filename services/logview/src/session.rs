//! One `StreamLogs` call: find the job's pod, stream `init` then `runner`, end with one
//! `FinalStatus`.
//!
//! A session reads the test cluster and its pod from the shared [`Informers`] and waits on their
//! change signal, never on a watch of its own nor a poll; each wait ends when what it waits for
//! happens or can no longer happen: the run is over, the pod is gone. A container that cannot
//! start (image pull error, missing ConfigMap) is not the end: the kubelet retries, and the
//! runner gives up only after its start timeout (docs/lifecycle.md, step 4). So a blocked
//! container is waited on until it starts, the pod finishes or goes, or the run is over (then
//! the runner's record is the final status). Logs come through [`SharedLogs`]. The caller drops
//! the whole session when the client goes away.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::ResourceExt;
use testcluster_api::v1::stream_logs_response::Event;
use testcluster_api::v1::{self as api, FinalStatus, LogLine, StreamLogsResponse};
use testcluster_resources::TestClusterGKE;
use testcluster_resources::job_pod::{self, CONTAINER_INIT, CONTAINER_RUNNER};
use tokio::sync::mpsc;

use crate::container_log::{Disconnected, LineSink, ReadError};
use crate::final_status;
use crate::informers::Informers;
use crate::shared_log::SharedLogs;

/// Where a session's messages go: the gRPC response stream.
pub type Output = mpsc::Sender<Result<StreamLogsResponse, tonic::Status>>;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the client went away")]
    Disconnected,
    #[error(transparent)]
    Log(ReadError),
    #[error("logview's informers stopped")]
    InformersStopped,
}

impl From<ReadError> for SessionError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Disconnected => SessionError::Disconnected,
            error => SessionError::Log(error),
        }
    }
}

/// One log stream's parameters and output.
pub struct Session {
    pub informers: Informers,
    pub logs: Arc<SharedLogs>,
    pub namespace: String,
    pub name: String,
    pub follow: bool,
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

/// What the wait for a container to start found.
enum Start {
    Started,
    Never(Fate),
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

/// Sends a session's lines to its client.
struct ClientSink<'a>(&'a Output);

impl LineSink for ClientSink<'_> {
    async fn accept(&mut self, line: LogLine) -> Result<(), Disconnected> {
        let message = StreamLogsResponse {
            event: Some(Event::Line(line)),
        };
        self.0.send(Ok(message)).await.map_err(|_| Disconnected)
    }
}

impl Session {
    /// Streams until done; a failure is reported to the client as `UNAVAILABLE`. `resource` is
    /// the test cluster as the informer had it when the call came.
    pub async fn run(self, resource: Arc<TestClusterGKE>) {
        match self.stream(resource).await {
            Ok(()) | Err(SessionError::Disconnected) => {}
            Err(error) => {
                tracing::warn!(namespace = %self.namespace, name = %self.name, %error, "log stream failed");
                let status = tonic::Status::unavailable(format!("streaming logs: {error}"));
                let _ = self.out.send(Err(status)).await;
            }
        }
    }

    async fn stream(&self, resource: Arc<TestClusterGKE>) -> Result<(), SessionError> {
        if !self.follow {
            return self.snapshot(&resource).await;
        }
        match self.wait_for_pod(resource).await? {
            PodSearch::Found(pod) => self.follow_pod(&pod).await,
            PodSearch::Never { resource, deleted } => {
                self.finish(final_status::without_pod(&resource, deleted))
                    .await
            }
        }
    }

    /// Waits for the informers' next change until `decide` says what it waited for.
    async fn until<T>(&self, mut decide: impl FnMut() -> Option<T>) -> Result<T, SessionError> {
        let mut changes = self.informers.changes();
        loop {
            // Seen before reading, so a change made while `decide` reads is not missed.
            changes.borrow_and_update();
            if let Some(found) = decide() {
                return Ok(found);
            }
            changes
                .changed()
                .await
                .map_err(|_| SessionError::InformersStopped)?;
        }
    }

    fn test_cluster(&self) -> Option<Arc<TestClusterGKE>> {
        self.informers.test_cluster(&self.namespace, &self.name)
    }

    fn pod(&self, name: &str) -> Option<Arc<Pod>> {
        self.informers.pod(&self.namespace, name)
    }

    /// follow=false: what exists now, then the final status as currently known.
    async fn snapshot(&self, resource: &TestClusterGKE) -> Result<(), SessionError> {
        let pods = self.informers.job_pods(&self.namespace, &self.name);
        let Some(pod) = pick(&pods, resource) else {
            return self
                .finish(final_status::without_pod(resource, false))
                .await;
        };
        for container in containers_of(&pod) {
            let started = job_pod::container_state(&pod, container)
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
            if started {
                self.logs
                    .snapshot(
                        &self.namespace,
                        &pod.name_any(),
                        container,
                        &mut ClientSink(&self.out),
                    )
                    .await?;
            }
        }
        let status = final_status::recorded(resource)
            .unwrap_or_else(|| final_status::from_pod(final_status::phase_of(resource), &pod));
        self.finish(status).await
    }

    /// Waits for the job's pod, as long as one can still appear.
    async fn wait_for_pod(&self, resource: Arc<TestClusterGKE>) -> Result<PodSearch, SessionError> {
        let mut last = resource;
        self.until(|| {
            let Some(resource) = self.test_cluster() else {
                return Some(PodSearch::Never {
                    resource: last.clone(),
                    deleted: true,
                });
            };
            last = resource.clone();
            let pods = self.informers.job_pods(&self.namespace, &self.name);
            if let Some(pod) = pick(&pods, &resource) {
                return Some(PodSearch::Found(pod));
            }
            (final_status::run_over(&resource) || !final_status::has_job(&resource)).then_some(
                PodSearch::Never {
                    resource,
                    deleted: false,
                },
            )
        })
        .await
    }

    /// Streams `init` (when the pod has it) then `runner`, then the final status.
    async fn follow_pod(&self, pod: &Pod) -> Result<(), SessionError> {
        let pod_name = pod.name_any();
        for container in containers_of(pod) {
            match self.follow_container(&pod_name, container).await? {
                Fate::Exited(terminated)
                    if container == CONTAINER_INIT && terminated.exit_code == 0 => {}
                // The pod runs nothing after a failed init container (restartPolicy Never) nor
                // after the runner, nor after it finished with a container blocked: it is done.
                Fate::Exited(_) | Fate::Blocked | Fate::Gone => {
                    return self.conclude(&pod_name).await;
                }
                Fate::RunOver(status) => return self.finish(status).await,
            }
        }
        // A pod without a runner container is not one the runner made; say what it shows.
        let phase = self
            .test_cluster()
            .map_or(api::Phase::Unspecified, |r| final_status::phase_of(&r));
        self.finish(self.pod_status(phase, &pod_name)).await
    }

    /// Waits for `container` to start, streams its log, and waits for it to terminate.
    ///
    /// While the container cannot start, the kubelet keeps retrying (a pull may succeed, a
    /// missing ConfigMap may appear) and the runner waits its start timeout before failing the
    /// run; so the wait goes on until the container starts, the pod finishes or goes, or the run
    /// is over.
    async fn follow_container(
        &self,
        pod_name: &str,
        container: &str,
    ) -> Result<Fate, SessionError> {
        let start = self
            .until(|| {
                let Some(pod) = self.pod(pod_name) else {
                    return Some(Start::Never(Fate::Gone));
                };
                let state = job_pod::container_state(&pod, container);
                if state
                    .as_ref()
                    .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
                {
                    return Some(Start::Started);
                }
                if final_status::pod_finished(&pod) {
                    return Some(Start::Never(Fate::Blocked));
                }
                let blocked = state.as_ref().and_then(job_pod::start_failure).is_some();
                if blocked && let Some(status) = self.run_ended(&pod) {
                    return Some(Start::Never(Fate::RunOver(status)));
                }
                None
            })
            .await?;
        if let Start::Never(fate) = start {
            return Ok(fate);
        }
        // With follow the log ends when the container exits (or the pod goes).
        self.logs
            .follow(
                &self.namespace,
                pod_name,
                container,
                &mut ClientSink(&self.out),
            )
            .await?;
        self.until(|| match self.pod(pod_name) {
            None => Some(Fate::Gone),
            Some(pod) => job_pod::container_state(&pod, container)
                .and_then(|s| s.terminated)
                .map(Fate::Exited),
        })
        .await
    }

    /// How the run ended while `pod` could not start a container, once it has: the runner's
    /// record, or, when the test cluster is being deleted or is gone, what the pod says.
    fn run_ended(&self, pod: &Pod) -> Option<FinalStatus> {
        let Some(resource) = self.test_cluster() else {
            return Some(final_status::from_pod(api::Phase::Unspecified, pod));
        };
        final_status::recorded(&resource).or_else(|| {
            final_status::deleting(&resource)
                .then(|| final_status::from_pod(final_status::phase_of(&resource), pod))
        })
    }

    /// Ends the stream once the pod is done or gone: with the outcome the runner records in
    /// `status.job` (the informer says when it appears), or, if the run ends without one (the
    /// test cluster is deleted), with what the pod says.
    async fn conclude(&self, pod_name: &str) -> Result<(), SessionError> {
        let status = self
            .until(|| match self.test_cluster() {
                None => Some(self.pod_status(api::Phase::Unspecified, pod_name)),
                Some(resource) => final_status::recorded(&resource).or_else(|| {
                    final_status::deleting(&resource)
                        .then(|| self.pod_status(final_status::phase_of(&resource), pod_name))
                }),
            })
            .await?;
        self.finish(status).await
    }

    /// What the pod `pod_name` says now, with the test cluster's `phase`.
    fn pod_status(&self, phase: api::Phase, pod_name: &str) -> FinalStatus {
        match self.pod(pod_name) {
            Some(pod) => final_status::from_pod(phase, &pod),
            None => final_status::pod_deleted(phase, pod_name),
        }
    }

    async fn finish(&self, status: FinalStatus) -> Result<(), SessionError> {
        let message = StreamLogsResponse {
            event: Some(Event::FinalStatus(status)),
        };
        self.out
            .send(Ok(message))
            .await
            .map_err(|_| SessionError::Disconnected)
    }
}

/// The containers to stream, in order: `init` when the pod has it, then `runner`.
fn containers_of(pod: &Pod) -> Vec<&'static str> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == CONTAINER_INIT);
    let runner = spec.containers.iter().any(|c| c.name == CONTAINER_RUNNER);
    [(CONTAINER_INIT, init), (CONTAINER_RUNNER, runner)]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
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
