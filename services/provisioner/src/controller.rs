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
//! from them: the API server sees only writes (apply, delete), plus a live read where a store that
//! lags behind this process's own writes could mislead (see [`delete_owned`]).
//! Requeue timers are used only to back off after errors and to wake up when the provisioning
//! timeout runs out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource as _, ResourceExt as _};
use rand::Rng as _;
use serde::Serialize;
use serde_json::{Value, json};
use testcluster_resources::metadata::{
    DEFAULT_CONFIG_TEMPLATE, DEFAULT_MACHINE_TYPE, DEFAULT_NODES, GROUP, KIND, LABEL_TEST_CLUSTER,
    VERSION, dependency_key,
};
use testcluster_resources::{Condition, ErrorStatus, Phase, TestClusterGKE, TestClusterGKEStatus};
use tokio_util::sync::CancellationToken;

use crate::Settings;
use crate::classify;
use crate::readiness::{self, Dependency};
use crate::template::{self, OWNED_KINDS, ObjectKind, RenderedObject, TemplateParams};
use crate::validation::{self, CLUSTER_NAME_SUFFIX_LEN};

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
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why a reconcile did not finish. The variant name is the `error` label of logs (and metrics).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding an object: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    #[error("the object has no namespace")]
    NoNamespace,
    #[error("{kind} {namespace}/{name} exists but belongs to another owner")]
    NotOwned {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    /// The watch feeding a store of owned objects has stopped (only at shutdown).
    #[error("the store of owned {0} objects is closed")]
    StoreClosed(&'static str),
    /// Not a failure: deletion goes on, and the watch on the owned objects reports its end.
    #[error("{remaining} Config Connector objects are still being deleted")]
    TeardownInProgress { remaining: usize },
}

impl Error {
    /// A short, stable name for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Encode(_) => "encode",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.label(),
                _ => "finalizer",
            },
            Error::NoNamespace => "no_namespace",
            Error::NotOwned { .. } => "not_owned",
            Error::StoreClosed(_) => "store_closed",
            Error::TeardownInProgress { .. } => "teardown_in_progress",
        }
    }

    fn is_teardown_in_progress(&self) -> bool {
        self.label() == "teardown_in_progress"
    }

    /// A write based on a stale read (409): routine, retried at once on fresh data.
    fn is_conflict(&self) -> bool {
        match self {
            Error::Kube(kube::Error::Api(status)) => status.code == 409,
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.is_conflict()
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// Consecutive failed reconciles per object (`namespace/name`), for exponential backoff.
#[derive(Debug, Default)]
pub struct Backoffs(Mutex<HashMap<String, u32>>);

impl Backoffs {
    /// Counts one more failure of `key` and returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        FIRST_BACKOFF
            .saturating_mul(2u32.saturating_pow(count.saturating_sub(1).min(16)))
            .min(MAX_BACKOFF)
    }

    /// Forgets `key`'s failures: after a success, or once the object is gone.
    pub fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// How many objects have failures on record.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reflector stores of the six owned kinds, fed by the watches that also trigger reconciles.
#[derive(Clone)]
pub struct OwnedStores(Vec<(ObjectKind, ApiResource, Store<DynamicObject>)>);

impl OwnedStores {
    /// Waits until every store holds its watch's initial list.
    async fn wait_until_ready(&self) -> Result<(), Error> {
        for (kind, _, store) in &self.0 {
            store
                .wait_until_ready()
                .await
                .map_err(|_| Error::StoreClosed(kind.kind))?;
        }
        Ok(())
    }

    /// The object as last seen by the watch; it may lag behind a write made just before.
    fn get(&self, kind: &ObjectKind, namespace: &str, name: &str) -> Option<Arc<DynamicObject>> {
        let (_, resource, store) = self.0.iter().find(|(k, _, _)| k == kind)?;
        store.get(&ObjectRef::new_with(name, resource.clone()).within(namespace))
    }
}

/// What teardown has done or seen per `TestClusterGKE` (by uid), where the stores may lag behind:
/// deletions already started (a store not yet showing the deletion must not start them again)
/// and kinds confirmed gone by a live read.
#[derive(Debug, Default)]
struct Teardowns(Mutex<HashMap<String, TeardownState>>);

#[derive(Debug, Default)]
struct TeardownState {
    deleting: HashSet<String>,
    gone: HashSet<&'static str>,
}

impl Teardowns {
    fn with<T>(&self, owner: &str, f: impl FnOnce(&mut TeardownState) -> T) -> T {
        let mut states = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(states.entry(owner.to_owned()).or_default())
    }

    fn forget(&self, owner: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(owner);
    }
}

/// What every reconcile needs.
pub struct Context {
    pub client: kube::Client,
    pub settings: Arc<Settings>,
    recorder: Recorder,
    failures: Backoffs,
    owned: OwnedStores,
    teardowns: Teardowns,
}

impl Context {
    pub fn new(client: kube::Client, settings: Arc<Settings>, owned: OwnedStores) -> Context {
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
            recorder,
            failures: Backoffs::default(),
            owned,
            teardowns: Teardowns::default(),
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

    fn backoff(&self, key: &str) -> Duration {
        self.failures.failed(key)
    }

    fn succeeded(&self, key: &str) {
        self.failures.forget(key);
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
    metrics: service::metrics::ControllerMetrics,
    shutdown: CancellationToken,
) {
    let mut controller = Controller::new(
        Api::<TestClusterGKE>::all(client.clone()),
        watcher::Config::default(),
    );
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
        .modify(|object| object.managed_fields_mut().clear());
        controller =
            controller.owns_stream_with(reflector(writer, events).touched_objects(), resource);
    }
    let context = Arc::new(Context::new(client.clone(), settings, OwnedStores(stores)));
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

fn object_key(tc: &TestClusterGKE) -> String {
    format!("{}/{}", tc.namespace().unwrap_or_default(), tc.name_any())
}

async fn reconcile(tc: Arc<TestClusterGKE>, context: Arc<Context>) -> Result<Action, Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<TestClusterGKE> = Api::namespaced(context.client.clone(), &namespace);
    let key = object_key(&tc);
    // The first reconciles wait for the watches' initial lists: before that, a store would show
    // existing objects as missing.
    context.owned.wait_until_ready().await?;
    let action = finalizer(&api, FINALIZER, tc, |event| async {
        match event {
            finalizer::Event::Apply(tc) => apply(&tc, &context).await,
            finalizer::Event::Cleanup(tc) => cleanup(&tc, &context).await,
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
    let wait = context.backoff(&object_key(&tc));
    if error.is_conflict() {
        tracing::debug!(name = %tc.name_any(), retry_in = ?wait, "stale read, retrying");
        return Action::requeue(wait);
    }
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

/// The parts of `status` the provisioner writes. Server-side apply sends exactly these, so the
/// runner's fields (and the phases it owns) are never touched.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProvisionerStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<Phase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    dependency_conditions: BTreeMap<String, Vec<Condition>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "ProvisionerTimestamps::is_empty")]
    phase_timestamps: ProvisionerTimestamps,
}

/// The phase timestamps of the phases the provisioner sets.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProvisionerTimestamps {
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provisioning_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ready_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleting_time: Option<Time>,
    /// Only for Error; the runner sets it for Succeeded and Failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_time: Option<Time>,
}

impl ProvisionerTimestamps {
    fn is_empty(&self) -> bool {
        *self == ProvisionerTimestamps::default()
    }
}

impl ProvisionerStatus {
    /// The provisioner's share of `status` as it is now.
    fn from_current(status: &TestClusterGKEStatus) -> ProvisionerStatus {
        let phase = status.phase.filter(|p| readiness::is_provisioner_phase(*p));
        let times = status.phase_timestamps.clone().unwrap_or_default();
        ProvisionerStatus {
            cluster_name: status.cluster_name.clone(),
            phase,
            location: status.location.clone(),
            conditions: status.conditions.clone(),
            dependency_conditions: status.dependency_conditions.clone(),
            error: status.error.clone(),
            observed_generation: status.observed_generation,
            phase_timestamps: ProvisionerTimestamps {
                pending_time: times.pending_time,
                provisioning_time: times.provisioning_time,
                ready_time: times.ready_time,
                deleting_time: times.deleting_time,
                finish_time: times.finish_time.filter(|_| phase == Some(Phase::Error)),
            },
        }
    }
}

/// Writes the provisioner's status if it differs from the current one. The resourceVersion the
/// decision was based on is a precondition: acting on a stale cache (say, moving Running back to
/// Ready) fails with a conflict and the reconcile runs again on fresh data.
async fn write_status(
    tc: &TestClusterGKE,
    context: &Context,
    desired: &ProvisionerStatus,
) -> Result<bool, Error> {
    let current = ProvisionerStatus::from_current(&tc.status.clone().unwrap_or_default());
    // Compare encoded forms: times are written with second precision, so a value straight from
    // another object may differ from its own round trip, which would otherwise write forever.
    if serde_json::to_value(&current)? == serde_json::to_value(desired)? {
        return Ok(false);
    }
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let name = tc.name_any();
    let api: Api<TestClusterGKE> = Api::namespaced(context.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {"name": name, "resourceVersion": tc.resource_version()},
        "status": desired,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(true)
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// `<name>-<5 random [a-z0-9]>`, as the seed names its clusters.
pub fn generate_cluster_name(name: &str) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..CLUSTER_NAME_SUFFIX_LEN)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect();
    format!("{name}-{suffix}")
}

/// The region of a zone (`europe-west2-b` → `europe-west2`); a region stays as it is.
pub fn region_of(location: &str) -> String {
    match location.rsplit_once('-') {
        // Zones end in a single letter (`-a`, `-b`, ...); regions end in a word with digits.
        Some((region, zone)) if zone.len() == 1 && region.contains('-') => region.to_owned(),
        _ => location.to_owned(),
    }
}

/// Template parameters for `tc`, with the seed's defaults and the provisioner's configuration
/// filling unset fields.
fn template_params(tc: &TestClusterGKE, cluster_name: &str, settings: &Settings) -> TemplateParams {
    let spec = &tc.spec;
    let location = spec
        .location
        .clone()
        .unwrap_or_else(|| settings.default_location.clone());
    TemplateParams {
        namespace: tc.namespace().unwrap_or_default(),
        cluster_name: cluster_name.to_owned(),
        project: spec
            .project
            .clone()
            .unwrap_or_else(|| settings.default_project.clone()),
        region: spec.region.clone().unwrap_or_else(|| region_of(&location)),
        location,
        machine_type: spec
            .machine_type
            .clone()
            .unwrap_or_else(|| DEFAULT_MACHINE_TYPE.to_owned()),
        // Validation has ruled out values below 1.
        nodes: u32::try_from(spec.nodes.unwrap_or(DEFAULT_NODES)).unwrap_or(1),
        kubernetes_version: spec.kubernetes_version.clone(),
    }
}

fn is_controlled_by(object: &DynamicObject, tc: &TestClusterGKE) -> bool {
    object
        .owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && Some(&owner.uid) == tc.uid().as_ref())
}

fn has_other_controller(object: &DynamicObject, tc: &TestClusterGKE) -> bool {
    object
        .owner_references()
        .iter()
        .any(|owner| owner.controller == Some(true) && Some(&owner.uid) != tc.uid().as_ref())
}

fn dependency_of(kind: &ObjectKind, object: &DynamicObject) -> Dependency {
    let status = &object.data["status"];
    let conditions: Vec<Condition> =
        serde_json::from_value(status["conditions"].clone()).unwrap_or_default();
    let observed = status["observedGeneration"].as_i64().is_some()
        && status["observedGeneration"].as_i64() == object.metadata.generation;
    Dependency {
        key: dependency_key(
            kind.kind,
            &object.namespace().unwrap_or_default(),
            &object.name_any(),
        ),
        conditions,
        observed,
    }
}

/// Converge: provision while the run is on, tear down once it is over.
async fn apply(tc: &TestClusterGKE, context: &Context) -> Result<Action, Error> {
    let status = tc.status.clone().unwrap_or_default();
    if status.phase.is_some_and(Phase::is_terminal) {
        return tear_down_after_run(tc, context, &status).await;
    }
    let violations = validation::validate(&tc.name_any(), &tc.spec);
    if !violations.is_empty() {
        return reject(tc, context, &status, &validation::summary(&violations)).await;
    }
    let Some(cluster_name) = status.cluster_name.clone() else {
        return assign_cluster_name(tc, context).await;
    };
    provision(tc, context, &status, &cluster_name).await
}

/// First step: a name for the cloud cluster, persisted before anything exists in the cloud, so
/// that every later reconcile (in this process or the next) creates objects under that one name.
async fn assign_cluster_name(tc: &TestClusterGKE, context: &Context) -> Result<Action, Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<TestClusterGKE> = Api::namespaced(context.client.clone(), &namespace);
    // The cache may lag behind a name written just before (by this process or a previous one);
    // a fresh read makes sure a second name is never made up.
    let fresh = api.get_status(&tc.name_any()).await?;
    let fresh_status = fresh.status.clone().unwrap_or_default();
    if fresh_status.cluster_name.is_some() {
        return Ok(Action::await_change());
    }
    let cluster_name = generate_cluster_name(&tc.name_any());
    let now = now();
    let mut desired = ProvisionerStatus::from_current(&fresh_status);
    desired.cluster_name = Some(cluster_name.clone());
    desired.phase = Some(Phase::Pending);
    desired.phase_timestamps.pending_time = Some(now.clone());
    desired.conditions = readiness::set_condition(
        &desired.conditions,
        readiness::aggregate(&[], 0).condition,
        &now,
    );
    write_status(&fresh, context, &desired).await?;
    tracing::info!(name = %tc.name_any(), namespace, cluster = cluster_name, "accepted");
    context
        .publish(
            tc,
            EventType::Normal,
            "Pending",
            format!("Cloud cluster will be named {cluster_name}"),
        )
        .await;
    Ok(Action::await_change())
}

/// A spec no template can build: say why in the Ready condition and an Event, and stop (phase
/// Error). Never an error of the reconcile, so a bad object cannot make the controller loop.
async fn reject(
    tc: &TestClusterGKE,
    context: &Context,
    status: &TestClusterGKEStatus,
    message: &str,
) -> Result<Action, Error> {
    let mut desired = ProvisionerStatus::from_current(status);
    desired.observed_generation = tc.metadata.generation;
    let error = ErrorStatus {
        code: REASON_INVALID_SPEC.to_owned(),
        message: message.to_owned(),
        retryable: false,
    };
    end_with_error(tc, context, desired, REASON_INVALID_SPEC, error).await
}

/// Ends the run: phase Error with `error`, the `Ready` condition False with `reason` and the
/// error's message, and a Warning Event named after the error's code. The phase change brings the
/// reconcile back, and the terminal-phase teardown deletes whatever was created.
async fn end_with_error(
    tc: &TestClusterGKE,
    context: &Context,
    mut desired: ProvisionerStatus,
    reason: &str,
    error: ErrorStatus,
) -> Result<Action, Error> {
    let now = now();
    desired.phase = Some(Phase::Error);
    desired.phase_timestamps.finish_time = Some(now.clone());
    desired.conditions = readiness::set_condition(
        &desired.conditions,
        readiness::condition("False", reason, &error.message),
        &now,
    );
    desired.error = Some(error.clone());
    if write_status(tc, context, &desired).await? {
        tracing::info!(
            name = %tc.name_any(),
            code = error.code,
            message = error.message,
            retryable = error.retryable,
            "run ended with an error"
        );
        context
            .publish(tc, EventType::Warning, &error.code, error.message)
            .await;
    }
    Ok(Action::await_change())
}

/// Whether the provisioner is still bringing the cluster up (the only time a dependency failure
/// or the provisioning timeout can end the run).
fn is_provisioning(phase: Option<Phase>) -> bool {
    matches!(phase, None | Some(Phase::Pending | Phase::Provisioning))
}

/// Whether the run has started or is over: from then on no Config Connector object is ever
/// created again. The phase alone is not enough (a stale write could move it back), so the
/// runner's timestamps count too.
fn run_has_started(status: &TestClusterGKEStatus) -> bool {
    let times = status.phase_timestamps.clone().unwrap_or_default();
    status
        .phase
        .is_some_and(|p| p == Phase::Running || p.is_terminal())
        || times.running_time.is_some()
        || times.finish_time.is_some()
}

/// How long ago `since` was, as of `now` (zero for a time in the future).
fn elapsed(since: &Time, now: &Time) -> Duration {
    Duration::try_from(now.0.duration_since(since.0)).unwrap_or_default()
}

/// Applies the template's objects when needed and folds their conditions into the status.
async fn provision(
    tc: &TestClusterGKE,
    context: &Context,
    status: &TestClusterGKEStatus,
    cluster_name: &str,
) -> Result<Action, Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let template_name = tc
        .spec
        .config_template
        .as_deref()
        .unwrap_or(DEFAULT_CONFIG_TEMPLATE);
    let Some(template) = template::find(template_name) else {
        // Validation already refused unknown templates; this is only reachable if they disagree.
        return reject(tc, context, status, "spec.configTemplate: unknown template").await;
    };
    let params = template_params(tc, cluster_name, &context.settings);
    let rendered = template.render(&params);
    // A new generation (or a first apply) sends every object; otherwise only missing ones are
    // created again, so a dependency's status change costs a store read, not a request.
    let spec_changed = status.observed_generation != tc.metadata.generation;
    let started = run_has_started(status);
    let owner = tc.controller_owner_ref(&()).map(|owner| json!([owner]));
    let mut dependencies = Vec::with_capacity(rendered.len());
    let mut applied = 0;
    let mut not_recreated = Vec::new();
    for object in &rendered {
        let api: Api<DynamicObject> = Api::namespaced_with(
            context.client.clone(),
            &namespace,
            &object.kind.api_resource(),
        );
        let current = match context.owned.get(&object.kind, &namespace, object.name()) {
            Some(current) => Some(current.as_ref().clone()),
            // Not in the store: missing, or applied so recently that the watch has not shown
            // it yet. Before the run starts, applying it again is harmless (server-side apply
            // of the same manifest); after, a live read tells whether it is really missing.
            None if started => api.get_opt(object.name()).await?,
            None => None,
        };
        if let Some(current) = &current
            && has_other_controller(current, tc)
        {
            return Err(Error::NotOwned {
                kind: object.kind.kind,
                namespace,
                name: object.name().to_owned(),
            });
        }
        let live = match current {
            // Being deleted by someone else: it is created again once it is gone (its deletion is
            // a watch event).
            Some(current) if current.metadata.deletion_timestamp.is_some() => current,
            Some(current) if !spec_changed => current,
            // Once the run has started, a missing object is never created again: the cluster it
            // belongs to is in use or done with (a stale phase must not bring it back). Missing,
            // it counts as not ready.
            None if started => {
                not_recreated.push(dependency_key(object.kind.kind, &namespace, object.name()));
                continue;
            }
            _ => {
                applied += 1;
                apply_object(&api, object, tc, owner.clone()).await?
            }
        };
        dependencies.push(dependency_of(&object.kind, &live));
    }
    if !not_recreated.is_empty() {
        tracing::warn!(
            name = %tc.name_any(),
            cluster = cluster_name,
            missing = ?not_recreated,
            "the run has started; missing Config Connector objects are not created again"
        );
    }

    let now = now();
    let readiness = readiness::aggregate(&dependencies, rendered.len());
    let before = ProvisionerStatus::from_current(status);
    let mut desired = before.clone();
    desired.phase = readiness::provisioning_phase(status.phase, readiness.all_ready);
    desired.location = Some(params.location.clone());
    desired.observed_generation = tc.metadata.generation;
    desired.error = None;
    desired.conditions = readiness::set_condition(&before.conditions, readiness.condition, &now);
    desired.dependency_conditions = dependencies
        .iter()
        .map(|d| (d.key.clone(), d.conditions.clone()))
        .collect();
    let times = &mut desired.phase_timestamps;
    times.pending_time.get_or_insert_with(|| now.clone());
    times.provisioning_time.get_or_insert_with(|| now.clone());
    if desired.phase == Some(Phase::Ready) {
        times.ready_time.get_or_insert_with(|| now.clone());
    }
    let provisioning_since = times
        .provisioning_time
        .clone()
        .unwrap_or_else(|| now.clone());

    // While coming up, a failure that retrying will not fix (or running out of time) ends the run.
    let mut action = Action::await_change();
    if is_provisioning(status.phase) && !readiness.all_ready {
        if let Some(failure) = classify::first_failure(&dependencies) {
            let error = ErrorStatus {
                code: failure.classification.code.to_owned(),
                message: failure.message,
                retryable: failure.classification.retryable,
            };
            return end_with_error(tc, context, desired, REASON_DEPENDENCY_FAILED, error).await;
        }
        let timeout = context.settings.provision_timeout;
        let waited = elapsed(&provisioning_since, &now);
        if waited >= timeout {
            let error = ErrorStatus {
                code: classify::CODE_PROVISIONING_TIMEOUT.to_owned(),
                message: classify::timeout_message(timeout, &dependencies),
                // Mostly a slow or failing zone: another attempt (or zone) may well succeed.
                retryable: true,
            };
            return end_with_error(tc, context, desired, REASON_PROVISIONING_TIMEOUT, error).await;
        }
        // A timer, not a poll: every reconcile (each dependency change) sets it again.
        action = Action::requeue(timeout - waited);
    }
    write_status(tc, context, &desired).await?;

    if applied > 0 {
        tracing::info!(name = %tc.name_any(), cluster = cluster_name, applied, "applied objects");
    }
    if before.phase != desired.phase {
        match desired.phase {
            Some(Phase::Provisioning) => {
                context
                    .publish(
                        tc,
                        EventType::Normal,
                        "Provisioning",
                        format!(
                            "Applied {} objects of template {} for cluster {cluster_name} in {}",
                            rendered.len(),
                            template.name,
                            params.location
                        ),
                    )
                    .await;
            }
            Some(Phase::Ready) => {
                tracing::info!(name = %tc.name_any(), cluster = cluster_name, "ready");
                context
                    .publish(
                        tc,
                        EventType::Normal,
                        "Ready",
                        format!("Cluster {cluster_name} is ready in {}", params.location),
                    )
                    .await;
            }
            _ => {}
        }
    }
    publish_dependency_failures(tc, context, &before.dependency_conditions, &dependencies).await;
    Ok(action)
}

/// A dependency that newly reports a failure (Config Connector's `UpdateFailed`, say a zone
/// stockout) is worth a Warning in `kubectl describe`.
async fn publish_dependency_failures(
    tc: &TestClusterGKE,
    context: &Context,
    before: &BTreeMap<String, Vec<Condition>>,
    dependencies: &[Dependency],
) {
    let failed = |conditions: &[Condition]| {
        conditions
            .iter()
            .find(|c| c.type_ == "Ready" && c.status == "False" && c.reason.ends_with("Failed"))
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    for dependency in dependencies {
        let Some((reason, message)) = failed(&dependency.conditions) else {
            continue;
        };
        if before.get(&dependency.key).and_then(|c| failed(c))
            == Some((reason.clone(), message.clone()))
        {
            continue;
        }
        context
            .publish(
                tc,
                EventType::Warning,
                "DependencyFailed",
                format!("{}: {reason}: {message}", dependency.key),
            )
            .await;
    }
}

async fn apply_object(
    api: &Api<DynamicObject>,
    object: &RenderedObject,
    tc: &TestClusterGKE,
    owner: Option<Value>,
) -> Result<DynamicObject, Error> {
    let mut manifest = object.manifest.clone();
    if let Some(owner) = owner {
        manifest["metadata"]["ownerReferences"] = owner;
    }
    manifest["metadata"]["labels"][LABEL_TEST_CLUSTER] = json!(tc.name_any());
    Ok(api
        .patch(
            object.name(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&manifest),
        )
        .await?)
}

/// Deletes every object this CR controls; returns those that still exist (Config Connector keeps
/// them, with its finalizers, until the cloud resource is gone) and how many deletions it started.
async fn delete_owned(
    tc: &TestClusterGKE,
    context: &Context,
    cluster_name: &str,
) -> Result<(Vec<Dependency>, usize), Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let owner = tc.uid().unwrap_or_default();
    let teardowns = &context.teardowns;
    let mut remaining = Vec::new();
    let mut started = 0;
    for kind in OWNED_KINDS {
        let api: Api<DynamicObject> =
            Api::namespaced_with(context.client.clone(), &namespace, &kind.api_resource());
        let object = match context.owned.get(&kind, &namespace, cluster_name) {
            Some(object) => object.as_ref().clone(),
            // Gone for good: nothing creates objects for a run that is over.
            None if teardowns.with(&owner, |t| t.gone.contains(kind.kind)) => continue,
            // Missing from the store, but it may have been applied just before and not be in
            // the store yet: only a live read can tell that it is really gone (once per kind).
            None => match api.get_opt(cluster_name).await? {
                Some(object) => object,
                None => {
                    teardowns.with(&owner, |t| t.gone.insert(kind.kind));
                    continue;
                }
            },
        };
        // Someone else's object with the same name is left alone.
        if !is_controlled_by(&object, tc) {
            continue;
        }
        let uid = object.uid().unwrap_or_default();
        // Deleted already, by this process, even if the store does not show it yet.
        let deleting = object.metadata.deletion_timestamp.is_some()
            || teardowns.with(&owner, |t| t.deleting.contains(&uid));
        if !deleting {
            let params = DeleteParams {
                // The uid makes sure it is this object, not a new one with the same name.
                preconditions: Some(Preconditions {
                    uid: object.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match api.delete(cluster_name, &params).await {
                Ok(_) => {
                    started += 1;
                    teardowns.with(&owner, |t| t.deleting.insert(uid));
                }
                Err(kube::Error::Api(status)) if status.code == 404 => continue,
                Err(error) => return Err(error.into()),
            }
        }
        remaining.push(dependency_of(&kind, &object));
    }
    Ok((remaining, started))
}

/// The run is over (Succeeded, Failed or Error): delete the cloud resources, keep the CR.
async fn tear_down_after_run(
    tc: &TestClusterGKE,
    context: &Context,
    status: &TestClusterGKEStatus,
) -> Result<Action, Error> {
    let Some(cluster_name) = status.cluster_name.as_deref() else {
        // Nothing was ever created.
        return Ok(Action::await_change());
    };
    let (remaining, started) = delete_owned(tc, context, cluster_name).await?;
    let now = now();
    let before = ProvisionerStatus::from_current(status);
    let mut desired = before.clone();
    desired.dependency_conditions = remaining
        .iter()
        .map(|d| (d.key.clone(), d.conditions.clone()))
        .collect();
    // A run ended by an error (an invalid spec, a failed dependency, the provisioning timeout)
    // keeps the condition that says why; the dependency conditions show the teardown.
    let ended_by_error = before.error.is_some()
        || before
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == REASON_INVALID_SPEC);
    // A run that never had objects (refused before provisioning) keeps its condition as it is.
    let had_objects = !before.dependency_conditions.is_empty() || !remaining.is_empty();
    if !ended_by_error && had_objects {
        let condition = if remaining.is_empty() {
            readiness::condition(
                "False",
                REASON_DEPENDENCIES_DELETED,
                "All dependencies are deleted",
            )
        } else {
            readiness::condition(
                "False",
                REASON_DELETING_DEPENDENCIES,
                &format!("Deleting {} dependencies", remaining.len()),
            )
        };
        desired.conditions = readiness::set_condition(&before.conditions, condition, &now);
    }
    write_status(tc, context, &desired).await?;
    if started > 0 {
        tracing::info!(name = %tc.name_any(), cluster = cluster_name, "run over, deleting cloud resources");
        context
            .publish(
                tc,
                EventType::Normal,
                "DeletingCluster",
                format!("The run is over; deleting cluster {cluster_name} and its dependencies"),
            )
            .await;
    }
    if remaining.is_empty() && !before.dependency_conditions.is_empty() {
        tracing::info!(name = %tc.name_any(), cluster = cluster_name, "cloud resources deleted");
        context
            .publish(
                tc,
                EventType::Normal,
                "ClusterDeleted",
                format!("Cluster {cluster_name} and its dependencies are deleted"),
            )
            .await;
    }
    // Each owned object's disappearance is a watch event that brings this back.
    Ok(Action::await_change())
}

/// The CR is being deleted: phase Deleting, delete everything, and keep the finalizer (by failing
/// with [`Error::TeardownInProgress`]) until Config Connector has released every object.
async fn cleanup(tc: &TestClusterGKE, context: &Context) -> Result<Action, Error> {
    let status = tc.status.clone().unwrap_or_default();
    if status.phase != Some(Phase::Deleting) {
        let now = now();
        let mut desired = ProvisionerStatus::from_current(&status);
        desired.phase = Some(Phase::Deleting);
        desired.phase_timestamps.deleting_time = Some(now);
        write_status(tc, context, &desired).await?;
        context
            .publish(
                tc,
                EventType::Normal,
                "Deleting",
                "Deleting the test cluster and its cloud resources".to_owned(),
            )
            .await;
    }
    let Some(cluster_name) = status.cluster_name.as_deref() else {
        return Ok(Action::await_change());
    };
    let (remaining, _) = delete_owned(tc, context, cluster_name).await?;
    if !remaining.is_empty() {
        return Err(Error::TeardownInProgress {
            remaining: remaining.len(),
        });
    }
    tracing::info!(name = %tc.name_any(), cluster = cluster_name, "deleted");
    // The finalizer goes now, and with it the object.
    context.teardowns.forget(&tc.uid().unwrap_or_default());
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_follow_the_seed() {
        let name = generate_cluster_name("testme-1");
        let (stem, suffix) = name.rsplit_once('-').unwrap_or_default();
        assert_eq!(stem, "testme-1");
        assert_eq!(suffix.len(), 5);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(generate_cluster_name("a"), generate_cluster_name("a"));
    }

    #[test]
    fn failures_back_off_and_are_forgotten() {
        let backoffs = Backoffs::default();
        assert_eq!(backoffs.failed("ns/a"), Duration::from_millis(250));
        assert_eq!(backoffs.failed("ns/a"), Duration::from_millis(500));
        assert_eq!(backoffs.failed("ns/b"), Duration::from_millis(250));
        for _ in 0..20 {
            backoffs.failed("ns/a");
        }
        assert_eq!(backoffs.failed("ns/a"), MAX_BACKOFF);
        assert_eq!(backoffs.len(), 2);
        backoffs.forget("ns/a");
        assert_eq!(backoffs.len(), 1);
        assert_eq!(backoffs.failed("ns/a"), Duration::from_millis(250));
    }

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

    #[test]
    fn a_started_run_is_recognised_by_phase_or_timestamps() {
        let with = |phase: Option<Phase>, times: testcluster_resources::PhaseTimestamps| {
            TestClusterGKEStatus {
                phase,
                phase_timestamps: Some(times),
                ..Default::default()
            }
        };
        let none = testcluster_resources::PhaseTimestamps::default;
        let running = || testcluster_resources::PhaseTimestamps {
            running_time: Some(now()),
            ..Default::default()
        };
        let finished = || testcluster_resources::PhaseTimestamps {
            finish_time: Some(now()),
            ..Default::default()
        };
        let cases = [
            (with(None, none()), false),
            (with(Some(Phase::Pending), none()), false),
            (with(Some(Phase::Provisioning), none()), false),
            (with(Some(Phase::Ready), none()), false),
            (with(Some(Phase::Running), none()), true),
            (with(Some(Phase::Succeeded), none()), true),
            (with(Some(Phase::Error), none()), true),
            // A stale write moved the phase back; the timestamps still tell.
            (with(Some(Phase::Ready), running()), true),
            (with(Some(Phase::Provisioning), finished()), true),
        ];
        for (status, started) in cases {
            assert_eq!(run_has_started(&status), started, "{status:?}");
        }
        assert!(is_provisioning(None));
        assert!(is_provisioning(Some(Phase::Provisioning)));
        assert!(!is_provisioning(Some(Phase::Ready)));
    }

    #[test]
    fn elapsed_is_never_negative() {
        let at = |s| Time(Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH));
        assert_eq!(elapsed(&at(100), &at(130)), Duration::from_secs(30));
        assert_eq!(elapsed(&at(130), &at(100)), Duration::ZERO);
    }

    #[test]
    fn regions_come_from_zones() {
        assert_eq!(region_of("europe-west2-b"), "europe-west2");
        assert_eq!(region_of("us-central1-a"), "us-central1");
        assert_eq!(region_of("europe-west2"), "europe-west2");
        assert_eq!(region_of("local"), "local");
    }

    #[test]
    fn status_shares_leave_the_runner_alone() {
        let status = TestClusterGKEStatus {
            phase: Some(Phase::Running),
            cluster_name: Some("c-abcde".into()),
            phase_timestamps: Some(testcluster_resources::PhaseTimestamps {
                running_time: Some(now()),
                finish_time: Some(now()),
                pending_time: Some(now()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mine = ProvisionerStatus::from_current(&status);
        assert_eq!(mine.phase, None);
        assert_eq!(mine.phase_timestamps.finish_time, None);
        assert!(mine.phase_timestamps.pending_time.is_some());
        let encoded = serde_json::to_value(&mine).unwrap_or_default();
        assert!(encoded.get("phase").is_none());
        assert!(encoded["phaseTimestamps"].get("runningTime").is_none());
        assert_eq!(encoded["clusterName"], "c-abcde");
    }

    #[test]
    fn defaults_fill_the_template_params() {
        let tc = TestClusterGKE::new("testme-1", Default::default());
        let mut tc = tc;
        tc.metadata.namespace = Some("ns".into());
        let settings = Settings::default();
        let params = template_params(&tc, "testme-1-abcde", &settings);
        assert_eq!(params.project, settings.default_project);
        assert_eq!(params.location, settings.default_location);
        assert_eq!(params.region, "europe-west2");
        assert_eq!(params.nodes, 2);
        assert_eq!(params.machine_type, "n1-standard-4");
        assert_eq!(params.namespace, "ns");
    }
}
