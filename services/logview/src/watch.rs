//! A watch that answers "what is there now?" after every change: a kube-runtime watcher feeding
//! a reflector store. Every wait in a log session is one of these, never a poll.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

/// Objects matching one watch, as of the latest change.
pub struct Watched<K: kube::Resource + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    reader: Store<K>,
    events: BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
}

impl<K> Watched<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts watching `api` with `config` (a name or label selector).
    pub fn new(api: Api<K>, config: watcher::Config) -> Watched<K> {
        let (reader, writer) = reflector::store();
        let events = reflector::reflector(writer, watcher(api, config).default_backoff()).boxed();
        Watched { reader, events }
    }

    /// Waits for the next change (the first call: the initial list) and returns the objects now.
    /// `None` if the watch ended, which a backed-off watcher does not do on its own.
    pub async fn changed(&mut self) -> Option<Vec<Arc<K>>> {
        while let Some(event) = self.events.next().await {
            match event {
                // The initial list is complete only at InitDone; answering earlier would report
                // a partial (and so wrong) picture.
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Ok(_) => return Some(self.reader.state()),
                // The watcher retries with back-off; the caller's own bounds (client gone, run
                // over) end the wait.
                Err(error) => tracing::debug!(%error, "watch error, retrying"),
            }
        }
        None
    }
}
