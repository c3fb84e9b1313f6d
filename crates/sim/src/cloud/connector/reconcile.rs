//! The controller every kind shares: finalizers, references, status, retries and deletion. What a
//! kind does in the cloud is in `actions.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource as _, ResourceExt as _};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ConnectorConfig;
use super::actions::{self, ActionError, PoolRecord};
use super::kinds::Kind;
use super::status::{self, Readiness};
use super::triggers;
use crate::cloud::Cloud;

/// Config Connector's finalizers, in the order it adds them.
pub(crate) const FINALIZERS: [&str; 2] = [
    "cnrm.cloud.google.com/finalizer",
    "cnrm.cloud.google.com/deletion-defender",
];
pub(crate) const DELETION_POLICY: &str = "cnrm.cloud.google.com/deletion-policy";

/// Config Connector re-reconciles healthy resources about every 10 minutes (drift correction).
const RESYNC: Duration = Duration::from_secs(600);
/// A safety net only: dependents are re-triggered by watches on what they reference.
const DEPENDENCY_RECHECK: Duration = Duration::from_secs(30);
/// First wait after a failed create or update; doubles per failure up to `max_retry_backoff`.
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// What one kind's controller shares between reconciles.
pub(crate) struct Context {
    pub client: kube::Client,
    pub cloud: Cloud,
    pub config: ConnectorConfig,
    pub kind: Kind,
    pub resource: ApiResource,
    recorder: Recorder,
    /// Failed attempts per object uid, so that retries back off even though each failure's own
    /// status write triggers the controller again.
    retries: Mutex<HashMap<String, Retry>>,
    /// Node pools this controller created, per object uid (used by ContainerNodePool only).
    pub pools: Mutex<HashMap<String, PoolRecord>>,
}

struct Retry {
    generation: Option<i64>,
    failures: u32,
    not_before: Instant,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// Starts the controller for `kind`; it runs until `shutdown` is cancelled.
pub(crate) fn spawn(
    kind: Kind,
    client: kube::Client,
    cloud: Cloud,
    config: ConnectorConfig,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let resource = kind.api_resource();
    let context = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: kind.controller_name(),
                instance: None,
            },
        ),
        client: client.clone(),
        cloud,
        config,
        kind,
        resource: resource.clone(),
        retries: Mutex::default(),
        pools: Mutex::default(),
    });
    let mut controller = Controller::new_with(
        Api::<DynamicObject>::all_with(client.clone(), &resource),
        watcher::Config::default(),
        resource.clone(),
    );
    for &dependency in kind.dependency_kinds() {
        let store = controller.store();
        let own = resource.clone();
        let dependency_resource = dependency.api_resource();
        controller = controller.watches_with(
            Api::<DynamicObject>::all_with(client.clone(), &dependency_resource),
            dependency_resource,
            watcher::Config::default(),
            move |changed: DynamicObject| {
                store
                    .state()
                    .into_iter()
                    .filter(|dependent| {
                        kind.references(dependent)
                            .iter()
                            .any(|r| r.names(dependency, &changed))
                    })
                    .map(|dependent| ObjectRef::from_obj_with(dependent.as_ref(), own.clone()))
                    .collect::<Vec<_>>()
            },
        );
    }
    if let Some(changes) =
        triggers::cloud_changes(kind, &context.cloud, controller.store(), resource.clone())
    {
        controller = controller.reconcile_on(changes);
    }
    let run = controller
        .run(reconcile, error_policy, context)
        .for_each(move |result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(kind = kind.name(), %object, "reconciled"),
                Err(error) => tracing::debug!(kind = kind.name(), %error, "reconcile error"),
            }
        });
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = run => {}
        }
    })
}

fn error_policy(object: Arc<DynamicObject>, error: &Error, context: Arc<Context>) -> Action {
    if let Error::Kube(kube::Error::Api(response)) = error
        && response.code == 409
    {
        // Decided on a stale copy: the newer version's watch event brings the object back.
        return Action::await_change();
    }
    tracing::debug!(
        kind = context.kind.name(),
        name = %object.name_any(),
        %error,
        "retrying after an API error"
    );
    Action::requeue(context.record_failure(&object))
}

async fn reconcile(object: Arc<DynamicObject>, context: Arc<Context>) -> Result<Action, Error> {
    let mut object = (*object).clone();
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<DynamicObject> =
        Api::namespaced_with(context.client.clone(), &namespace, &context.resource);
    if object.metadata.deletion_timestamp.is_some() {
        return finalize(&context, &api, object).await;
    }
    if let Some(wait) = context.backing_off(&object) {
        return Ok(Action::requeue(wait));
    }
    if !FINALIZERS
        .iter()
        .all(|f| object.finalizers().iter().any(|have| have == f))
    {
        object = set_finalizers(&api, object, true).await?;
    }

    let mut dependencies = Vec::new();
    for reference in context.kind.references(&object) {
        let dependency_api: Api<DynamicObject> = Api::namespaced_with(
            context.client.clone(),
            &reference.namespace,
            &reference.kind.api_resource(),
        );
        let blocked = match dependency_api.get_opt(&reference.name).await? {
            None => Readiness::dependency_not_found(
                reference.kind.name(),
                &reference.namespace,
                &reference.name,
            ),
            Some(dependency)
                if !status::is_ready(
                    &dependency.data["status"],
                    dependency.metadata.generation,
                ) =>
            {
                Readiness::dependency_not_ready(
                    reference.kind.name(),
                    &reference.namespace,
                    &reference.name,
                )
            }
            Some(dependency) => {
                dependencies.push((reference.kind, dependency));
                continue;
            }
        };
        set_status(&context, &api, &mut object, blocked, Map::new(), false).await?;
        return Ok(Action::requeue(DEPENDENCY_RECHECK));
    }

    let generation = object.metadata.generation;
    if status::is_ready(&object.data["status"], generation)
        && let Some(observed) = actions::observe(&context, &object, &dependencies).await?
    {
        // Still there: report what the cloud shows now (another API may have changed it).
        context.clear_failures(&object);
        set_status(
            &context,
            &api,
            &mut object,
            Readiness::up_to_date(),
            observed,
            false,
        )
        .await?;
        return Ok(Action::requeue(RESYNC));
    }
    // While failing, the condition stays UpdateFailed between attempts (as Config Connector's does)
    // rather than flickering through Updating on every retry.
    let failing = status::ready_condition(&object.data["status"])
        .is_some_and(|c| c["reason"] == status::UPDATE_FAILED)
        && object.data["status"]["observedGeneration"].as_i64() == generation;
    if !failing {
        set_status(
            &context,
            &api,
            &mut object,
            Readiness::updating(),
            Map::new(),
            false,
        )
        .await?;
    }
    match actions::apply(&context, &object, &dependencies).await {
        Ok(extra) => {
            context.clear_failures(&object);
            set_status(
                &context,
                &api,
                &mut object,
                Readiness::up_to_date(),
                extra,
                false,
            )
            .await?;
            Ok(Action::requeue(RESYNC))
        }
        Err(ActionError::Failed(message)) => {
            tracing::debug!(kind = context.kind.name(), name = %object.name_any(), %message, "update failed");
            let wait = context.record_failure(&object);
            set_status(
                &context,
                &api,
                &mut object,
                Readiness::update_failed(&message),
                Map::new(),
                true,
            )
            .await?;
            Ok(Action::requeue(wait))
        }
        Err(ActionError::Kube(error)) => Err(error.into()),
    }
}

/// Deletes the cloud resource (unless abandoned), then lets Kubernetes delete the object.
async fn finalize(
    context: &Context,
    api: &Api<DynamicObject>,
    mut object: DynamicObject,
) -> Result<Action, Error> {
    if !object
        .finalizers()
        .iter()
        .any(|f| FINALIZERS.contains(&f.as_str()))
    {
        return Ok(Action::await_change());
    }
    let abandon = object
        .annotations()
        .get(DELETION_POLICY)
        .is_some_and(|p| p == "abandon");
    if !abandon {
        set_status(
            context,
            api,
            &mut object,
            Readiness::deleting(),
            Map::new(),
            false,
        )
        .await?;
        match actions::delete(context, &object).await {
            Ok(()) => {}
            Err(ActionError::Failed(message)) => {
                let wait = context.record_failure(&object);
                set_status(
                    context,
                    api,
                    &mut object,
                    Readiness::delete_failed(&message),
                    Map::new(),
                    true,
                )
                .await?;
                return Ok(Action::requeue(wait));
            }
            Err(ActionError::Kube(error)) => return Err(error.into()),
        }
    }
    let reference = object.object_ref(&context.resource);
    set_finalizers(api, object, false).await?;
    let note = if abandon {
        "Successfully abandoned"
    } else {
        "Successfully deleted"
    };
    publish(context, &reference, EventType::Normal, "Deleted", note).await;
    Ok(Action::await_change())
}

/// Adds (or removes) Config Connector's finalizers, with optimistic concurrency so that others'
/// finalizer changes are never overwritten.
async fn set_finalizers(
    api: &Api<DynamicObject>,
    mut object: DynamicObject,
    present: bool,
) -> Result<DynamicObject, kube::Error> {
    let mut finalizers: Vec<String> = object
        .finalizers()
        .iter()
        .filter(|f| !FINALIZERS.contains(&f.as_str()))
        .cloned()
        .collect();
    if present {
        finalizers.extend(FINALIZERS.iter().map(|f| (*f).to_owned()));
    }
    object.metadata.finalizers = Some(finalizers);
    object.metadata.managed_fields = None;
    let name = object.name_any();
    api.replace(&name, &PostParams::default(), &object).await
}

/// Writes the Ready condition (and `extra` status fields) unless the status already says so, and
/// records an event for each change — for every failure with `always_event`, as Config Connector
/// repeats its UpdateFailed events while it retries.
async fn set_status(
    context: &Context,
    api: &Api<DynamicObject>,
    object: &mut DynamicObject,
    readiness: Readiness,
    extra: Map<String, Value>,
    always_event: bool,
) -> Result<(), kube::Error> {
    let generation = object.metadata.generation;
    let current = &object.data["status"];
    let unchanged = status::says(current, &readiness, generation)
        && extra.iter().all(|(key, value)| current[key] == *value);
    if !unchanged {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        // On condition of the version read, as Config Connector's updates are: a reconcile
        // working from a stale copy (its watch behind its own last write) must not put an
        // older condition back (UpToDate -> Updating -> UpToDate, seen under load).
        let patch = json!({
            "metadata": {"resourceVersion": object.metadata.resource_version},
            "status": status::status_patch(current, &readiness, generation, extra, &now),
        });
        *object = api
            .patch_status(
                &object.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    if !unchanged || always_event {
        let event_type = if readiness.is_warning() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let reference = object.object_ref(&context.resource);
        publish(
            context,
            &reference,
            event_type,
            readiness.reason,
            &readiness.message,
        )
        .await;
    }
    Ok(())
}

/// Events are best effort, as in every controller: a failure to record one is not a failure of the
/// reconcile.
async fn publish(
    context: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.to_owned()),
        action: reason.to_owned(),
        secondary: None,
    };
    if let Err(error) = context.recorder.publish(&event, reference).await {
        tracing::debug!(kind = context.kind.name(), %error, "recording an event failed");
    }
}

impl Context {
    /// How long `object` must still wait before its next attempt, if it is backing off. A new
    /// generation (the user changed the spec) is tried at once.
    fn backing_off(&self, object: &DynamicObject) -> Option<Duration> {
        let retries = self.retries.lock();
        let retry = retries.get(&uid_of(object))?;
        if retry.generation != object.metadata.generation {
            return None;
        }
        let now = Instant::now();
        (retry.not_before > now).then(|| retry.not_before - now)
    }

    /// Counts a failure and returns how long to wait before retrying.
    fn record_failure(&self, object: &DynamicObject) -> Duration {
        let mut retries = self.retries.lock();
        let retry = retries.entry(uid_of(object)).or_insert(Retry {
            generation: object.metadata.generation,
            failures: 0,
            not_before: Instant::now(),
        });
        retry.generation = object.metadata.generation;
        retry.failures = retry.failures.saturating_add(1);
        let wait = backoff(retry.failures, self.config.max_retry_backoff);
        retry.not_before = Instant::now() + wait;
        wait
    }

    fn clear_failures(&self, object: &DynamicObject) {
        self.retries.lock().remove(&uid_of(object));
    }
}

fn uid_of(object: &DynamicObject) -> String {
    object.uid().unwrap_or_else(|| {
        format!(
            "{}/{}",
            object.namespace().unwrap_or_default(),
            object.name_any()
        )
    })
}

/// `FIRST_RETRY` doubled per earlier failure, at most `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(2);
        assert_eq!(backoff(1, max), Duration::from_millis(250));
        assert_eq!(backoff(2, max), Duration::from_millis(500));
        assert_eq!(backoff(3, max), Duration::from_secs(1));
        assert_eq!(backoff(5, max), max);
        assert_eq!(backoff(u32::MAX, max), max);
    }
}
