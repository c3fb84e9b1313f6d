//! The `TestClusterGKE` controller: from a request to Config Connector objects and back to nothing.
//!
//! [`reconcile`] hands each object to kube's `finalizer` helper, which splits the work in two:
//!
//! - [`apply`] converges: validate the spec, assign `status.clusterName` (persisted before anything
//!   is created, so a restart reuses it), render the template, server-side apply its objects with
//!   this CR as their controller, and fold their conditions into `status`. Once the run is over
//!   (a terminal phase), it deletes the objects instead and keeps the CR as the run's record.
//! - [`cleanup`] runs when the CR is deleted: phase Deleting, delete the objects, and keep the
//!   finalizer until Config Connector has let go of every one of them (its own finalizers go only
//!   once the cloud resource is gone).
//!
//! Infrastructure failures end the run: a dependency whose failure [`classify`] recognises (no
//! quota, a zone out of capacity), or dependencies still not ready after
//! [`Settings::provision_timeout`], put the run in phase Error with `status.error`, and the
//! terminal-phase teardown deletes what was created.
//!
//! Nothing here polls: the controller watches the six Config Connector kinds it owns, so every
//! change of a dependency (including its disappearance) re-runs the reconcile of its owner.
//! The same watches feed reflector stores ([`OwnedStores`]), and reconciles read the owned objects
//! from them: the API server sees only writes (apply, delete). A store lags behind this process's
//! own writes, so those are remembered until it catches up ([`OwnWrites`]): an object just
//! applied is not applied again, one just deleted is not deleted again, and a reconcile on a
//! status older than the last write waits for the write's watch event instead of losing a race.
//! Requeue timers are used only to back off after errors and to wake up when the provisioning
//! timeout runs out.

mod error;
mod expiry;
mod naming;
mod own_writes;
mod provision;
mod record;
mod status;
mod stores;
mod teardown;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, ListParams};
use kube::core::DynamicObject;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource as _, ResourceExt as _};
use testcluster_resources::metadata::{GROUP, KIND, VERSION, object_key};
use testcluster_resources::{Phase, TestClusterGKE};
use tokio_util::sync::CancellationToken;

pub use error::Error;
pub use naming::{generate_cluster_name, region_of};
pub use stores::OwnedStores;

use crate::Settings;
use crate::access::AccessIssuer;
use crate::classify;
use crate::template::{OWNED_KINDS, ObjectKind};
use crate::validation;
use own_writes::OwnWrites;
use testcluster_service::retry::Backoffs;
use testcluster_service::stale_reads::PendingWrites;

/// Finalizer that keeps a `TestClusterGKE` until its cloud resources are gone.
pub const FINALIZER: &str = "clusters.ci.cilium.io/provisioner";
/// Field manager of every write, and the reporting controller of Events.
pub const FIELD_MANAGER: &str = "testcluster-provisioner";

/// `Ready` reason for a spec that cannot be provisioned (applied with kubectl, unchecked).
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// `Ready` reason while the run is over and its cloud resources are being deleted.
pub const REASON_DELETING_DEPENDENCIES: &str = "DeletingDependencies";
/// `Ready` reason once the run's cloud resources are all deleted.
pub const REASON_DEPENDENCIES_DELETED: &str = "DependenciesDeleted";
/// `Ready` reason of a run ended by a dependency's failure (`status.error` says which).
pub const REASON_DEPENDENCY_FAILED: &str = "DependencyFailed";
/// `Ready` reason of a run whose dependencies were not ready within the provisioning timeout.
pub const REASON_PROVISIONING_TIMEOUT: &str = classify::CODE_PROVISIONING_TIMEOUT;

/// How long a reconcile waits for more triggers. Reads are store reads now, so without it one
/// change in the cloud that updates several objects at once (dependents leaving
/// DependencyNotReady) would be written to the status piece by piece.
const DEBOUNCE: Duration = Duration::from_millis(5);
/// Retry after a write lost a race (409), should the watch not bring the newer object first.
const CONFLICT_RETRY: Duration = Duration::from_millis(200);

/// What every reconcile needs.
pub struct Context {
    pub client: kube::Client,
    pub settings: Arc<Settings>,
    /// Mints the credentials a ready cluster's job gets.
    access: Arc<AccessIssuer>,
    recorder: Recorder,
    failures: Backoffs,
    owned: OwnedStores,
    /// This process's writes to owned objects that `owned` may not show yet.
    writes: OwnWrites,
    /// This process's status writes that the watch may not show yet.
    status_writes: PendingWrites,
    /// Finished runs by outcome and template.
    runs: crate::metrics::Runs,
}

impl Context {
    pub fn new(
        client: kube::Client,
        settings: Arc<Settings>,
        access: Arc<AccessIssuer>,
        owned: OwnedStores,
        runs: crate::metrics::Runs,
    ) -> Context {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.to_owned(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Context {
            client,
            settings,
            access,
            recorder,
            failures: Backoffs::new(error::RETRY),
            owned,
            writes: OwnWrites::default(),
            status_writes: PendingWrites::default(),
            runs,
        }
    }

    /// Publishes an Event about `tc`. A lost Event is logged, not fatal: it is for humans.
    async fn publish(&self, tc: &TestClusterGKE, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &tc.object_ref(&())).await {
            tracing::warn!(name = %tc.name_any(), %error, reason, "cannot publish event");
        }
    }

    /// The object `name` of `kind` of the test cluster with uid `owner`, as far as this process
    /// knows: the store's copy or, while the store does not show it yet, what this process
    /// applied. `None`: it does not exist, as of the store (ready and so complete) and this
    /// process's own writes.
    fn owned_object(
        &self,
        owner: &str,
        kind: &ObjectKind,
        namespace: &str,
        name: &str,
    ) -> Option<Known> {
        match self.owned.get(kind, namespace, name) {
            Some(object) => {
                self.writes.settled(owner, kind.kind);
                Some(Known::Stored(object))
            }
            None => self.writes.unseen(owner, kind.kind).map(Known::Applied),
        }
    }

    fn backoff(&self, key: &str) -> Duration {
        self.failures.failed(key)
    }

    fn succeeded(&self, key: &str) {
        self.failures.forget(key);
    }
}

/// Where an owned object is known from.
enum Known {
    /// The store shows it.
    Stored(Arc<DynamicObject>),
    /// This process applied it; the store does not show it yet.
    Applied(Arc<DynamicObject>),
}

impl Known {
    fn into_object(self) -> Arc<DynamicObject> {
        match self {
            Known::Stored(object) | Known::Applied(object) => object,
        }
    }
}

/// Fails with a hint on how to install the CRD when `TestClusterGKE` is not served.
pub async fn check_crd(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<TestClusterGKE> = Api::all(client.clone());
    if let Err(error) = api.list(&ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list {KIND} ({GROUP}/{VERSION}): {error}; is the CRD installed? \
             (kubectl apply -f deploy/k8s/crds/, or `crdgen | kubectl apply -f -`)"
        );
    }
    Ok(())
}

/// Runs the controller until `shutdown` is cancelled, then lets in-flight reconciles finish.
pub async fn run(
    client: kube::Client,
    settings: Arc<Settings>,
    access: Arc<AccessIssuer>,
    metrics: testcluster_service::metrics::ControllerMetrics,
    runs: crate::metrics::Runs,
    shutdown: CancellationToken,
) {
    // The test clusters' store, without managed fields (never read here, and a good part of an
    // object with three field managers).
    let (test_clusters, writer) = reflector::store();
    let watched = watcher(
        Api::<TestClusterGKE>::all(client.clone()),
        watcher::Config::default(),
    )
    .modify(|tc| tc.managed_fields_mut().clear());
    let mut controller =
        Controller::for_stream(reflector(writer, watched).applied_objects(), test_clusters);
    let mut stores = Vec::with_capacity(OWNED_KINDS.len());
    for kind in OWNED_KINDS {
        let resource = kind.api_resource();
        let writer = reflector::store::Writer::new(resource.clone());
        stores.push((kind, resource.clone(), writer.as_reader()));
        // One watch per kind both fills the store and triggers the owner's reconcile; the
        // controller drives it (reconciles wait until the stores are ready).
        let events = watcher(
            Api::<DynamicObject>::all_with(client.clone(), &resource),
            watcher::Config::default(),
        )
        .modify(stores::slim);
        controller =
            controller.owns_stream_with(reflector(writer, events).touched_objects(), resource);
    }
    let context = Arc::new(Context::new(
        client.clone(),
        settings,
        access,
        OwnedStores::new(stores),
        runs,
    ));
    let backoffs = context.clone();
    controller
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            metrics.instrument(reconcile, Error::label, Some(crate::metrics::lifecycle)),
            error_policy,
            context,
        )
        .for_each(|result| {
            match result {
                Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                Err(error) => {
                    // A deleted object's failures would otherwise stay on record for good.
                    if let Some(key) = deleted_object_key(&error) {
                        backoffs.failures.forget(&key);
                        backoffs.status_writes.forget(&key);
                    }
                    tracing::debug!(%error, "reconcile failed");
                }
            }
            std::future::ready(())
        })
        .await;
}

/// The `namespace/name` of an object that was due for a reconcile but is gone (deleted, its
/// finalizer already removed): the controller reports it instead of reconciling it.
fn deleted_object_key<Q: std::error::Error + 'static>(
    error: &controller::Error<Error, Q>,
) -> Option<String> {
    match error {
        controller::Error::ObjectNotFound(object) => Some(format!(
            "{}/{}",
            object.namespace.as_deref().unwrap_or_default(),
            object.name
        )),
        _ => None,
    }
}

async fn reconcile(tc: Arc<TestClusterGKE>, context: Arc<Context>) -> Result<Action, Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<TestClusterGKE> = Api::namespaced(context.client.clone(), &namespace);
    let key = object_key(&tc);
    // The first reconciles wait for the watches' initial lists: before that, a store would show
    // existing objects as missing.
    context.owned.wait_until_ready().await?;
    if context
        .status_writes
        .is_stale(&key, tc.resource_version().as_deref())
    {
        // The store has not shown this process's last status write yet; its watch event
        // brings the object back, and a decision now would only lose a race.
        return Ok(Action::await_change());
    }
    let action = finalizer(&api, FINALIZER, tc, |event| async {
        match event {
            finalizer::Event::Apply(tc) => apply(&tc, &context).await,
            finalizer::Event::Cleanup(tc) => teardown::cleanup(&tc, &context).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)))?;
    context.succeeded(&key);
    Ok(action)
}

/// The one place that decides what happens after a failed reconcile.
fn error_policy(tc: Arc<TestClusterGKE>, error: &Error, context: Arc<Context>) -> Action {
    if error.is_teardown_in_progress() {
        // Each owned object's deletion is a watch event that brings the reconcile back.
        tracing::debug!(name = %tc.name_any(), %error, "waiting for teardown");
        return Action::await_change();
    }
    if error.is_conflict() {
        // A lost race, not a failure: decide again on fresh data, which the watch usually brings
        // first. Backing off further with each lost race would stall a busy object.
        tracing::debug!(name = %tc.name_any(), retry_in = ?CONFLICT_RETRY, "stale read, retrying");
        return Action::requeue(CONFLICT_RETRY);
    }
    let wait = context.backoff(&object_key(&tc));
    tracing::warn!(
        name = %tc.name_any(),
        namespace = tc.namespace().unwrap_or_default(),
        error = error.label(),
        detail = %error,
        retry_in = ?wait,
        "reconcile failed"
    );
    Action::requeue(wait)
}

/// Converge: provision while the run is on, tear down once it is over.
async fn apply(tc: &TestClusterGKE, context: &Context) -> Result<Action, Error> {
    let status = tc.status.clone().unwrap_or_default();
    if status.phase.is_some_and(Phase::is_terminal) {
        if record::retention_over(&context.settings, &status) {
            return record::remove(tc, context).await;
        }
        let action = teardown::tear_down_after_run(tc, context, &status).await?;
        // Waiting for the teardown's watch events or the hold's timer; the record's retention
        // is a timer of its own, later than both.
        return Ok(match record::retention_left(&context.settings, &status) {
            Some(left) if action == Action::await_change() => Action::requeue(left),
            _ => action,
        });
    }
    if let Some(ttl_end) = expiry::ttl_ended(tc, &context.settings.lifetimes, &status) {
        return expiry::expire(tc, context, &status, ttl_end).await;
    }
    let violations = validation::validate(tc);
    if !violations.is_empty() {
        return provision::reject(tc, context, &status, &validation::summary(&violations)).await;
    }
    let Some(cluster_name) = status.cluster_name.clone() else {
        return provision::assign_cluster_name(tc, context).await;
    };
    provision::provision(tc, context, &status, &cluster_name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_object_is_named_by_the_controller_error() {
        use kube::runtime::reflector::ObjectRef;
        let gone = ObjectRef::<TestClusterGKE>::new("gone")
            .within("ns")
            .erase();
        let error: controller::Error<Error, watcher::Error> =
            controller::Error::ObjectNotFound(Box::new(gone));
        assert_eq!(deleted_object_key(&error).as_deref(), Some("ns/gone"));
        let other: controller::Error<Error, watcher::Error> = controller::Error::ReconcilerFailed(
            Error::NoNamespace,
            Box::new(ObjectRef::<TestClusterGKE>::new("x").within("ns").erase()),
        );
        assert_eq!(deleted_object_key(&other), None);
    }
}
