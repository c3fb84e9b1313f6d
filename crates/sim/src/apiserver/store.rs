//! Object storage: one table per resource, a global resourceVersion, and a bounded history of changes
//! per table from which watches resume.
//!
//! Every change happens under one lock, so that resourceVersions are totally ordered and a watch can
//! take "everything up to now" and "everything after" without a gap.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

/// How many changes per table a watch may resume from before it gets 410 Gone. Each change holds
/// the object's old version, so this bounds what a busy table keeps beside its objects; a watcher
/// further behind relists, as against a real API server whose watch cache has moved on.
const HISTORY_LIMIT: usize = 1_000;
/// Live events a slow watcher may fall behind by before its watch is closed (it then resumes from
/// the history). The channel keeps its last this-many changes alive too, so it is no larger than
/// the history.
const LIVE_BUFFER: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug)]
pub struct Change {
    pub event: EventType,
    pub rv: u64,
    pub object: Arc<Value>,
    /// The object before a modification or deletion: selector-filtered watches see objects leave
    /// by it, and an exact list of an earlier resourceVersion rolls back to it.
    pub previous: Option<Arc<Value>>,
}

type ObjectKey = (String, String); // (namespace, name); namespace is "" for cluster-scoped objects

#[derive(Default)]
struct Table {
    objects: BTreeMap<ObjectKey, Arc<Value>>,
    history: VecDeque<Arc<Change>>,
    /// The oldest resourceVersion a watch may resume from.
    compacted_at: u64,
    /// The resourceVersion of the latest change, so that a cache derived from the table knows when
    /// it is stale.
    changed_at: u64,
    live: Option<broadcast::Sender<Arc<Change>>>,
}

impl Table {
    fn publish(&mut self, change: Change) {
        let change = Arc::new(change);
        self.changed_at = change.rv;
        if self.history.len() == HISTORY_LIMIT
            && let Some(dropped) = self.history.pop_front()
        {
            self.compacted_at = dropped.rv;
        }
        self.history.push_back(change.clone());
        if let Some(live) = &self.live {
            // No receivers is fine: nobody watches this table right now.
            let _ = live.send(change);
        }
    }

    fn live(&mut self) -> broadcast::Receiver<Arc<Change>> {
        self.live
            .get_or_insert_with(|| broadcast::channel(LIVE_BUFFER).0)
            .subscribe()
    }
}

struct Inner {
    rv: u64,
    tables: HashMap<String, Table>,
}

impl Inner {
    /// The object stored under `key` in `table`, if any.
    fn object(&self, table: &str, key: &ObjectKey) -> Option<Arc<Value>> {
        self.tables.get(table)?.objects.get(key).cloned()
    }

    /// Advances the global resourceVersion for one more change, and returns it.
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }
}

pub struct Store {
    inner: Mutex<Inner>,
    deleted: mpsc::UnboundedSender<()>,
    deleted_rx: Mutex<Option<mpsc::UnboundedReceiver<()>>>,
}

/// The objects of a store at one resourceVersion.
pub struct StoreSnapshot {
    rv: u64,
    tables: Vec<(String, BTreeMap<ObjectKey, Arc<Value>>)>,
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteError<E> {
    NotFound,
    AlreadyExists,
    Rejected(E),
}

/// What a watch starts from.
pub struct WatchStart {
    /// Objects that exist now, when the watch asked for them (no resourceVersion, or "0").
    pub snapshot: Vec<Arc<Value>>,
    /// Changes after the requested resourceVersion that already happened.
    pub backlog: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Arc<Change>>,
    pub rv: u64,
}

impl Store {
    pub fn new() -> Self {
        let (deleted, deleted_rx) = mpsc::unbounded_channel();
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                tables: HashMap::new(),
            }),
            deleted,
            deleted_rx: Mutex::new(Some(deleted_rx)),
        }
    }

    /// One signal per deletion; there is one receiver, the garbage collector.
    pub fn take_deletions(&self) -> Option<mpsc::UnboundedReceiver<()>> {
        self.deleted_rx.lock().take()
    }

    pub fn current_rv(&self) -> u64 {
        self.inner.lock().rv
    }

    pub fn get(&self, table: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.inner
            .lock()
            .object(table, &(namespace.to_owned(), name.to_owned()))
    }

    /// All objects of a table (in one namespace, or all), in (namespace, name) order, and the
    /// resourceVersion they are current at.
    pub fn list(&self, table: &str, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.inner.lock();
        let objects = inner
            .tables
            .get(table)
            .map(|t| match namespace {
                Some(ns) => t
                    .objects
                    .range((ns.to_owned(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, o)| o.clone())
                    .collect(),
                None => t.objects.values().cloned().collect(),
            })
            .unwrap_or_default();
        (objects, inner.rv)
    }

    /// The resourceVersion of the latest change to each of `tables` (0 for a table never written),
    /// read at one instant.
    pub fn last_changes<const N: usize>(&self, tables: [&str; N]) -> [u64; N] {
        let inner = self.inner.lock();
        tables.map(|table| inner.tables.get(table).map_or(0, |t| t.changed_at))
    }

    /// Names of the tables that hold at least one object.
    pub fn tables(&self) -> Vec<String> {
        let inner = self.inner.lock();
        inner
            .tables
            .iter()
            .filter(|(_, t)| !t.objects.is_empty())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Stores a new object, stamping its resourceVersion.
    pub fn create<E>(&self, table: &str, mut object: Value) -> Result<Arc<Value>, WriteError<E>> {
        let key = object_key(&object);
        let mut inner = self.inner.lock();
        let rv = inner.next_rv();
        let t = inner.tables.entry(table.to_owned()).or_default();
        if t.objects.contains_key(&key) {
            return Err(WriteError::AlreadyExists);
        }
        object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let object = Arc::new(object);
        t.objects.insert(key, object.clone());
        t.publish(Change {
            event: EventType::Added,
            rv,
            object: object.clone(),
            previous: None,
        });
        Ok(object)
    }

    /// Replaces an object atomically with what `change` makes of the current one. `change` returns
    /// `Ok(None)` to leave the object as it is.
    pub fn update<E>(
        &self,
        table: &str,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&Value) -> Result<Option<Value>, E>,
    ) -> Result<Arc<Value>, WriteError<E>> {
        let key = (namespace.to_owned(), name.to_owned());
        let mut inner = self.inner.lock();
        let current = inner.object(table, &key).ok_or(WriteError::NotFound)?;
        let Some(mut updated) = change(&current).map_err(WriteError::Rejected)? else {
            return Ok(current);
        };
        let rv = inner.next_rv();
        updated["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let updated = Arc::new(updated);
        let t = inner.tables.entry(table.to_owned()).or_default();
        t.objects.insert(key, updated.clone());
        t.publish(Change {
            event: EventType::Modified,
            rv,
            object: updated.clone(),
            previous: Some(current),
        });
        Ok(updated)
    }

    /// Removes an object for good; `check` may refuse (for preconditions).
    pub fn remove<E>(
        &self,
        table: &str,
        namespace: &str,
        name: &str,
        check: impl FnOnce(&Value) -> Result<(), E>,
    ) -> Result<Arc<Value>, WriteError<E>> {
        let key = (namespace.to_owned(), name.to_owned());
        let mut inner = self.inner.lock();
        let current = inner.object(table, &key).ok_or(WriteError::NotFound)?;
        check(&current).map_err(WriteError::Rejected)?;
        let rv = inner.next_rv();
        let t = inner.tables.entry(table.to_owned()).or_default();
        t.objects.remove(&key);
        let mut gone = (*current).clone();
        gone["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let gone = Arc::new(gone);
        t.publish(Change {
            event: EventType::Deleted,
            rv,
            object: gone.clone(),
            previous: Some(current),
        });
        drop(inner);
        // Wakes the garbage collector: the deleted object may have had dependents.
        let _ = self.deleted.send(());
        Ok(gone)
    }

    /// Drops a whole table (its CRD was deleted).
    pub fn drop_table(&self, table: &str) -> Vec<Arc<Value>> {
        let mut inner = self.inner.lock();
        inner
            .tables
            .remove(table)
            .map(|t| t.objects.into_values().collect())
            .unwrap_or_default()
    }

    /// Starts a watch: `from` is the resourceVersion to resume after, or `None` to start with the
    /// current objects. `Err(oldest)` means `from` is older than the kept history (410 Gone).
    pub fn watch(&self, table: &str, from: Option<u64>) -> Result<WatchStart, u64> {
        let mut inner = self.inner.lock();
        let rv = inner.rv;
        let t = inner.tables.entry(table.to_owned()).or_default();
        let live = t.live();
        match from {
            None => Ok(WatchStart {
                snapshot: t.objects.values().cloned().collect(),
                backlog: Vec::new(),
                live,
                rv,
            }),
            Some(from) if from < t.compacted_at => Err(t.compacted_at),
            Some(from) => Ok(WatchStart {
                snapshot: Vec::new(),
                backlog: t.history.iter().filter(|c| c.rv > from).cloned().collect(),
                live,
                rv,
            }),
        }
    }

    /// The objects of `table` (in `namespace`, or all) as they were at resourceVersion `at`, as
    /// `resourceVersionMatch=Exact` lists them: the current objects with every later change in the
    /// history rolled back. `Err(oldest)` when `at` is older than the kept history (410 Gone).
    pub fn list_at(
        &self,
        table: &str,
        namespace: Option<&str>,
        at: u64,
    ) -> Result<Vec<Arc<Value>>, u64> {
        let inner = self.inner.lock();
        let Some(t) = inner.tables.get(table) else {
            return Ok(Vec::new());
        };
        if at < t.compacted_at {
            return Err(t.compacted_at);
        }
        let mut objects = t.objects.clone();
        for change in t.history.iter().rev().take_while(|c| c.rv > at) {
            let key = object_key(&change.object);
            match (&change.event, &change.previous) {
                (EventType::Added, _) => {
                    objects.remove(&key);
                }
                (_, Some(previous)) => {
                    objects.insert(key, previous.clone());
                }
                (_, None) => {}
            }
        }
        Ok(objects
            .into_iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, object)| object)
            .collect())
    }

    /// Every object, by table, and the resourceVersion they are current at: what
    /// [`Store::restore`] starts another store from.
    pub fn snapshot(&self) -> StoreSnapshot {
        let inner = self.inner.lock();
        StoreSnapshot {
            rv: inner.rv,
            tables: inner
                .tables
                .iter()
                .map(|(name, t)| (name.clone(), t.objects.clone()))
                .collect(),
        }
    }

    /// Starts an empty store from `snapshot`, sharing its objects (they are immutable): what came
    /// before it is compacted history.
    pub fn restore(&self, snapshot: &StoreSnapshot) {
        let mut inner = self.inner.lock();
        inner.rv = inner.rv.max(snapshot.rv);
        for (name, objects) in &snapshot.tables {
            let table = inner.tables.entry(name.clone()).or_default();
            table
                .objects
                .extend(objects.iter().map(|(k, o)| (k.clone(), o.clone())));
            table.changed_at = snapshot.rv;
            table.compacted_at = snapshot.rv;
        }
    }

    /// Forgets all history, as etcd compaction does: any watch resuming from an older
    /// resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.inner.lock();
        let rv = inner.rv;
        for table in inner.tables.values_mut() {
            table.history.clear();
            table.compacted_at = rv;
        }
    }
}

fn object_key(object: &Value) -> ObjectKey {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default().to_owned(),
        meta["name"].as_str().unwrap_or_default().to_owned(),
    )
}
