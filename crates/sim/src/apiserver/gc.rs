//! The garbage collector and the namespace controller.
//!
//! Woken by every deletion, a sweep: deletes objects whose owners are all gone (background
//! propagation), finishes foreground deletions once no dependents remain, orphans dependents of
//! objects deleted with `propagationPolicy: Orphan`, and empties terminating namespaces before
//! removing them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::objects::{self, DeleteOptions, Propagation};
use super::resources::ResourceType;
use super::server::ServerState;

pub fn spawn(state: Arc<ServerState>) {
    let Some(mut deletions) = state.store.take_deletions() else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                Some(_) = deletions.recv() => {
                    while deletions.try_recv().is_ok() {}
                }
                () = state.gc_wake.notified() => {}
            }
            sweep(&state);
        }
    });
}

struct Entry {
    /// Shared by all entries of a table: a CRD's type carries its whole schema.
    rt: Arc<ResourceType>,
    object: Arc<Value>,
}

impl Entry {
    fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
    fn uid(&self) -> &str {
        self.object["metadata"]["uid"].as_str().unwrap_or_default()
    }
    fn deleting(&self) -> bool {
        self.object["metadata"]["deletionTimestamp"].is_string()
    }
    fn has_finalizer(&self, finalizer: &str) -> bool {
        self.object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == finalizer))
    }
    fn owners(&self) -> Vec<&str> {
        self.object["metadata"]["ownerReferences"]
            .as_array()
            .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str()).collect())
            .unwrap_or_default()
    }
}

fn snapshot(state: &ServerState) -> Vec<Entry> {
    let mut by_key: HashMap<String, Arc<ResourceType>> = HashMap::new();
    for rt in state.resources.all() {
        by_key
            .entry(rt.storage_key())
            .or_insert_with(|| Arc::new(rt));
    }
    let mut entries = Vec::new();
    for table in state.store.tables() {
        let Some(rt) = by_key.get(&table) else {
            continue;
        };
        let (objects, _) = state.store.list(&table, None);
        entries.extend(objects.into_iter().map(|object| Entry {
            rt: rt.clone(),
            object,
        }));
    }
    entries
}

fn sweep(state: &ServerState) {
    let entries = snapshot(state);
    let uids: HashSet<&str> = entries.iter().map(Entry::uid).collect();
    let mut dependents: HashMap<&str, Vec<&Entry>> = HashMap::new();
    for entry in &entries {
        for owner in entry.owners() {
            dependents.entry(owner).or_default().push(entry);
        }
    }
    let background = DeleteOptions {
        propagation: Some(Propagation::Background),
        ..DeleteOptions::default()
    };
    let log = |what: &str, entry: &Entry, result: Result<_, super::ApiError>| {
        if let Err(error) = result
            && error.code != 404
        {
            tracing::debug!(%error, kind = %entry.rt.kind, name = entry.name(), "garbage collector: {what}");
        }
    };

    for entry in &entries {
        let owners = entry.owners();
        if !owners.is_empty() && !entry.deleting() && owners.iter().all(|o| !uids.contains(o)) {
            log(
                "delete orphaned dependent",
                entry,
                objects::delete(
                    state,
                    &entry.rt,
                    entry.namespace(),
                    entry.name(),
                    &background,
                )
                .map(|_| ()),
            );
        }
        if !entry.deleting() {
            continue;
        }
        let mine = dependents
            .get(entry.uid())
            .map(Vec::as_slice)
            .unwrap_or_default();
        if entry.has_finalizer("foregroundDeletion") {
            let foreground = DeleteOptions {
                propagation: Some(Propagation::Foreground),
                ..DeleteOptions::default()
            };
            for dependent in mine.iter().filter(|d| !d.deleting()) {
                log(
                    "delete dependent",
                    dependent,
                    objects::delete(
                        state,
                        &dependent.rt,
                        dependent.namespace(),
                        dependent.name(),
                        &foreground,
                    )
                    .map(|_| ()),
                );
            }
            if mine.is_empty() {
                log(
                    "finish foreground deletion",
                    entry,
                    drop_finalizer(state, entry, "foregroundDeletion"),
                );
            }
        }
        if entry.has_finalizer("orphan") {
            for dependent in mine {
                let uid = entry.uid().to_owned();
                log(
                    "orphan dependent",
                    dependent,
                    edit(state, dependent, move |object| {
                        if let Some(refs) = object["metadata"]["ownerReferences"].as_array_mut() {
                            refs.retain(|r| r["uid"].as_str() != Some(uid.as_str()));
                        }
                    }),
                );
            }
            log(
                "finish orphaning",
                entry,
                drop_finalizer(state, entry, "orphan"),
            );
        }
        if entry.rt.plural == "namespaces" && entry.rt.group.is_empty() {
            finish_namespace(state, entry, &entries, &background);
        }
    }
}

fn finish_namespace(
    state: &ServerState,
    namespace: &Entry,
    entries: &[Entry],
    background: &DeleteOptions,
) {
    let name = namespace.name();
    let contents: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.rt.namespaced && e.namespace() == name)
        .collect();
    for entry in contents.iter().filter(|e| !e.deleting()) {
        if let Err(error) = objects::delete(
            state,
            &entry.rt,
            entry.namespace(),
            entry.name(),
            background,
        ) {
            tracing::debug!(%error, "namespace controller: delete");
        }
    }
    if contents.is_empty() {
        let result = edit(state, namespace, |object| {
            object["spec"]["finalizers"] = json!([]);
        })
        .and_then(
            |()| match namespace.object["metadata"]["finalizers"].as_array() {
                Some(f) if !f.is_empty() => Ok(()),
                _ => objects::remove(state, &namespace.rt, "", name).map(|_| ()),
            },
        );
        if let Err(error) = result
            && error.code != 404
        {
            tracing::debug!(%error, "namespace controller: finish");
        }
    }
}

fn drop_finalizer(
    state: &ServerState,
    entry: &Entry,
    finalizer: &str,
) -> Result<(), super::ApiError> {
    let finalizer = finalizer.to_owned();
    edit(state, entry, move |object| {
        if let Some(list) = object["metadata"]["finalizers"].as_array_mut() {
            list.retain(|f| f.as_str() != Some(finalizer.as_str()));
        }
    })
}

/// A metadata edit by the controller, through the normal write path (so that an object whose last
/// finalizer goes is removed).
fn edit(
    state: &ServerState,
    entry: &Entry,
    change: impl FnOnce(&mut Value),
) -> Result<(), super::ApiError> {
    let mut next = (*entry.object).clone();
    change(&mut next);
    if next == *entry.object {
        return Ok(());
    }
    let write = objects::Write::Replace(next);
    objects::update(
        state,
        &entry.rt,
        entry.namespace(),
        entry.name(),
        write,
        false,
        objects::Writer::new("garbage-collector"),
    )
    .map(|_| ())
}
