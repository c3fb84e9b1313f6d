//! The reconciler: one `TestClusterGKE` at a time, from Ready to a finished job.
//!
//! - Ready with a job: ask the provisioner for access, write the kubeconfig Secret, create the
//!   Job (or find the one created before a restart), then phase Running.
//! - Running: record the pod's name; once the Job is Complete or Failed, record the outcome
//!   and phase Succeeded or Failed.
//!
//! Every step is idempotent and keyed by deterministic names, so running it twice, or after a
//! crash between two steps, never creates a second Job.
//!
//! Decisions are made on the controller's cached copy, which can be stale (a slow watch, a
//! second runner replica). Every status write is therefore conditional on the version it was
//! decided from; a conflict means "the object moved on": the reconcile re-reads it and decides
//! again, instead of failing and backing off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use parking_lot::Mutex;
use testcluster_resources::{JobRunnerSpec, Phase, TestClusterGKE};

use crate::Settings;
use crate::access::Provisioner;
use crate::error::Error;
use crate::job::{self, JobInputs};
use crate::names;
use crate::outcome::{self, Outcome};
use crate::status::{Base, RunnerStatus};

/// First retry delay after a failed reconcile; doubles per consecutive failure.
const RETRY_INITIAL: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// Retry after a second conflict in a row (the object keeps changing under the reconcile).
const CONFLICT_RETRY: Duration = Duration::from_secs(1);

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub provisioner: Provisioner,
    pub settings: Settings,
    pub recorder: Recorder,
    /// Consecutive failures per object, for back-off; cleared by a successful reconcile.
    failures: Mutex<HashMap<ObjectRef<TestClusterGKE>, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        provisioner: Provisioner,
        settings: Settings,
        recorder: Recorder,
    ) -> Context {
        Context {
            client,
            provisioner,
            settings,
            recorder,
            failures: Mutex::default(),
        }
    }
}

/// Moves one test cluster's job forward.
pub async fn reconcile(resource: Arc<TestClusterGKE>, ctx: Arc<Context>) -> Result<Action, Error> {
    let action = match reconcile_once(&resource, &ctx).await {
        Err(Error::Conflict(message)) => reconcile_fresh(&resource, &ctx, &message).await?,
        result => result?,
    };
    ctx.failures.lock().remove(&ObjectRef::from_obj(&*resource));
    Ok(action)
}

/// After a conflict: the object changed since the cached copy was read. Decide once more on
/// what the API server has now; if that changes under us too, look again shortly.
async fn reconcile_fresh(
    stale: &TestClusterGKE,
    ctx: &Context,
    message: &str,
) -> Result<Action, Error> {
    let namespace = stale.namespace().ok_or(Error::MissingNamespace)?;
    let name = stale.name_any();
    tracing::debug!(%namespace, %name, %message, "status changed since read; re-reading");
    let api: Api<TestClusterGKE> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(fresh) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if fresh.uid() != stale.uid() {
        // Deleted and created again: the new object has its own reconcile coming.
        return Ok(Action::await_change());
    }
    match reconcile_once(&fresh, ctx).await {
        Err(Error::Conflict(message)) => {
            tracing::debug!(%namespace, %name, %message, "conflict again; retrying shortly");
            Ok(Action::requeue(CONFLICT_RETRY))
        }
        result => result,
    }
}

/// The one place that decides a retry: exponential back-off per object.
pub fn error_policy(resource: Arc<TestClusterGKE>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = {
        let mut failures = ctx.failures.lock();
        let count = failures.entry(ObjectRef::from_obj(&*resource)).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let delay = retry_delay(failures);
    let (namespace, name) = (
        resource.namespace().unwrap_or_default(),
        resource.name_any(),
    );
    match error {
        // Expected while the provisioner restarts; not worth a warning.
        Error::ProvisionerUnavailable(_) => {
            tracing::info!(%namespace, %name, kind = error.kind(), %error, ?delay, "will retry")
        }
        _ => {
            tracing::warn!(%namespace, %name, kind = error.kind(), %error, ?delay, "reconcile failed")
        }
    }
    Action::requeue(delay)
}

fn retry_delay(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    RETRY_INITIAL.saturating_mul(factor).min(RETRY_MAX)
}

async fn reconcile_once(resource: &TestClusterGKE, ctx: &Context) -> Result<Action, Error> {
    if resource.meta().deletion_timestamp.is_some() {
        // The Job and Secret are owned by the resource and go with it.
        return Ok(Action::await_change());
    }
    let Some(runner) = resource
        .spec
        .job_spec
        .as_ref()
        .and_then(|j| j.runner.as_ref())
    else {
        return Ok(Action::await_change());
    };
    let run = Run {
        namespace: resource.namespace().ok_or(Error::MissingNamespace)?,
        name: resource.name_any(),
        resource,
        runner,
        ctx,
        base: Mutex::new(Base::of(resource)),
    };
    match resource.status.as_ref().and_then(|s| s.phase) {
        Some(Phase::Ready) => run.start().await,
        Some(Phase::Running) => run.follow().await,
        _ => Ok(Action::await_change()),
    }
}

/// One reconcile of one test cluster's job.
struct Run<'a> {
    namespace: String,
    name: String,
    resource: &'a TestClusterGKE,
    runner: &'a JobRunnerSpec,
    ctx: &'a Context,
    /// The version of the object this reconcile's decisions are based on; every status write is
    /// conditional on it, and moves it on.
    base: Mutex<Base>,
}

impl Run<'_> {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn job_name(&self) -> String {
        names::job(&self.name)
    }

    /// Writes the runner's status fields, on condition that the object is still at `base`.
    async fn write(&self, status: &RunnerStatus) -> Result<(), Error> {
        let mut base = self.base.lock().clone();
        status.apply(&self.api(), &self.name, &mut base).await?;
        *self.base.lock() = base;
        Ok(())
    }

    /// Ready → Running: the Job exists (created now, or found from before a restart).
    async fn start(&self) -> Result<Action, Error> {
        if self.runner.image.as_deref().unwrap_or_default().is_empty() {
            // Objects applied with kubectl skip the broker's validation; fail the run plainly
            // instead of leaving it Ready forever.
            let outcome = Outcome {
                succeeded: false,
                exit_code: None,
                reason: "InvalidJobSpec".to_owned(),
                message: "spec.jobSpec.runner.image is required to run a job".to_owned(),
                completion_time: None,
            };
            return self.finish(RunnerStatus::of(self.resource), outcome).await;
        }
        let jobs: Api<Job> = self.api();
        let job = match jobs.get_opt(&self.job_name()).await? {
            Some(job) => self.owned(job)?,
            None => self.create_job(&jobs).await?,
        };
        let mut status = RunnerStatus::of(self.resource);
        status.phase = Some(Phase::Running);
        status.job.name = Some(self.job_name());
        status.job.start_time = job.status.as_ref().and_then(|s| s.start_time.clone());
        status.running_time.get_or_insert_with(now);
        self.write(&status).await?;
        tracing::info!(namespace = %self.namespace, name = %self.name, job = %self.job_name(), "job running");
        // The Job and its pod are watched: their changes bring the next reconcile.
        Ok(Action::await_change())
    }

    /// The kubeconfig Secret, then the Job.
    async fn create_job(&self, jobs: &Api<Job>) -> Result<Job, Error> {
        let access = self
            .ctx
            .provisioner
            .cluster_access(&self.namespace, &self.name)
            .await?;
        let owner = self
            .resource
            .controller_owner_ref(&())
            .ok_or(Error::MissingUid)?;
        let secret = job::kubeconfig_secret(&self.namespace, &self.name, owner.clone(), &access);
        // Apply, not create: after a crash between the two steps this refreshes a stale token.
        let secrets: Api<Secret> = self.api();
        secrets
            .patch(
                &names::kubeconfig_secret(&self.name),
                &PatchParams::apply(names::FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await?;
        let status = self.resource.status.clone().unwrap_or_default();
        let cluster_name = non_empty(access.cluster_name)
            .or(status.cluster_name)
            .unwrap_or_default();
        let location = non_empty(access.location)
            .or(status.location)
            .or_else(|| self.resource.spec.location.clone())
            .unwrap_or_default();
        let job = job::test_job(&JobInputs {
            namespace: &self.namespace,
            name: &self.name,
            owner,
            runner: self.runner,
            cluster_name: &cluster_name,
            location: &location,
            active_deadline: self.ctx.settings.job_deadline,
        });
        let params = PostParams {
            field_manager: Some(names::FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match jobs.create(&params, &job).await {
            Ok(job) => {
                self.publish(
                    EventType::Normal,
                    "JobCreated",
                    format!("Created Job {}", self.job_name()),
                    "CreateJob",
                )
                .await;
                Ok(job)
            }
            // Another runner replica got there first: that Job is the one.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                self.owned(jobs.get(&self.job_name()).await?)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Running: record the pod, and the outcome once the Job finished.
    async fn follow(&self) -> Result<Action, Error> {
        let current = RunnerStatus::of(self.resource);
        let jobs: Api<Job> = self.api();
        let job = jobs
            .get_opt(&self.job_name())
            .await?
            .and_then(|job| self.owned(job).ok());
        let Some(job) = job else {
            let outcome = Outcome {
                succeeded: false,
                exit_code: None,
                reason: "JobDeleted".to_owned(),
                message: format!("Job {} was deleted before it finished", self.job_name()),
                completion_time: None,
            };
            return self.finish(current, outcome).await;
        };
        let pod = self.find_pod(current.job.pod.as_deref()).await?;
        let mut next = current.clone();
        next.job.name = Some(self.job_name());
        if let Some(pod) = &pod {
            next.job.pod = Some(pod.name_any());
        }
        if let Some(start) = job.status.as_ref().and_then(|s| s.start_time.clone()) {
            next.job.start_time = Some(start);
        }
        if let Some(outcome) = outcome::of(&job, pod.as_ref()) {
            return self.finish(next, outcome).await;
        }
        if next != current {
            self.write(&next).await?;
        }
        match pod.as_ref().and_then(outcome::start_failure) {
            Some(failure) => self.give_up_starting(&job, next, failure).await,
            None => Ok(Action::await_change()),
        }
    }

    /// A container that cannot start (pull error, missing ConfigMap) is retried by the kubelet
    /// forever; past the start timeout the run fails with the kubelet's reason, and the Job is
    /// deleted so that nothing keeps retrying.
    async fn give_up_starting(
        &self,
        job: &Job,
        status: RunnerStatus,
        failure: Outcome,
    ) -> Result<Action, Error> {
        let timeout = self.ctx.settings.start_timeout;
        let started = job
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .or(job.metadata.creation_timestamp.as_ref())
            .map_or_else(Timestamp::now, |t| t.0);
        let waited = Timestamp::now().duration_since(started);
        let waited = Duration::try_from(waited).unwrap_or_default();
        if waited < timeout {
            // A timer, not a poll: nothing else would wake this run when the timeout passes.
            return Ok(Action::requeue(timeout - waited));
        }
        let jobs: Api<Job> = self.api();
        let deleted = jobs
            .delete(&self.job_name(), &DeleteParams::background())
            .await;
        if let Err(error) = deleted
            && !matches!(&error, kube::Error::Api(response) if response.code == 404)
        {
            return Err(error.into());
        }
        let outcome = Outcome {
            message: format!("{} (gave up after {}s)", failure.message, timeout.as_secs()),
            ..failure
        };
        self.finish(status, outcome).await
    }

    /// Records the outcome: phase Succeeded or Failed, `job.*`, and an Event.
    async fn finish(&self, mut status: RunnerStatus, outcome: Outcome) -> Result<Action, Error> {
        status.phase = Some(if outcome.succeeded {
            Phase::Succeeded
        } else {
            Phase::Failed
        });
        status.job.exit_code = outcome.exit_code;
        status.job.reason = Some(outcome.reason.clone());
        status.job.message = Some(outcome.message.clone());
        status.job.completion_time = Some(outcome.completion_time.unwrap_or_else(now));
        status.finish_time.get_or_insert_with(now);
        self.write(&status).await?;
        tracing::info!(
            namespace = %self.namespace,
            name = %self.name,
            exit_code = ?outcome.exit_code,
            reason = %outcome.reason,
            "job finished"
        );
        if outcome.succeeded {
            self.publish(
                EventType::Normal,
                "JobSucceeded",
                outcome.message,
                "FinishJob",
            )
            .await;
        } else {
            let note = format!("{}: {}", outcome.reason, outcome.message);
            self.publish(EventType::Warning, "JobFailed", note, "FinishJob")
                .await;
        }
        Ok(Action::await_change())
    }

    /// The Job's pod: the one recorded in status if it still exists, else the newest with the
    /// Job's `job-name` label.
    async fn find_pod(&self, known: Option<&str>) -> Result<Option<Pod>, Error> {
        let pods: Api<Pod> = self.api();
        if let Some(name) = known
            && let Some(pod) = pods.get_opt(name).await?
        {
            return Ok(Some(pod));
        }
        let selector = format!("{}={}", names::LABEL_JOB_NAME, self.job_name());
        let listed = pods.list(&ListParams::default().labels(&selector)).await?;
        Ok(listed
            .items
            .into_iter()
            .max_by(|a, b| a.creation_timestamp().cmp(&b.creation_timestamp())))
    }

    /// `job` if this resource controls it.
    fn owned(&self, job: Job) -> Result<Job, Error> {
        let uid = self.resource.uid();
        let owned = job
            .owner_references()
            .iter()
            .any(|owner| owner.controller == Some(true) && Some(&owner.uid) == uid.as_ref());
        if owned {
            Ok(job)
        } else {
            Err(Error::ForeignJob(job.name_any()))
        }
    }

    /// Records an Event on the resource. A failure to record is logged, never fatal: the status
    /// already says what happened.
    async fn publish(&self, type_: EventType, reason: &str, note: String, action: &str) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self
            .ctx
            .recorder
            .publish(&event, &self.resource.object_ref(&()))
            .await
        {
            tracing::warn!(namespace = %self.namespace, name = %self.name, %error, "recording an event");
        }
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_minute() {
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(2), Duration::from_secs(1));
        assert_eq!(retry_delay(4), Duration::from_secs(4));
        assert_eq!(retry_delay(30), RETRY_MAX);
    }
}
