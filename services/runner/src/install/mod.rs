//! What the runner installs into a test cluster before its job starts: the metrics stack (a
//! Prometheus with its RBAC and configuration, from a directory of manifests the operator
//! chooses, see `deploy/k8s/metrics-stack`) and then the user's init manifest (key
//! `init-manifest` of the job's ConfigMap, as the seed's init container applied it).
//!
//! Both are server-side applied ([`apply`]) with the runner's field manager, so installing again is
//! harmless. The outcome is recorded as `status.installConditions` ([`CONDITION_METRICS_STACK`],
//! [`CONDITION_INIT_MANIFEST`]) and an Event, by the controller; an install that failed for good
//! (the API server refused an object, a manifest does not parse) fails the run, one that may pass
//! later is retried with back-off.

pub mod apply;
pub mod manifests;

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use kube::{Api, Client, ResourceExt as _};
use testcluster_resources::outcome::Outcome;
use testcluster_resources::{Condition, TestClusterGKE};

use crate::cluster_access::ClusterClients;
use manifests::Manifests;

/// `installConditions` type: the metrics stack is applied to the test cluster.
pub const CONDITION_METRICS_STACK: &str = "MetricsStackInstalled";
/// `installConditions` type: the user's init manifest is applied (or there is none).
pub const CONDITION_INIT_MANIFEST: &str = "InitManifestApplied";
/// The key of the job's ConfigMap that holds the init manifest.
pub use testcluster_resources::metadata::CONFIG_MAP_INIT_MANIFEST_KEY as INIT_MANIFEST_KEY;

/// Condition reasons.
pub const REASON_APPLIED: &str = "Applied";
pub const REASON_NO_INIT_MANIFEST: &str = "NoInitManifest";
/// A failure that will not pass by itself; also `job.reason` of the run it fails.
pub const REASON_METRICS_STACK_FAILED: &str = "MetricsStackFailed";
pub const REASON_INIT_MANIFEST_FAILED: &str = "InitManifestFailed";
/// A failure that may pass (the test cluster unreachable, a conflict); retried.
pub const REASON_RETRYING: &str = "Retrying";

/// What is installed, and the clients to do it with.
pub struct Installer {
    /// The metrics stack's objects; `None`: none is installed.
    stack: Option<Manifests>,
    management: Client,
    clients: Arc<ClusterClients>,
}

/// What one install did, for the controller to record.
pub struct Report {
    /// `installConditions` as they should be now.
    pub conditions: Vec<Condition>,
    /// Events to publish: type, reason, note.
    pub events: Vec<(EventType, &'static str, String)>,
    pub result: InstallResult,
}

pub enum InstallResult {
    /// Everything is in place.
    Done,
    /// Failed in a way that may pass; try again later.
    Retry(String),
    /// Failed for good: the run fails with this outcome.
    Refused(Outcome),
}

impl Installer {
    pub fn new(stack: Option<Manifests>, management: Client, clients: Arc<ClusterClients>) -> Self {
        Installer {
            stack,
            management,
            clients,
        }
    }

    /// Whether `resource` still needs an install: a metrics stack is configured and not installed
    /// yet, or the job names a ConfigMap whose init manifest was not applied yet. A failure for
    /// good is not tried again.
    pub fn pending(&self, resource: &TestClusterGKE) -> bool {
        let conditions = install_conditions(resource);
        let open = |type_: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == type_)
                .is_none_or(|c| c.status != "True" && c.reason == REASON_RETRYING)
        };
        let wants_init = config_map_of(resource).is_some();
        (self.stack.is_some() && open(CONDITION_METRICS_STACK))
            || (wants_init && open(CONDITION_INIT_MANIFEST))
    }

    /// Applies the metrics stack, then the init manifest, to the test cluster of `resource`.
    pub async fn install(&self, resource: &TestClusterGKE) -> Report {
        let mut report = Report {
            conditions: install_conditions(resource).to_vec(),
            events: Vec::new(),
            result: InstallResult::Done,
        };
        let (namespace, name) = (
            resource.namespace().unwrap_or_default(),
            resource.name_any(),
        );
        let client = match self.clients.client(&namespace, &name).await {
            Ok(client) => client,
            Err(error) => {
                let message = format!("no access to the test cluster: {error}");
                let type_ = if self.stack.is_some() {
                    CONDITION_METRICS_STACK
                } else {
                    CONDITION_INIT_MANIFEST
                };
                report.set(type_, false, REASON_RETRYING, &message);
                report.result = InstallResult::Retry(message);
                return report;
            }
        };
        if let Some(stack) = &self.stack {
            let step = Step {
                condition: CONDITION_METRICS_STACK,
                failed_reason: REASON_METRICS_STACK_FAILED,
                what: "metrics stack",
            };
            if !step.apply(&mut report, &client, Ok(stack.clone())).await {
                self.clients.forget(&namespace, &name);
                return report;
            }
        }
        if let Some(config_map) = config_map_of(resource) {
            let step = Step {
                condition: CONDITION_INIT_MANIFEST,
                failed_reason: REASON_INIT_MANIFEST_FAILED,
                what: "init manifest",
            };
            match self.init_manifest(&namespace, config_map).await {
                Ok(None) => report.set(
                    CONDITION_INIT_MANIFEST,
                    true,
                    REASON_NO_INIT_MANIFEST,
                    &format!("ConfigMap {config_map} has no key {INIT_MANIFEST_KEY}"),
                ),
                Ok(Some(manifests)) => {
                    step.apply(&mut report, &client, manifests).await;
                }
                Err(message) => {
                    report.set(CONDITION_INIT_MANIFEST, false, REASON_RETRYING, &message);
                    report.result = InstallResult::Retry(message);
                }
            }
        }
        report
    }

    /// The init manifest of the ConfigMap `name`: `None` when it has no such key; parsed, or why
    /// not (a parse failure is the manifest's, for good); `Err` when the ConfigMap cannot be read
    /// (yet).
    async fn init_manifest(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Result<Manifests, String>>, String> {
        let config_maps: Api<ConfigMap> = Api::namespaced(self.management.clone(), namespace);
        let config_map = config_maps
            .get_opt(name)
            .await
            .map_err(|error| format!("reading ConfigMap {name}: {error}"))?
            .ok_or_else(|| format!("ConfigMap {name} not found"))?;
        let Some(text) = config_map
            .data
            .as_ref()
            .and_then(|data| data.get(INIT_MANIFEST_KEY))
        else {
            return Ok(None);
        };
        let source = format!("ConfigMap {name} key {INIT_MANIFEST_KEY}");
        Ok(Some(
            Manifests::parse(text, &source).map_err(|error| error.to_string()),
        ))
    }
}

/// One thing to install, and how its outcome is worded.
struct Step {
    condition: &'static str,
    failed_reason: &'static str,
    what: &'static str,
}

impl Step {
    /// Applies `manifests` (or records why they cannot be); true when they are in place.
    async fn apply(
        &self,
        report: &mut Report,
        client: &Client,
        manifests: Result<Manifests, String>,
    ) -> bool {
        let applied = match manifests {
            Ok(manifests) => apply::apply_all(client, &manifests)
                .await
                .map(|()| manifests.objects.len())
                .map_err(|error| (error.is_permanent(), error.to_string())),
            Err(message) => Err((true, message)),
        };
        match applied {
            Ok(count) => {
                let message = format!("Applied {count} objects of the {}", self.what);
                report.set(self.condition, true, REASON_APPLIED, &message);
                report
                    .events
                    .push((EventType::Normal, self.condition, message));
                true
            }
            Err((true, error)) => {
                let message = format!("applying the {}: {error}", self.what);
                report.set(self.condition, false, self.failed_reason, &message);
                report
                    .events
                    .push((EventType::Warning, self.failed_reason, message.clone()));
                report.result = InstallResult::Refused(Outcome {
                    succeeded: false,
                    exit_code: None,
                    reason: self.failed_reason.to_owned(),
                    message,
                    completion_time: None,
                });
                false
            }
            Err((false, error)) => {
                let message = format!("applying the {}: {error}", self.what);
                report.set(self.condition, false, REASON_RETRYING, &message);
                report
                    .events
                    .push((EventType::Warning, self.failed_reason, message.clone()));
                report.result = InstallResult::Retry(message);
                false
            }
        }
    }
}

impl Report {
    /// Sets the condition `type_`; its transition time moves only when its status does.
    fn set(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let status = if status { "True" } else { "False" };
        let kept = self
            .conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone());
        let condition = Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            last_transition_time: Some(
                kept.unwrap_or_else(|| Time(k8s_openapi::jiff::Timestamp::now())),
            ),
            reason: reason.to_owned(),
            message: message.to_owned(),
        };
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => *existing = condition,
            None => self.conditions.push(condition),
        }
    }
}

fn install_conditions(resource: &TestClusterGKE) -> &[Condition] {
    resource
        .status
        .as_ref()
        .map(|s| s.install_conditions.as_slice())
        .unwrap_or_default()
}

/// The job's ConfigMap (`spec.jobSpec.runner.configMap`), which may hold an init manifest.
fn config_map_of(resource: &TestClusterGKE) -> Option<&str> {
    resource
        .spec
        .job_spec
        .as_ref()?
        .runner
        .as_ref()?
        .config_map
        .as_deref()
}

/// Whether the metrics stack of `resource` is installed.
pub fn metrics_stack_installed(resource: &TestClusterGKE) -> bool {
    install_conditions(resource)
        .iter()
        .any(|c| c.type_ == CONDITION_METRICS_STACK && c.status == "True")
}
