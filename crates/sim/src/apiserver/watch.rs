//! Watch streams: newline-separated JSON events, from a snapshot or a resourceVersion, filtered by
//! namespace and selectors (objects that stop matching are reported DELETED), with bookmarks.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::errors::ApiError;
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::server::ServerState;
use super::store::{Change, EventType};
use super::table;

const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

pub struct WatchRequest {
    pub rt: ResourceType,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// Resume after this resourceVersion; `None` starts with ADDED events for what exists.
    pub from: Option<u64>,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub as_table: bool,
    /// Injected faults apply (not an internal client).
    pub faultable: bool,
}

impl WatchRequest {
    fn matches(&self, object: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| object["metadata"]["namespace"].as_str() == Some(ns))
            && self.labels.matches(object)
            && self.fields.matches(object)
    }

    fn event(&self, kind: &str, object: &Value) -> Bytes {
        #[derive(Serialize)]
        struct Event<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            object: &'a Value,
        }
        let body = if self.as_table {
            serde_json::to_vec(&Event {
                kind,
                object: &table::render(&self.rt, &[Arc::new(object.clone())], json!({})),
            })
        } else {
            serde_json::to_vec(&Event { kind, object })
        };
        let mut body = body.unwrap_or_default();
        body.push(b'\n');
        Bytes::from(body)
    }

    /// The event a change means to this watch, if any.
    fn translate(&self, change: &Change) -> Option<Bytes> {
        let now = self.matches(&change.object);
        let before = change.previous.as_deref().map(|p| self.matches(p));
        let kind = match (change.event, before, now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Deleted, _, true) => EventType::Deleted,
            (EventType::Modified, Some(true), true) => EventType::Modified,
            (EventType::Modified, Some(false), true) => EventType::Added,
            (EventType::Modified, Some(true), false) => EventType::Deleted,
            _ => return None,
        };
        Some(self.event(kind.as_str(), &change.object))
    }

    fn bookmark(&self, rv: u64) -> Bytes {
        let object = json!({
            "kind": self.rt.kind,
            "apiVersion": self.rt.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
        });
        self.event("BOOKMARK", &object)
    }
}

pub fn stream(
    state: Arc<ServerState>,
    request: WatchRequest,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    async_stream::stream! {
        let start = match state.store.watch(&request.rt.storage_key(), request.from) {
            Ok(start) => start,
            Err(oldest) => {
                let from = request.from.unwrap_or_default();
                let gone = ApiError::gone(format!("too old resource version: {from} ({oldest})"));
                yield Ok(request.event("ERROR", &gone.status()));
                return;
            }
        };
        let flaky = request.faultable && state.faults.flaky_watches();
        let mut dropped = state.faults.dropped_watches();
        let mut last_rv = start.rv;
        for object in start.snapshot.iter().filter(|o| request.matches(o)) {
            yield Ok(request.event("ADDED", object));
            if flaky { return; }
        }
        for change in &start.backlog {
            last_rv = change.rv;
            if let Some(event) = request.translate(change) {
                yield Ok(event);
                if flaky { return; }
            }
        }
        let mut live = start.live;
        let deadline = tokio::time::sleep(request.timeout);
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(BOOKMARK_INTERVAL);
        bookmark.tick().await;
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(change) => {
                        if change.rv <= last_rv {
                            continue; // already sent from the backlog
                        }
                        last_rv = change.rv;
                        if let Some(event) = request.translate(&change) {
                            yield Ok(event);
                            if flaky { return; }
                        }
                    }
                    // Fell too far behind, or the table is gone: the client resumes.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return,
                },
                _ = bookmark.tick(), if request.bookmarks => yield Ok(request.bookmark(last_rv)),
                _ = dropped.changed(), if request.faultable => return,
                () = &mut deadline => return,
                () = state.shutdown.cancelled() => return,
            }
        }
    }
}
