//! The broker's one informer on `TestClusterGKE`: a kube-rs reflector over all namespaces whose
//! store answers Get and List and whose changes are fanned out in-process to every Watch stream
//! (`fanout`), after the shape of kube's `broadcast_reflector` example. However many clients read
//! or watch, the API server sees one list and one watch (re-established when it ends).
//!
//! The store can lag the API server by a watch event's delay, and is empty until its first list.
//! Callers that must not be answered from a stale or missing entry (the object a client just
//! created, a version it asks for) wait here for the reflector, boundedly, and then ask the API
//! server directly: a miss never becomes NOT_FOUND on the cache's word alone.

mod fanout;
pub mod version;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use testcluster_resources::TestClusterGKE;
use testcluster_service::stores_ready::StoresReady;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

pub use fanout::{Change, Subscription, change_version};

use fanout::Fanout;
use version::version_of;

/// How long a read waits for the reflector's first list before asking the API server instead.
const READY_WAIT: Duration = Duration::from_secs(2);

/// The shared informer: cheap to clone, one per broker.
#[derive(Clone)]
pub struct ClusterCache {
    store: Store<TestClusterGKE>,
    /// Whether the store holds its first list (for every concurrent read).
    ready: StoresReady,
    fanout: Arc<Fanout>,
}

impl ClusterCache {
    /// Starts the reflector; it runs until `shutdown`. `window` is how many recent changes a
    /// watch may replay from.
    pub fn start(client: kube::Client, window: usize, shutdown: CancellationToken) -> Self {
        let (store, writer) = reflector::store();
        let fanout = Arc::new(Fanout::new(window));
        let ready = StoresReady::all(vec![StoresReady::store(&store)]);
        let cache = ClusterCache {
            store,
            ready,
            fanout,
        };
        let api: Api<TestClusterGKE> = Api::all(client);
        tokio::spawn(cache.clone().reflect(api, writer, shutdown));
        cache
    }

    async fn reflect(
        self,
        api: Api<TestClusterGKE>,
        writer: reflector::store::Writer<TestClusterGKE>,
        shutdown: CancellationToken,
    ) {
        let events = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        futures::pin_mut!(events);
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                () = shutdown.cancelled() => return,
            };
            match event {
                // The store already holds the event: streams that subscribe from here on find it
                // there, and those subscribed before get it from their channel.
                Some(Ok(event)) => self.dispatch(event),
                Some(Err(error)) => {
                    // The watcher retries with backoff; reads meanwhile come from the store.
                    tracing::warn!(%error, "TestClusterGKE watch failed; retrying");
                }
                None => return,
            }
        }
    }

    fn dispatch(&self, event: watcher::Event<TestClusterGKE>) {
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                self.send(Arc::new(object), Change::Applied)
            }
            watcher::Event::Delete(object) => self.send(Arc::new(object), Change::Deleted),
            watcher::Event::Init => self.fanout.relisting(),
            watcher::Event::InitDone => self.fanout.relisted(&self.store),
        }
    }

    fn send(&self, object: Arc<TestClusterGKE>, change: fn(Arc<TestClusterGKE>) -> Change) {
        let version = version_of(&object).unwrap_or(0);
        let key = ObjectRef::from_obj(&*object);
        self.fanout.dispatch(key, version, change(object));
    }

    /// Waits (up to [`READY_WAIT`]) for the reflector's first list. False when it has not
    /// finished: the caller then asks the API server.
    pub async fn ready(&self) -> bool {
        tokio::time::timeout(READY_WAIT, self.ready.wait())
            .await
            .unwrap_or(false)
    }

    /// The object in the store, if there.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<TestClusterGKE>> {
        self.store.get(&key(namespace, name))
    }

    /// Everything in the store.
    pub fn all(&self) -> Vec<Arc<TestClusterGKE>> {
        self.store.state()
    }

    /// Subscribes to one object's changes (see [`Subscription`]).
    pub fn subscribe(&self, namespace: &str, name: &str, since: Option<u64>) -> Subscription {
        self.fanout
            .subscribe(&key(namespace, name), &self.store, since)
    }

    /// Waits until the reflector has delivered `version` of any test cluster, up to `timeout`.
    pub async fn wait_seen(&self, version: u64, timeout: Duration) -> bool {
        self.fanout.wait_seen(version, timeout).await
    }

    /// Waits until the store no longer holds `namespace/name`, up to `timeout`.
    pub async fn wait_gone(&self, namespace: &str, name: &str, timeout: Duration) -> bool {
        let mut subscription = self.subscribe(namespace, name, None);
        if subscription.current.is_none() {
            return true;
        }
        let gone = async {
            loop {
                match subscription.recv().await {
                    Ok(Change::Deleted(_) | Change::Vanished) => return true,
                    Ok(Change::Applied(_)) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return false,
                }
            }
        };
        tokio::time::timeout(timeout, gone).await.unwrap_or(false)
    }
}

fn key(namespace: &str, name: &str) -> ObjectRef<TestClusterGKE> {
    ObjectRef::new(name).within(namespace)
}
