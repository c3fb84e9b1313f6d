//! Telling a store that lags behind a controller's own write from fresh data.
//!
//! A controller writes an object's status on condition of the version it decided from
//! (`metadata.resourceVersion`), and its watch shows the write a little later: milliseconds when
//! idle, seconds under load. Other triggers (an owned object changed) arrive in between and bring
//! the object at the version the write was based on. Deciding again on it would only repeat the
//! write and lose the race (409). [`PendingWrites`] remembers, per object, the version each successful
//! write was based on; a reconcile that sees that version again can wait for the write's own watch
//! event, which is certain to come.

use std::collections::HashMap;

use parking_lot::Mutex;

/// The version each object's last write was based on, kept until a newer version is seen (a
/// store moves only forward), so memory follows the writes in flight.
#[derive(Debug, Default)]
pub struct PendingWrites(Mutex<HashMap<String, String>>);

impl PendingWrites {
    /// A write to `key` (such as `namespace/name`), decided from `based_on`, succeeded.
    pub fn wrote(&self, key: &str, based_on: Option<&str>) {
        if let Some(version) = based_on {
            self.0.lock().insert(key.to_owned(), version.to_owned());
        }
    }

    /// Whether `seen` (a store's version of `key`) is the version this process's last write was
    /// based on: the store has not shown that write yet.
    pub fn is_stale(&self, key: &str, seen: Option<&str>) -> bool {
        let mut written = self.0.lock();
        let stale = written.get(key).map(String::as_str) == seen && seen.is_some();
        if !stale {
            written.remove(key);
        }
        stale
    }

    /// Forgets `key`: it is gone.
    pub fn forget(&self, key: &str) {
        self.0.lock().remove(key);
    }

    /// How many writes are not seen yet.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_stale_until_a_newer_one_is_seen() {
        let writes = PendingWrites::default();
        assert!(!writes.is_stale("ns/a", Some("7")), "nothing written");
        writes.wrote("ns/a", Some("7"));
        assert!(writes.is_stale("ns/a", Some("7")));
        assert!(!writes.is_stale("ns/b", Some("7")), "per object");
        assert!(!writes.is_stale("ns/a", Some("8")), "the store caught up");
        assert!(
            !writes.is_stale("ns/a", Some("7")),
            "and stores never go back"
        );
        assert!(writes.is_empty(), "nothing kept once seen");

        writes.wrote("ns/a", None);
        assert!(
            writes.is_empty(),
            "an object that never came from the API server"
        );
        writes.wrote("ns/a", Some("9"));
        writes.forget("ns/a");
        assert!(writes.is_empty());
    }
}
