//! One upstream `pods/log?follow=true` per (pod, container), shared by every session that
//! follows it.
//!
//! The first follower of a container opens its [`SharedLog`]: a task that reads the log (reopened
//! where it stopped if cut, [`ContainerLog`]) into a buffer of recent lines, bounded in bytes
//! (`--log-buffer-bytes`). Followers read the buffer at their own pace, each with its own cursor;
//! the reading task never waits for them, so a slow follower stalls no one. A follower that
//! joins when the buffer no longer starts at the beginning of the log, or that falls behind it
//! (its next line was dropped to make room), goes on with its own `pods/log` stream from where
//! it stopped, since every follower gets the whole log. The upstream stream ends when the
//! container does, or is closed when its last follower leaves.
//!
//! Memory: at most `--log-buffer-bytes` per container followed (the number of which is bounded
//! by `--max-streams`), plus [`BATCH`] lines per follower being sent.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use testcluster_api::v1::LogLine;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::container_log::{ContainerLog, Disconnected, LineSink, ReadError};
use crate::informers::Informers;
use crate::resume::Resume;

/// Lines a follower copies out of the buffer at once, so the buffer's lock is held briefly.
const BATCH: usize = 64;
/// What a buffered line costs besides its text (the line, its timestamp, the queue's slot), in
/// bytes; counted so that a log of empty lines is bounded too.
const LINE_OVERHEAD: usize = 64;

/// The shared logs open now, by container.
pub struct SharedLogs {
    client: Client,
    informers: Informers,
    buffer_bytes: usize,
    open: Mutex<HashMap<LogKey, Weak<SharedLog>>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LogKey {
    namespace: String,
    pod: String,
    container: String,
}

impl LogKey {
    fn new(namespace: &str, pod: &str, container: &str) -> LogKey {
        LogKey {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
        }
    }
}

/// One container's log, read once for all its followers. Dropped with its last follower, which
/// stops the reading task.
struct SharedLog {
    buffer: watch::Receiver<LogBuffer>,
    reading: AbortHandle,
}

impl Drop for SharedLog {
    fn drop(&mut self) {
        self.reading.abort();
    }
}

/// The most recent lines of a log, numbered from 0 at the start of the log.
struct LogBuffer {
    lines: VecDeque<LogLine>,
    /// Number of the first line in `lines`: 0 while the buffer holds the log from its start.
    first: u64,
    /// Estimated size of `lines`, kept at most `limit`.
    bytes: usize,
    limit: usize,
    /// Set once nothing more will come.
    end: Option<LogEnd>,
}

#[derive(Clone)]
enum LogEnd {
    /// The whole log was read.
    Complete,
    /// Reading failed; the message says why.
    Failed(String),
}

impl LogBuffer {
    fn push(&mut self, line: LogLine) {
        self.bytes += size(&line);
        self.lines.push_back(line);
        while self.bytes > self.limit {
            let Some(dropped) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= size(&dropped);
            self.first += 1;
        }
    }

    /// What a follower whose next line is number `next` does now.
    fn step(&self, next: u64) -> Step {
        if next < self.first {
            return Step::Behind;
        }
        let offset = usize::try_from(next - self.first).unwrap_or(usize::MAX);
        if offset < self.lines.len() {
            return Step::Send(self.lines.range(offset..).take(BATCH).cloned().collect());
        }
        match &self.end {
            None => Step::Wait,
            Some(end) => Step::End(end.clone()),
        }
    }
}

fn size(line: &LogLine) -> usize {
    line.text.len() + LINE_OVERHEAD
}

/// What a follower of a shared log does next.
enum Step {
    Send(Vec<LogLine>),
    Wait,
    /// Its next line is no longer in the buffer.
    Behind,
    End(LogEnd),
}

/// Feeds a shared log's buffer; never waits.
struct BufferSink<'a>(&'a watch::Sender<LogBuffer>);

impl LineSink for BufferSink<'_> {
    async fn accept(&mut self, line: LogLine) -> Result<(), Disconnected> {
        self.0.send_modify(|buffer| buffer.push(line));
        Ok(())
    }
}

impl SharedLogs {
    /// `buffer_bytes`: the most each shared log buffers.
    pub fn new(client: Client, informers: Informers, buffer_bytes: usize) -> SharedLogs {
        SharedLogs {
            client,
            informers,
            buffer_bytes,
            open: Mutex::default(),
        }
    }

    /// Hands every line of the followed log of `container` of `namespace/pod` to `sink`, from the
    /// start, until the log ends; through the shared log as long as `sink` keeps up with it.
    pub async fn follow(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        sink: &mut impl LineSink,
    ) -> Result<(), ReadError> {
        let key = LogKey::new(namespace, pod, container);
        let shared = self.join(&key);
        let mut buffer = shared.buffer.clone();
        let mut resume = Resume::default();
        let mut next = 0u64;
        loop {
            let step = buffer.borrow_and_update().step(next);
            match step {
                Step::Send(lines) => {
                    for line in lines {
                        next += 1;
                        resume.sent(&line);
                        sink.accept(line).await?;
                    }
                }
                Step::Wait => {
                    if buffer.changed().await.is_err() && buffer.borrow().end.is_none() {
                        // The reading task always sets `end`; it stopped without (a panic).
                        return Err(ReadError::Shared("the log stopped".to_owned()));
                    }
                }
                Step::End(LogEnd::Complete) => return Ok(()),
                Step::End(LogEnd::Failed(error)) => return Err(ReadError::Shared(error)),
                Step::Behind => break,
            }
        }
        // Let go of the shared log before reading on alone: it may be the last follower.
        drop(shared);
        tracing::debug!(
            namespace,
            pod,
            container,
            lines = next,
            "behind the shared log; reading alone"
        );
        self.container_log(&key, true).read(&mut resume, sink).await
    }

    /// Reads the log of `container` of `namespace/pod` as it is now, into `sink`.
    pub async fn snapshot(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        sink: &mut impl LineSink,
    ) -> Result<(), ReadError> {
        let key = LogKey::new(namespace, pod, container);
        self.container_log(&key, false)
            .read(&mut Resume::default(), sink)
            .await
    }

    fn container_log<'a>(&'a self, key: &'a LogKey, follow: bool) -> ContainerLog<'a> {
        ContainerLog {
            pods: Api::<Pod>::namespaced(self.client.clone(), &key.namespace),
            namespace: &key.namespace,
            pod: &key.pod,
            container: &key.container,
            follow,
            informers: &self.informers,
        }
    }

    /// The shared log of `key`, opened if no one follows it now.
    fn join(&self, key: &LogKey) -> Arc<SharedLog> {
        // Poisoned only if a panic hit while the map was held; the map is still consistent.
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = open.get(key).and_then(Weak::upgrade) {
            return shared;
        }
        // Forget the logs whose followers all left, so the map stays as small as what is open.
        open.retain(|_, log| log.strong_count() > 0);
        let shared = Arc::new(self.open_log(key.clone()));
        open.insert(key.clone(), Arc::downgrade(&shared));
        shared
    }

    /// Starts reading `key`'s log into a new buffer.
    fn open_log(&self, key: LogKey) -> SharedLog {
        let (sender, buffer) = watch::channel(LogBuffer {
            lines: VecDeque::new(),
            first: 0,
            bytes: 0,
            limit: self.buffer_bytes,
            end: None,
        });
        let (client, informers) = (self.client.clone(), self.informers.clone());
        let reading = tokio::spawn(async move {
            let log = ContainerLog {
                pods: Api::namespaced(client, &key.namespace),
                namespace: &key.namespace,
                pod: &key.pod,
                container: &key.container,
                follow: true,
                informers: &informers,
            };
            let read = log
                .read(&mut Resume::default(), &mut BufferSink(&sender))
                .await;
            let end = match read {
                Ok(()) => LogEnd::Complete,
                Err(error) => LogEnd::Failed(error.to_string()),
            };
            sender.send_modify(|buffer| buffer.end = Some(end));
        });
        SharedLog {
            buffer,
            reading: reading.abort_handle(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine {
            text: text.to_owned(),
            ..LogLine::default()
        }
    }

    fn texts(step: Step) -> Vec<String> {
        match step {
            Step::Send(lines) => lines.into_iter().map(|l| l.text).collect(),
            _ => panic!("expected lines"),
        }
    }

    fn buffer(limit: usize) -> LogBuffer {
        LogBuffer {
            lines: VecDeque::new(),
            first: 0,
            bytes: 0,
            limit,
            end: None,
        }
    }

    #[test]
    fn followers_read_from_their_own_cursor() {
        let mut buffer = buffer(1024);
        for text in ["a", "b", "c"] {
            buffer.push(line(text));
        }
        assert_eq!(texts(buffer.step(0)), ["a", "b", "c"]);
        assert_eq!(texts(buffer.step(2)), ["c"]);
        assert!(matches!(buffer.step(3), Step::Wait));
        buffer.end = Some(LogEnd::Complete);
        assert!(matches!(buffer.step(3), Step::End(LogEnd::Complete)));
    }

    #[test]
    fn the_buffer_drops_its_oldest_lines_past_its_limit() {
        // Room for two one-byte lines.
        let mut buffer = buffer(2 * (1 + LINE_OVERHEAD));
        for text in ["a", "b", "c"] {
            buffer.push(line(text));
        }
        assert_eq!((buffer.first, buffer.lines.len()), (1, 2));
        assert!(buffer.bytes <= buffer.limit);
        assert!(matches!(buffer.step(0), Step::Behind));
        assert_eq!(texts(buffer.step(1)), ["b", "c"]);
    }

    #[test]
    fn a_batch_is_bounded() {
        let mut buffer = buffer(usize::MAX);
        for n in 0..BATCH + 10 {
            buffer.push(line(&n.to_string()));
        }
        assert_eq!(texts(buffer.step(0)).len(), BATCH);
        assert_eq!(texts(buffer.step(BATCH as u64)).len(), 10);
    }
}
