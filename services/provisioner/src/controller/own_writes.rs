//! What this process wrote to owned objects that its stores may not show yet.
//!
//! A watch shows a write some time after it returns: milliseconds when idle, seconds under load.
//! A reconcile in between would take an object just applied for missing (and apply it again, or,
//! once the run has started, read it live) and an object just deleted for still there (and delete
//! it again). (Status writes are fenced by `testcluster_service::stale_reads`.) Remembering this process's own writes per `TestClusterGKE` (by uid) until the store
//! catches up answers those questions without asking the API server.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::core::DynamicObject;
use parking_lot::Mutex;

#[derive(Debug, Default)]
pub(super) struct OwnWrites(Mutex<HashMap<String, Written>>);

#[derive(Debug, Default)]
struct Written {
    /// Objects applied (by kind), as the apply returned them, that the store has not shown yet.
    applied: HashMap<&'static str, Arc<DynamicObject>>,
    /// Uids of objects whose deletion this process started.
    deleting: HashSet<String>,
    /// The generation of the `TestClusterGKE` whose objects this process applied last.
    generation: Option<i64>,
}

impl Written {
    fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.deleting.is_empty() && self.generation.is_none()
    }
}

impl OwnWrites {
    /// Records something about `owner`.
    fn record(&self, owner: &str, f: impl FnOnce(&mut Written)) {
        let mut writes = self.0.lock();
        f(writes.entry(owner.to_owned()).or_default());
    }

    /// Reads what is recorded about `owner`, if anything, and drops an entry left empty, so that
    /// looking does not keep anything alive.
    fn look<T: Default>(&self, owner: &str, f: impl FnOnce(&mut Written) -> T) -> T {
        let mut writes = self.0.lock();
        let Some(written) = writes.get_mut(owner) else {
            return T::default();
        };
        let answer = f(written);
        if written.is_empty() {
            writes.remove(owner);
        }
        answer
    }

    /// `object` of `kind` was just applied for `owner`.
    pub(super) fn applied(&self, owner: &str, kind: &'static str, object: Arc<DynamicObject>) {
        self.record(owner, |w| {
            w.applied.insert(kind, object);
        });
    }

    /// The store answers for `owner`'s object of `kind` from now on: it shows the object, or the
    /// object is known to be gone.
    pub(super) fn settled(&self, owner: &str, kind: &'static str) {
        self.look(owner, |w| {
            w.applied.remove(kind);
        });
    }

    /// `owner`'s object of `kind` as this process applied it, while the store does not show it.
    pub(super) fn unseen(&self, owner: &str, kind: &'static str) -> Option<Arc<DynamicObject>> {
        self.look(owner, |w| w.applied.get(kind).cloned())
    }

    pub(super) fn start_deleting(&self, owner: &str, uid: String) {
        self.record(owner, |w| {
            w.deleting.insert(uid);
        });
    }

    pub(super) fn is_deleting(&self, owner: &str, uid: &str) -> bool {
        self.look(owner, |w| w.deleting.contains(uid))
    }

    /// The objects of `owner`'s `generation` were applied.
    pub(super) fn applied_generation(&self, owner: &str, generation: Option<i64>) {
        self.record(owner, |w| w.generation = generation);
    }

    /// Whether this process applied the objects of `owner`'s `generation` already (its status
    /// may not say so yet).
    pub(super) fn has_applied_generation(&self, owner: &str, generation: Option<i64>) -> bool {
        self.look(owner, |w| {
            generation.is_some() && w.generation == generation
        })
    }

    /// `owner` is torn down: nothing of it is left to remember.
    pub(super) fn forget(&self, owner: &str) {
        self.0.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_applied_object_is_remembered_until_the_store_shows_it() {
        let writes = OwnWrites::default();
        let object = Arc::new(DynamicObject {
            types: None,
            metadata: Default::default(),
            data: serde_json::json!({}),
        });
        writes.applied("uid-1", "ContainerCluster", object);
        assert!(writes.unseen("uid-1", "ContainerCluster").is_some());
        assert!(writes.unseen("uid-2", "ContainerCluster").is_none());
        writes.settled("uid-1", "ContainerCluster");
        assert!(writes.unseen("uid-1", "ContainerCluster").is_none());
        assert!(writes.0.lock().is_empty(), "looking keeps nothing alive");

        writes.applied_generation("uid-1", Some(2));
        assert!(writes.has_applied_generation("uid-1", Some(2)));
        assert!(!writes.has_applied_generation("uid-1", Some(3)));
        assert!(!writes.has_applied_generation("uid-1", None));

        writes.start_deleting("uid-1", "object-uid".to_owned());
        assert!(writes.is_deleting("uid-1", "object-uid"));
        writes.forget("uid-1");
        assert!(!writes.is_deleting("uid-1", "object-uid"));
        assert!(writes.0.lock().is_empty(), "nothing kept");
    }
}
