//! The reconciler: one `TestClusterGKE` at a time, from a ready cluster to a finished job.
//!
//! - Ready, no job recorded: ask the provisioner for access, write the kubeconfig Secret, create
//!   the Job (or find the one created before a restart), and record it in `status.job`.
//! - A job recorded: record the pod's name; once the Job is Complete or Failed, record the outcome
//!   in `status.job` and the `Complete` or `Failed` condition in `status.jobConditions`.
//!
//! The runner never writes the phase: the provisioner moves it on (Running, Succeeded, Failed) from
//! what the runner recorded. Every step is idempotent and keyed by deterministic names, so running
//! it twice, or after a crash between two steps, never creates a second Job. The Job and its pod
//! are read from the watches' stores, not from the API server.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use testcluster_resources::metadata::object_key;
use testcluster_resources::outcome::{self, Outcome};
use testcluster_resources::validation::{self, Naming, ObjectParts, Templates, Violations};
use testcluster_resources::{JobRunnerSpec, Phase, TestClusterGKE};

use testcluster_service::retry::{Backoffs, RetryPolicy};
use testcluster_service::stale_reads::PendingWrites;

use crate::Settings;
use crate::error::Error;
use crate::github::Reporter;
use crate::install::{InstallResult, Installer};
use crate::job::{self, JobInputs};
use crate::names;
use crate::status::RunnerStatus;

/// `job.reason` of a run whose job was never started because its spec is invalid.
pub const REASON_INVALID_JOB_SPEC: &str = "InvalidJobSpec";
/// `job.reason` of a run whose cluster's TTL ended while its job ran.
pub const REASON_EXPIRED: &str = "Expired";

/// Retries after failed reconciles: from half a second, doubling per consecutive failure, up to
/// a minute.
const RETRY: RetryPolicy =
    RetryPolicy::exponential(Duration::from_millis(500), Duration::from_secs(60));
/// Retry after a conflict, should the watch not bring the newer object first (it normally does).
const CONFLICT_RETRY: Duration = Duration::from_secs(1);

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub recorder: Recorder,
    /// The runner's Jobs and their pods, as its watches see them.
    jobs: Store<Job>,
    pods: Store<Pod>,
    /// Consecutive failures per object (`namespace/name`), for back-off; cleared by a successful
    /// reconcile.
    failures: Backoffs,
    /// The runner's status writes that the watch may not show yet.
    status_writes: PendingWrites,
    /// Commit statuses, when configured.
    github: Option<Arc<Reporter>>,
    /// What goes into a test cluster before its job.
    installer: Installer,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        recorder: Recorder,
        jobs: Store<Job>,
        pods: Store<Pod>,
        github: Option<Arc<Reporter>>,
        installer: Installer,
    ) -> Context {
        Context {
            client,
            settings,
            recorder,
            jobs,
            pods,
            failures: Backoffs::new(RETRY),
            status_writes: PendingWrites::default(),
            github,
            installer,
        }
    }
}

/// Moves one test cluster's job forward.
pub async fn reconcile(resource: Arc<TestClusterGKE>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Every change of every run is worth a look for GitHub, job or not; queuing never waits.
    if let Some(github) = &ctx.github {
        github.observe(&resource);
    }
    let action = reconcile_once(&resource, &ctx).await?;
    ctx.failures.forget(&object_key(&resource));
    Ok(action)
}

/// The one place that decides a retry: exponential back-off per object.
pub fn error_policy(resource: Arc<TestClusterGKE>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Error::Conflict(message) = error {
        // Decided on a stale copy: the newer object is on its way through the watch.
        tracing::debug!(name = %resource.name_any(), %message, "status changed since read");
        return Action::requeue(CONFLICT_RETRY);
    }
    let delay = ctx.failures.failed(&object_key(&resource));
    let (namespace, name) = (
        resource.namespace().unwrap_or_default(),
        resource.name_any(),
    );
    tracing::warn!(%namespace, %name, kind = error.kind(), %error, ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn reconcile_once(resource: &TestClusterGKE, ctx: &Context) -> Result<Action, Error> {
    let key = object_key(resource);
    if resource.meta().deletion_timestamp.is_some() {
        // The Job and Secret are owned by the resource and go with it.
        ctx.status_writes.forget(&key);
        if let Some(github) = &ctx.github {
            github.forget(&resource.uid().unwrap_or_default());
        }
        return Ok(Action::await_change());
    }
    if ctx
        .status_writes
        .is_stale(&key, resource.resource_version().as_deref())
    {
        // The store has not shown the runner's last write yet; its watch event brings the
        // object back, and a decision now would only lose a race.
        return Ok(Action::await_change());
    }
    let status = RunnerStatus::of(resource);
    if status.is_finished() {
        return Ok(Action::await_change());
    }
    let run = Run {
        namespace: resource.namespace().ok_or(Error::MissingNamespace)?,
        name: resource.name_any(),
        resource,
        runner: resource
            .spec
            .job_spec
            .as_ref()
            .and_then(|j| j.runner.as_ref()),
        ctx,
    };
    // Ready is where a job starts, after the installs; the provisioner moves the phase to Running
    // once the runner recorded it. Every other phase is not the runner's business (or the run is
    // over).
    let phase = resource.status.as_ref().and_then(|s| s.phase);
    if phase == Some(Phase::Ready) && ctx.installer.pending(resource) {
        return run.install(status).await;
    }
    if run.runner.is_none() {
        return Ok(Action::await_change());
    }
    match phase {
        Some(Phase::Ready | Phase::Running) if status.job.name.is_none() => run.start(status).await,
        Some(Phase::Ready | Phase::Running) => run.follow(status).await,
        // The TTL ended while the job ran: the job goes with its cluster.
        Some(Phase::Expired) if status.job.name.is_some() => run.stop_expired(status).await,
        _ => Ok(Action::await_change()),
    }
}

/// One reconcile of one test cluster's job.
struct Run<'a> {
    namespace: String,
    name: String,
    resource: &'a TestClusterGKE,
    /// `None` for a cluster without a job.
    runner: Option<&'a JobRunnerSpec>,
    ctx: &'a Context,
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

    /// Writes the runner's fields, and remembers that the store's copy is behind them now.
    async fn write(&self, status: &mut RunnerStatus) -> Result<(), Error> {
        status.apply(&self.api(), &self.name).await?;
        self.ctx.status_writes.wrote(
            &object_key(self.resource),
            self.resource.resource_version().as_deref(),
        );
        Ok(())
    }

    /// Ready, before the job: the metrics stack and the init manifest go into the test cluster
    /// ([`crate::install`]); the outcome is recorded in `installConditions` and Events. A refusal
    /// fails the run; anything else is retried with back-off.
    async fn install(&self, mut status: RunnerStatus) -> Result<Action, Error> {
        let report = self.ctx.installer.install(self.resource).await;
        status.install_conditions = report.conditions;
        self.write(&mut status).await?;
        for (type_, reason, note) in report.events {
            self.publish(type_, reason, note, "Install").await;
        }
        match report.result {
            // The status write brings the object back, and the job starts then.
            InstallResult::Done => Ok(Action::await_change()),
            InstallResult::Retry(message) => Err(Error::Install(message)),
            InstallResult::Refused(outcome) if self.runner.is_some() => {
                self.finish(status, outcome).await
            }
            InstallResult::Refused(_) => Ok(Action::await_change()),
        }
    }

    /// Ready: the Job exists (created now, or found from before a restart) and is recorded.
    async fn start(&self, mut status: RunnerStatus) -> Result<Action, Error> {
        // The spec may have changed (kubectl) since the provisioner checked it: a job that would
        // read what is not its own (another run's Secret) must not start, nor one that cannot.
        let violations = self.violations();
        if !violations.is_empty() {
            let outcome = Outcome {
                succeeded: false,
                exit_code: None,
                reason: REASON_INVALID_JOB_SPEC.to_owned(),
                message: violations.summary(Naming::Crd),
                completion_time: None,
            };
            return self.finish(status, outcome).await;
        }
        let jobs: Api<Job> = self.api();
        // A Job the store does not show (yet) is found by the create's AlreadyExists, so the
        // usual case, no Job, costs no read.
        let key = ObjectRef::new(&self.job_name()).within(&self.namespace);
        let job = match self.ctx.jobs.get(&key) {
            Some(job) => self.owned(job.as_ref().clone())?,
            None => self.create_job(&jobs).await?,
        };
        status.job.name = Some(self.job_name());
        status.job.start_time = job.status.as_ref().and_then(|s| s.start_time.clone());
        self.write(&mut status).await?;
        tracing::info!(namespace = %self.namespace, name = %self.name, job = %self.job_name(), "job started");
        // The Job and its pod are watched: their changes bring the next reconcile.
        Ok(Action::await_change())
    }

    /// What the shared rules find wrong with the object, templates aside (the provisioner's).
    fn violations(&self) -> Violations {
        let empty = Default::default();
        let metadata = &self.resource.metadata;
        validation::validate_object(
            ObjectParts {
                name: &self.name,
                labels: metadata.labels.as_ref().unwrap_or(&empty),
                annotations: metadata.annotations.as_ref().unwrap_or(&empty),
                spec: &self.resource.spec,
            },
            Templates::Any,
        )
    }

    /// This run's Job: from the store, or, when the store does not have it (yet: it may have been
    /// created just before), from the API server.
    async fn job(&self, jobs: &Api<Job>) -> Result<Option<Job>, Error> {
        let key = ObjectRef::new(&self.job_name()).within(&self.namespace);
        let job = match self.ctx.jobs.get(&key) {
            Some(job) => Some(job.as_ref().clone()),
            None => jobs.get_opt(&self.job_name()).await?,
        };
        job.map(|job| self.owned(job)).transpose()
    }

    /// The spec's deadline (or the default, at most the maximum), and never past the cluster's
    /// `expiresAt`: a job outliving its cluster would fail on a missing cluster instead of with
    /// `DeadlineExceeded`.
    fn job_deadline(&self) -> Duration {
        let deadline =
            (self.ctx.settings.lifetimes).job_deadline(self.resource.spec.job_spec.as_ref());
        let left = self
            .resource
            .status
            .as_ref()
            .and_then(|s| s.expires_at.as_ref())
            .map(|at| {
                Duration::try_from(at.0.duration_since(Timestamp::now())).unwrap_or_default()
            });
        left.map_or(deadline, |left| deadline.min(left))
    }

    /// The Job, mounting the kubeconfig Secret the provisioner wrote when the cluster became
    /// ready.
    async fn create_job(&self, jobs: &Api<Job>) -> Result<Job, Error> {
        let owner = self
            .resource
            .controller_owner_ref(&())
            .ok_or(Error::MissingUid)?;
        let status = self.resource.status.clone().unwrap_or_default();
        let cluster_name = status.cluster_name.unwrap_or_default();
        let location = status
            .location
            .or_else(|| self.resource.spec.location.clone())
            .unwrap_or_default();
        let runner = self.runner.ok_or(Error::NoJob)?;
        let job = job::test_job(&JobInputs {
            namespace: &self.namespace,
            name: &self.name,
            owner,
            runner,
            images_to_test: (self.resource.spec.job_spec.as_ref())
                .and_then(|job| job.images_to_test.as_ref()),
            cluster_name: &cluster_name,
            location: &location,
            active_deadline: self.job_deadline(),
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

    /// A job is recorded: record its pod, and the outcome once the Job finished.
    async fn follow(&self, current: RunnerStatus) -> Result<Action, Error> {
        let jobs: Api<Job> = self.api();
        let job = match self.job(&jobs).await {
            // A Job of that name that is not ours is, for this run, no Job at all.
            Err(Error::ForeignJob(_)) => None,
            job => job?,
        };
        let Some(job) = job else {
            return self
                .finish(current, outcome::job_deleted(&self.job_name()))
                .await;
        };
        let pod = self.find_pod(current.job.pod.as_deref());
        let mut next = current.clone();
        if let Some(pod) = &pod {
            next.job.pod = Some(pod.name_any());
        }
        if let Some(start) = job.status.as_ref().and_then(|s| s.start_time.clone()) {
            next.job.start_time = Some(start);
        }
        if let Some(outcome) = outcome::of(&job, pod.as_deref()) {
            return self.finish(next, outcome).await;
        }
        if next != current {
            self.write(&mut next).await?;
        }
        match pod.as_deref().and_then(outcome::start_failure) {
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
        self.delete_job().await?;
        let outcome = Outcome {
            message: format!("{} (gave up after {}s)", failure.message, timeout.as_secs()),
            ..failure
        };
        self.finish(status, outcome).await
    }

    /// The cluster expired under a running job: delete the Job (its cluster is going) and record
    /// the run as failed with reason `Expired`.
    async fn stop_expired(&self, status: RunnerStatus) -> Result<Action, Error> {
        self.delete_job().await?;
        let outcome = Outcome {
            succeeded: false,
            exit_code: None,
            reason: REASON_EXPIRED.to_owned(),
            message: "the test cluster's TTL ended while the job ran".to_owned(),
            completion_time: None,
        };
        self.finish(status, outcome).await
    }

    /// Deletes the Job (and, in the background, its pod); gone already is fine.
    async fn delete_job(&self) -> Result<(), Error> {
        let jobs: Api<Job> = self.api();
        match jobs
            .delete(&self.job_name(), &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Records the outcome (`job.*` and its condition) and an Event.
    async fn finish(&self, mut status: RunnerStatus, outcome: Outcome) -> Result<Action, Error> {
        status.finish(&outcome, &now());
        self.write(&mut status).await?;
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

    /// The Job's pod, from the store: the one recorded in status if it still exists, else the
    /// newest with the Job's `job-name` label.
    fn find_pod(&self, known: Option<&str>) -> Option<Arc<Pod>> {
        if let Some(name) = known
            && let Some(pod) = self
                .ctx
                .pods
                .get(&ObjectRef::new(name).within(&self.namespace))
        {
            return Some(pod);
        }
        let job_name = self.job_name();
        self.ctx
            .pods
            .state()
            .into_iter()
            .filter(|pod| {
                pod.metadata.namespace.as_deref() == Some(self.namespace.as_str())
                    && pod.labels().get(names::LABEL_JOB_NAME) == Some(&job_name)
            })
            .max_by(|a, b| a.creation_timestamp().cmp(&b.creation_timestamp()))
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
