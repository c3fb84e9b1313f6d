//! Container logs: written by the kubelet, read by `GET pods/{name}/log`.
//!
//! Each container *run* (one start of a container; a restart begins a new run) has an append-only
//! buffer of timestamped chunks, as the kubelet's CRI log files have. Only the current and the previous
//! run of a container are kept (what `previous=true` can reach), and each run keeps at most
//! [`DEFAULT_RUN_LIMIT_BYTES`] of its newest output, so a chatty container cannot exhaust memory.
//!
//! A reader with `follow` receives new output as it is written and its stream ends when the run's
//! [`LogWriter`] is dropped (the container terminated) or the pod's logs are removed (pod deleted).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// How many bytes of output a container run keeps by default; older output is dropped first.
pub const DEFAULT_RUN_LIMIT_BYTES: usize = 4 << 20;

/// What `GET .../pods/{pod}/log` asks for. The API server has already resolved `container`.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The container has not started yet (no log exists). The text is the kubelet's:
    /// `container "C" in pod "P" is waiting to start: <what it waits for>`.
    #[error("container \"{container}\" in pod \"{pod}\" is waiting to start: {waiting_for}")]
    NotStarted {
        pod: String,
        container: String,
        waiting_for: String,
    },
    /// `previous=true` but the container never restarted.
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    NoPrevious { pod: String, container: String },
}

/// All container logs of one API server. Cheap to clone: clones share the same logs.
#[derive(Clone)]
pub struct PodLogs {
    inner: Arc<LogsInner>,
}

struct LogsInner {
    containers: Mutex<HashMap<ContainerKey, ContainerLogs>>,
    run_limit_bytes: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ContainerKey {
    namespace: String,
    pod: String,
    container: String,
}

impl ContainerKey {
    fn new(namespace: &str, pod: &str, container: &str) -> ContainerKey {
        ContainerKey {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
        }
    }
}

#[derive(Default)]
struct ContainerLogs {
    current: Option<Arc<LogRun>>,
    previous: Option<Arc<LogRun>>,
    /// The container's waiting reason while it has no run yet, for the "waiting to start" error.
    waiting_reason: Option<String>,
    /// The current run ended and a restart is pending: it is now also the "previous" log, as the
    /// kubelet serves `previous=true` from the last terminated container.
    restart_pending: bool,
}

impl Default for PodLogs {
    fn default() -> Self {
        PodLogs::with_run_limit(DEFAULT_RUN_LIMIT_BYTES)
    }
}

impl PodLogs {
    /// Logs that keep at most `run_limit_bytes` of output per container run.
    pub fn with_run_limit(run_limit_bytes: usize) -> PodLogs {
        PodLogs {
            inner: Arc::new(LogsInner {
                containers: Mutex::new(HashMap::new()),
                run_limit_bytes: run_limit_bytes.max(1),
            }),
        }
    }

    /// The log as a byte stream; with `follow` it stays open until the container's writer closes.
    pub fn stream(&self, query: LogQuery) -> Result<BoxStream<'static, Bytes>, LogError> {
        let key = ContainerKey::new(&query.namespace, &query.pod, &query.container);
        let run = {
            let containers = self.inner.containers.lock();
            let logs = containers.get(&key);
            if query.previous {
                logs.and_then(|l| {
                    if l.restart_pending {
                        l.current.clone()
                    } else {
                        l.previous.clone()
                    }
                })
                .ok_or_else(|| LogError::NoPrevious {
                    pod: query.pod.clone(),
                    container: query.container.clone(),
                })?
            } else {
                logs.and_then(|l| l.current.clone())
                    .ok_or_else(|| LogError::NotStarted {
                        pod: query.pod.clone(),
                        container: query.container.clone(),
                        waiting_for: waiting_for(logs.and_then(|l| l.waiting_reason.as_deref())),
                    })?
            }
        };
        let start = run.buffer.lock().start_seq(query.tail_lines);
        if query.follow {
            Ok(follow(run, start, query.timestamps))
        } else {
            let (chunk, _, _) = run.buffer.lock().read_from(start, query.timestamps);
            Ok(futures::stream::iter((!chunk.is_empty()).then_some(chunk)).boxed())
        }
    }

    /// Starts a new run of a container (its first start or a restart) and returns its writer. The run
    /// before becomes the `previous` log; any older one is dropped.
    pub fn start_run(&self, namespace: &str, pod: &str, container: &str) -> LogWriter {
        let run = Arc::new(LogRun::new(self.inner.run_limit_bytes));
        let mut containers = self.inner.containers.lock();
        let logs = containers
            .entry(ContainerKey::new(namespace, pod, container))
            .or_default();
        if let Some(old) = logs.current.replace(run.clone()) {
            old.close();
            logs.previous = Some(old);
        }
        logs.waiting_reason = None;
        logs.restart_pending = false;
        LogWriter { run }
    }

    /// The container's current run ended and it will be started again (after a back-off).
    pub fn mark_restarting(&self, namespace: &str, pod: &str, container: &str) {
        if let Some(logs) = self
            .inner
            .containers
            .lock()
            .get_mut(&ContainerKey::new(namespace, pod, container))
        {
            logs.restart_pending = true;
        }
    }

    /// Records why a container that has not started yet is waiting (e.g. `ErrImagePull`), so that a
    /// log request says so, as the kubelet does.
    pub fn set_waiting_reason(&self, namespace: &str, pod: &str, container: &str, reason: &str) {
        let mut containers = self.inner.containers.lock();
        let logs = containers
            .entry(ContainerKey::new(namespace, pod, container))
            .or_default();
        logs.waiting_reason = Some(reason.to_owned());
    }

    /// Forgets every log of a pod (it was deleted); open `follow` streams end.
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        let mut containers = self.inner.containers.lock();
        containers.retain(|key, logs| {
            let keep = key.namespace != namespace || key.pod != pod;
            if !keep {
                logs.close();
            }
            keep
        });
    }

    /// Ends every open `follow` stream and forgets all logs (the server is shutting down).
    pub fn close_all(&self) {
        let mut containers = self.inner.containers.lock();
        for logs in containers.values() {
            logs.close();
        }
        containers.clear();
    }
}

impl ContainerLogs {
    fn close(&self) {
        for run in self.current.iter().chain(self.previous.iter()) {
            run.close();
        }
    }
}

/// What the kubelet says a container without a log is waiting for.
fn waiting_for(reason: Option<&str>) -> String {
    match reason {
        Some("ErrImagePull") => "image can't be pulled".to_owned(),
        Some("ImagePullBackOff") => "trying and failing to pull image".to_owned(),
        Some(reason) => reason.to_owned(),
        None => "ContainerCreating".to_owned(),
    }
}

/// Appends output to one container run. Dropping it closes the run: `follow` readers reach the end.
pub struct LogWriter {
    run: Arc<LogRun>,
}

impl LogWriter {
    /// Appends one line (with its `\n`) or, for an over-long line or the last bytes before the end,
    /// a part of one.
    pub fn append(&self, text: Bytes) {
        if text.is_empty() {
            return;
        }
        self.run.buffer.lock().push(Utc::now(), text);
        self.run.changed.notify_waiters();
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.run.close();
    }
}

/// The output of one container run.
struct LogRun {
    buffer: Mutex<RunBuffer>,
    /// Wakes `follow` readers after each append and on close.
    changed: Notify,
}

impl LogRun {
    fn new(limit_bytes: usize) -> LogRun {
        LogRun {
            buffer: Mutex::new(RunBuffer {
                chunks: VecDeque::new(),
                bytes: 0,
                first_seq: 0,
                at_line_start: true,
                closed: false,
                limit_bytes,
            }),
            changed: Notify::new(),
        }
    }

    fn close(&self) {
        self.buffer.lock().closed = true;
        self.changed.notify_waiters();
    }
}

struct Chunk {
    at: DateTime<Utc>,
    text: Bytes,
    /// Whether this chunk begins a line (only those get a timestamp and count for `tailLines`).
    starts_line: bool,
}

struct RunBuffer {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    /// The sequence number of `chunks[0]`; numbers keep growing as old chunks are dropped.
    first_seq: u64,
    at_line_start: bool,
    closed: bool,
    limit_bytes: usize,
}

impl RunBuffer {
    fn push(&mut self, at: DateTime<Utc>, text: Bytes) {
        if self.closed {
            return;
        }
        let starts_line = self.at_line_start;
        self.at_line_start = text.ends_with(b"\n");
        self.bytes += text.len();
        self.chunks.push_back(Chunk {
            at,
            text,
            starts_line,
        });
        while self.bytes > self.limit_bytes && self.chunks.len() > 1 {
            if let Some(dropped) = self.chunks.pop_front() {
                self.bytes -= dropped.text.len();
                self.first_seq += 1;
            }
        }
    }

    fn end_seq(&self) -> u64 {
        self.first_seq + self.chunks.len() as u64
    }

    /// Where a reader starts: the beginning, or the start of the `tail`-th line from the end.
    fn start_seq(&self, tail: Option<usize>) -> u64 {
        let Some(tail) = tail else {
            return self.first_seq;
        };
        if tail == 0 {
            return self.end_seq();
        }
        let mut lines = 0;
        for (index, chunk) in self.chunks.iter().enumerate().rev() {
            if chunk.starts_line {
                lines += 1;
                if lines == tail {
                    return self.first_seq + index as u64;
                }
            }
        }
        self.first_seq
    }

    /// Everything from `seq` on, the sequence number after it, and whether the run is closed.
    fn read_from(&self, seq: u64, timestamps: bool) -> (Bytes, u64, bool) {
        let seq = seq.max(self.first_seq);
        let skip = usize::try_from(seq - self.first_seq).unwrap_or(usize::MAX);
        let mut out = BytesMut::new();
        for chunk in self.chunks.iter().skip(skip) {
            if timestamps && chunk.starts_line {
                out.extend_from_slice(rfc3339_nano(chunk.at).as_bytes());
                out.extend_from_slice(b" ");
            }
            out.extend_from_slice(&chunk.text);
        }
        (out.freeze(), self.end_seq(), self.closed)
    }
}

fn follow(run: Arc<LogRun>, start: u64, timestamps: bool) -> BoxStream<'static, Bytes> {
    async_stream::stream! {
        let mut next = start;
        loop {
            // Registered before reading, so an append between the read and the wait is not missed.
            let changed = run.changed.notified();
            let (chunk, end, closed) = run.buffer.lock().read_from(next, timestamps);
            next = end;
            if !chunk.is_empty() {
                yield chunk;
            }
            if closed {
                break;
            }
            changed.await;
        }
    }
    .boxed()
}

/// Go's `time.RFC3339Nano` in UTC, as the kubelet prefixes log lines: trailing zeros of the fraction
/// are dropped, and so is the fraction when it is zero.
pub fn rfc3339_nano(at: DateTime<Utc>) -> String {
    let base = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = at.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{base}.{}Z", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn query(follow: bool) -> LogQuery {
        LogQuery {
            namespace: "ns".into(),
            pod: "p".into(),
            container: "c".into(),
            follow,
            ..LogQuery::default()
        }
    }

    async fn read_all(stream: BoxStream<'static, Bytes>) -> String {
        let chunks: Vec<Bytes> = stream.collect().await;
        String::from_utf8(chunks.concat()).expect("utf8")
    }

    #[test]
    fn rfc3339_nano_trims_like_go() {
        let at = Utc
            .with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
            .single()
            .expect("time");
        assert_eq!(rfc3339_nano(at), "2024-05-06T07:08:09Z");
        let at = at + chrono::Duration::nanoseconds(120_000_000);
        assert_eq!(rfc3339_nano(at), "2024-05-06T07:08:09.12Z");
        let at = at + chrono::Duration::nanoseconds(7);
        assert_eq!(rfc3339_nano(at), "2024-05-06T07:08:09.120000007Z");
    }

    #[tokio::test]
    async fn not_started_names_the_waiting_reason() {
        let logs = PodLogs::default();
        let err = logs.stream(query(false)).err().expect("error");
        assert_eq!(
            err.to_string(),
            "container \"c\" in pod \"p\" is waiting to start: ContainerCreating"
        );
        logs.set_waiting_reason("ns", "p", "c", "ImagePullBackOff");
        let err = logs.stream(query(false)).err().expect("error");
        assert_eq!(
            err.to_string(),
            "container \"c\" in pod \"p\" is waiting to start: trying and failing to pull image"
        );
    }

    #[tokio::test]
    async fn tail_and_timestamps() {
        let logs = PodLogs::default();
        let writer = logs.start_run("ns", "p", "c");
        for line in ["one\n", "two\n", "thr", "ee\n"] {
            writer.append(Bytes::from(line));
        }
        assert_eq!(
            read_all(logs.stream(query(false)).expect("stream")).await,
            "one\ntwo\nthree\n"
        );
        let tail = LogQuery {
            tail_lines: Some(2),
            ..query(false)
        };
        assert_eq!(
            read_all(logs.stream(tail).expect("stream")).await,
            "two\nthree\n"
        );
        let stamped = LogQuery {
            timestamps: true,
            tail_lines: Some(1),
            ..query(false)
        };
        let text = read_all(logs.stream(stamped).expect("stream")).await;
        let (stamp, rest) = text.split_once(' ').expect("a timestamp");
        assert!(DateTime::parse_from_rfc3339(stamp).is_ok(), "{stamp}");
        assert_eq!(rest, "three\n", "one timestamp per line, not per chunk");
    }

    #[tokio::test]
    async fn previous_run_after_restart() {
        let logs = PodLogs::default();
        let prev = LogQuery {
            previous: true,
            ..query(false)
        };
        logs.start_run("ns", "p", "c")
            .append(Bytes::from("first\n"));
        assert!(matches!(
            logs.stream(prev.clone()),
            Err(LogError::NoPrevious { .. })
        ));
        logs.start_run("ns", "p", "c")
            .append(Bytes::from("second\n"));
        assert_eq!(
            read_all(logs.stream(prev.clone()).expect("stream")).await,
            "first\n"
        );
        assert_eq!(
            read_all(logs.stream(query(false)).expect("stream")).await,
            "second\n"
        );
        // Waiting to restart: like the kubelet, `previous` is the run that just ended.
        logs.mark_restarting("ns", "p", "c");
        assert_eq!(
            read_all(logs.stream(prev).expect("stream")).await,
            "second\n"
        );
    }

    #[tokio::test]
    async fn follow_streams_until_the_writer_closes() {
        let logs = PodLogs::default();
        let writer = logs.start_run("ns", "p", "c");
        writer.append(Bytes::from("a\n"));
        let mut stream = logs.stream(query(true)).expect("stream");
        assert_eq!(stream.next().await.as_deref(), Some(&b"a\n"[..]));
        let late = tokio::spawn(async move {
            writer.append(Bytes::from("b\n"));
            drop(writer);
        });
        let rest: Vec<Bytes> = stream.collect().await;
        assert_eq!(rest.concat(), b"b\n");
        late.await.expect("writer task");
    }

    #[tokio::test]
    async fn removing_the_pod_ends_followers() {
        let logs = PodLogs::default();
        let _writer = logs.start_run("ns", "p", "c");
        let stream = logs.stream(query(true)).expect("stream");
        logs.remove_pod("ns", "p");
        let collected = tokio::time::timeout(std::time::Duration::from_secs(5), read_all(stream))
            .await
            .expect("the stream ends");
        assert_eq!(collected, "");
        assert!(logs.stream(query(false)).is_err());
    }

    #[tokio::test]
    async fn a_run_keeps_only_its_newest_output() {
        let logs = PodLogs::with_run_limit(8);
        let writer = logs.start_run("ns", "p", "c");
        for line in ["aaaa\n", "bbbb\n", "cccc\n"] {
            writer.append(Bytes::from(line));
        }
        assert_eq!(
            read_all(logs.stream(query(false)).expect("stream")).await,
            "cccc\n"
        );
    }
}
