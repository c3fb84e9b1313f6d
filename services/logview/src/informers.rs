//! The two informers every session reads, started once with the process: one reflector over
//! every `TestClusterGKE` and one over the runner's job pods (the test cluster's label from the
//! runner's pod template, and the `job-name` label the Job controller adds), in all namespaces. Any number of sessions cost the
//! API server one list and one watch of each.
//!
//! Sessions learn of changes through one "something changed" signal (a `watch` channel of `()`:
//! it holds no history, so a session that is busy misses nothing but intermediate states, and
//! costs no memory) and then read what they need from the stores.

use std::pin::pin;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::job_pod::{self, LABEL_JOB_NAME};
use testcluster_resources::metadata::LABEL_TEST_CLUSTER;
use testcluster_service::stores_ready::StoresReady;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Read access to the shared informers; cheap to clone.
#[derive(Clone)]
pub struct Informers {
    test_clusters: Store<TestClusterGKE>,
    pods: Store<Pod>,
    changes: watch::Receiver<()>,
    /// Whether both stores hold their first list (for every concurrent call).
    ready: StoresReady,
}

/// An informer stopped before it listed everything (logview is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("logview's informers stopped before they were in sync")]
pub struct NotSynced;

impl Informers {
    /// Starts both reflectors; they run until `shutdown`.
    pub fn start(client: Client, shutdown: &CancellationToken) -> Informers {
        let (changed, changes) = watch::channel(());
        let changed = Arc::new(changed);
        let test_clusters = reflect(
            Api::all(client.clone()),
            watcher::Config::default(),
            changed.clone(),
            shutdown.clone(),
        );
        let pods = reflect(
            Api::all(client),
            // The runner's job pods only (its pod template carries the test cluster's label):
            // other Jobs in the management cluster cost nothing here.
            watcher::Config::default().labels(&format!("{LABEL_TEST_CLUSTER},{LABEL_JOB_NAME}")),
            changed,
            shutdown.clone(),
        );
        let ready = StoresReady::all(vec![
            StoresReady::store(&test_clusters),
            StoresReady::store(&pods),
        ]);
        Informers {
            test_clusters,
            pods,
            changes,
            ready,
        }
    }

    /// Waits until both stores hold a complete first list.
    pub async fn ready(&self) -> Result<(), NotSynced> {
        if self.ready.wait().await {
            Ok(())
        } else {
            Err(NotSynced)
        }
    }

    /// A receiver that wakes on every change of either store after it was created (or last
    /// marked seen). Mark it seen *before* reading the stores, so no change slips in between.
    pub fn changes(&self) -> watch::Receiver<()> {
        self.changes.clone()
    }

    /// The test cluster `namespace/name`, as the informer has it.
    pub fn test_cluster(&self, namespace: &str, name: &str) -> Option<Arc<TestClusterGKE>> {
        self.test_clusters
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// The pod `namespace/name`, if it is a job pod the informer has.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods.get(&ObjectRef::new(name).within(namespace))
    }

    /// The pods of the Job of test cluster `namespace/name`.
    pub fn job_pods(&self, namespace: &str, name: &str) -> Vec<Arc<Pod>> {
        let job = job_pod::job_name(name);
        self.pods.state_filter(|pod| {
            pod.metadata.namespace.as_deref() == Some(namespace)
                && pod.labels().get(LABEL_JOB_NAME) == Some(&job)
        })
    }
}

/// Runs a reflector over `api` in a task until `shutdown`, signalling `changed` after each change
/// of its store; returns the store.
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: Arc<watch::Sender<()>>,
    shutdown: CancellationToken,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + Send + Sync,
    K: 'static,
{
    let (store, writer) = reflector::store();
    // Managed fields are never read here and can be most of an object's size.
    let events = watcher(api, config)
        .default_backoff()
        .modify(|object: &mut K| object.managed_fields_mut().clear());
    let events = reflector::reflector(writer, events);
    tokio::spawn(async move {
        let mut events = pin!(events);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => break,
                event = events.next() => event,
            };
            match event {
                // The store is replaced at InitDone; until then it still shows the last list.
                Some(Ok(watcher::Event::Init | watcher::Event::InitApply(_))) => {}
                Some(Ok(_)) => {
                    changed.send_replace(());
                }
                // The watcher retries with back-off; sessions keep the last state meanwhile.
                Some(Err(error)) => {
                    tracing::warn!(kind = %K::kind(&()), %error, "watch error; retrying")
                }
                None => break,
            }
        }
    });
    store
}
