//! Reading one container's log from the API server (`pods/log`, with timestamps), each line
//! handed to a [`LineSink`]. With follow, a stream that ends while the container still runs (or
//! that was cut: API server restart, proxy reset) is reopened where it stopped, without
//! repeating lines ([`Resume`]).
//!
//! The same reader feeds a shared log's buffer ([`crate::shared_log`]) and a session that reads
//! on its own (without follow, or after falling behind the shared buffer).

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use testcluster_api::v1::{Container, LogLine};
use testcluster_resources::job_pod::{self, CONTAINER_INIT};

use crate::informers::Informers;
use crate::line;
use crate::resume::Resume;

/// Reopens of a cut log in a row that may bring nothing new (or fail to open) before the reader
/// gives up on that log and lets the pod's state tell the rest.
const MAX_IDLE_REOPENS: u32 = 5;
/// Wait before the first idle reopen; doubled for each next one.
const REOPEN_BACKOFF: Duration = Duration::from_millis(200);
/// After a clean end of a followed log, how long the informer may take to show its container
/// terminated before the log is reopened anyway.
const STATUS_SETTLE: Duration = Duration::from_secs(2);

/// Where the lines of a log go.
pub trait LineSink {
    /// Takes one line; `Err` when nobody wants more.
    fn accept(&mut self, line: LogLine) -> impl Future<Output = Result<(), Disconnected>> + Send;
}

/// The reader of a log went away.
#[derive(Debug)]
pub struct Disconnected;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the reader went away")]
    Disconnected,
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The shared log this reader followed failed (its message says why).
    #[error("{0}")]
    Shared(String),
}

impl From<Disconnected> for ReadError {
    fn from(_: Disconnected) -> Self {
        ReadError::Disconnected
    }
}

/// How one log stream ended.
enum StreamEnd {
    /// Cleanly, as when the container terminates.
    Eof,
    /// With an error: the connection was cut.
    Cut,
}

/// The tag of the lines of `container`.
fn tag_of(container: &str) -> Container {
    if container == CONTAINER_INIT {
        Container::Init
    } else {
        Container::Runner
    }
}

/// One container's log, and how to read it.
pub struct ContainerLog<'a> {
    pub pods: Api<Pod>,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
    pub follow: bool,
    /// Whether a followed log may go on is read from the pod as the informer has it.
    pub informers: &'a Informers,
}

impl ContainerLog<'_> {
    /// Hands every line to `sink` that `resume` has not seen sent yet: from the start when
    /// nothing was sent, else from where `resume` stopped.
    pub async fn read(
        &self,
        resume: &mut Resume,
        sink: &mut impl LineSink,
    ) -> Result<(), ReadError> {
        let tag = tag_of(self.container);
        // Whatever was sent before (by a shared log) makes every open a reopen.
        let mut reopening = resume.count() > 0;
        let mut since_time = if reopening { resume.reopen() } else { None };
        let mut idle_reopens = 0u32;
        loop {
            let sent_before = resume.count();
            let params = LogParams {
                container: Some(self.container.to_owned()),
                follow: self.follow,
                timestamps: true,
                since_time,
                ..LogParams::default()
            };
            let end = match self.pods.log_stream(self.pod, &params).await {
                Ok(reader) => send_lines(reader, tag, resume, sink).await?,
                // Not started after all, or deleted meanwhile: the pod's state tells the rest.
                Err(kube::Error::Api(status)) if matches!(status.code, 400 | 404) => {
                    tracing::debug!(pod = self.pod, container = self.container, message = %status.message, "no log");
                    return Ok(());
                }
                // Reopening while the API server comes back: try again, a few times.
                Err(error) if reopening && idle_reopens < MAX_IDLE_REOPENS => {
                    tracing::debug!(pod = self.pod, container = self.container, %error, "reopening the log failed");
                    StreamEnd::Cut
                }
                Err(error) => return Err(error.into()),
            };
            if !self.follow || !self.may_go_on(&end).await {
                return Ok(());
            }
            if reopening && resume.count() == sent_before {
                // Nothing new came through the last stream: don't spin on a log that is done.
                if idle_reopens >= MAX_IDLE_REOPENS {
                    tracing::debug!(
                        pod = self.pod,
                        container = self.container,
                        "log reopened without progress; giving up"
                    );
                    return Ok(());
                }
                tokio::time::sleep(REOPEN_BACKOFF.saturating_mul(1 << idle_reopens)).await;
                idle_reopens += 1;
            } else {
                idle_reopens = 0;
            }
            tracing::debug!(
                pod = self.pod,
                container = self.container,
                "log stream ended early; reopening"
            );
            since_time = resume.reopen();
            reopening = true;
        }
    }

    /// After a followed log ended: whether more of it may come. A clean end while the container
    /// runs, or a cut stream while the pod exists (it may have terminated meanwhile, with lines
    /// not read yet), is reopened; a pod that is gone has no log left.
    ///
    /// A clean end usually means the container exited, and the informer hears of it moments
    /// later; so while it still shows the container running, its next changes are awaited (for
    /// at most [`STATUS_SETTLE`]) rather than a finished log reopened.
    async fn may_go_on(&self, end: &StreamEnd) -> bool {
        let mut changes = self.informers.changes();
        let mut settle = pin!(tokio::time::sleep(STATUS_SETTLE));
        loop {
            changes.borrow_and_update();
            let Some(pod) = self.informers.pod(self.namespace, self.pod) else {
                return false;
            };
            let state = job_pod::container_state(&pod, self.container);
            if state.as_ref().is_some_and(|s| s.terminated.is_some()) {
                return matches!(end, StreamEnd::Cut);
            }
            let running = state.as_ref().is_some_and(|s| s.running.is_some());
            if !running || matches!(end, StreamEnd::Cut) {
                return running;
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return true;
                    }
                }
                () = &mut settle => return true,
            }
        }
    }
}

/// Hands the lines of one log stream that `resume` admits to `sink`, until the stream ends.
async fn send_lines(
    reader: impl futures::AsyncBufRead,
    tag: Container,
    resume: &mut Resume,
    sink: &mut impl LineSink,
) -> Result<StreamEnd, ReadError> {
    let mut reader = pin!(reader);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw).await {
            Ok(0) => return Ok(StreamEnd::Eof),
            Ok(_) => {
                let line = line::parse(&raw, tag);
                if resume.admit(&line) {
                    resume.sent(&line);
                    sink.accept(line).await?;
                }
            }
            Err(error) => {
                tracing::debug!(%error, "log stream ended with an error");
                return Ok(StreamEnd::Cut);
            }
        }
    }
}
