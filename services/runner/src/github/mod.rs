//! Commit statuses on GitHub: each run's lifecycle as pending, then success, failure or error, on
//! the commit its seed label names ([`commit_status`] decides which status an object shows).
//!
//! Reconciles only [`Reporter::observe`] an object: a status that differs from the last one queued
//! for its commit and context joins a bounded queue, and one task delivers the queue in order
//! ([`deliver`]). So GitHub never blocks or fails the lifecycle: while it is down or rate limited
//! the statuses wait (backing off, and honouring `Retry-After` and `x-ratelimit-*`), and arrive in
//! order once it is back. A failure shows in `testcluster_github_status_requests_total{result}`
//! and, once per status, as a Warning Event `GitHubStatusFailed` on the test cluster.
//!
//! Reporting is off unless a token Secret is configured ([`token`]).

pub mod client;
pub mod commit_status;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource as _, ResourceExt as _};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use testcluster_resources::TestClusterGKE;
use testcluster_service::metrics::Metrics;
use testcluster_service::retry::RetryPolicy;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use client::{CallError, GitHubApi};
use commit_status::{CommitStatus, Target};
use token::Tokens;

/// Statuses waiting for GitHub at most; beyond, new ones are dropped (and counted).
const QUEUE: usize = 10_000;

/// How the runner reports to GitHub.
#[derive(Clone, Debug)]
pub struct GitHubSettings {
    /// GitHub's API, such as `https://api.github.com` (or a GitHub Enterprise `/api/v3`).
    pub api_url: String,
    /// The Secret with the token (see [`token`]); reporting is off without one.
    pub token_secret: Option<String>,
    /// Namespace of that Secret.
    pub secret_namespace: String,
    /// Base of the runs' log pages: a status's `target_url` is `<base>/<namespace>/<name>`.
    pub logs_base_url: String,
    /// Pauses between attempts at a status GitHub did not take (unless it said how long).
    pub retry: RetryPolicy,
    /// Bound on one HTTP call.
    pub timeout: Duration,
}

impl Default for GitHubSettings {
    fn default() -> Self {
        GitHubSettings {
            api_url: client::DEFAULT_API_URL.to_owned(),
            token_secret: None,
            secret_namespace: "testcluster-system".to_owned(),
            logs_base_url: "http://127.0.0.1:9103/runs".to_owned(),
            retry: RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(60)),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    /// `created`, `retried` (GitHub down, rate limited, 5xx), `refused` (4xx: dropped) or
    /// `dropped` (the queue was full).
    result: &'static str,
}

/// One status on its way.
struct Queued {
    target: Target,
    status: CommitStatus,
    about: ObjectReference,
}

/// What reconciles hand statuses to.
pub struct Reporter {
    queue: mpsc::Sender<Queued>,
    /// The last status queued per test cluster (uid), so an unchanged one is not sent again.
    last: Mutex<HashMap<String, (Target, CommitStatus)>>,
    logs_base_url: String,
    requests: Family<ResultLabels, Counter>,
}

impl Reporter {
    /// Starts the delivery task (until `shutdown`), or `None` when no token Secret is configured.
    pub fn start(
        client: &Client,
        settings: GitHubSettings,
        recorder: Recorder,
        metrics: &Metrics,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Option<Arc<Reporter>>> {
        let Some(secret) = settings.token_secret.clone() else {
            return Ok(None);
        };
        let api = GitHubApi::new(&settings.api_url, settings.timeout)?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &settings.secret_namespace);
        let tokens = Tokens::new(secrets, secret);
        let requests = metrics.register(|registry| {
            let family = Family::<ResultLabels, Counter>::default();
            registry.register(
                "testcluster_github_status_requests",
                "Commit status requests to GitHub by result",
                family.clone(),
            );
            family
        });
        let (queue, queued) = mpsc::channel(QUEUE);
        let delivery = Delivery {
            api,
            tokens,
            recorder,
            retry: settings.retry,
            requests: requests.clone(),
        };
        tokio::spawn(deliver(delivery, queued, shutdown));
        Ok(Some(Arc::new(Reporter {
            queue,
            last: Mutex::new(HashMap::new()),
            logs_base_url: settings.logs_base_url,
            requests,
        })))
    }

    /// Queues `tc`'s status if it changed since the last one queued. Never waits.
    pub fn observe(&self, tc: &TestClusterGKE) {
        let Some((target, status)) = commit_status::of(tc, &self.logs_base_url) else {
            return;
        };
        let uid = tc.uid().unwrap_or_default();
        {
            let mut last = self.last.lock();
            if last.get(&uid) == Some(&(target.clone(), status.clone())) {
                return;
            }
            last.insert(uid, (target.clone(), status.clone()));
        }
        let queued = Queued {
            target,
            status,
            about: tc.object_ref(&()),
        };
        if self.queue.try_send(queued).is_err() {
            tracing::warn!(name = %tc.name_any(), "GitHub status queue full; status dropped");
            self.requests
                .get_or_create(&ResultLabels { result: "dropped" })
                .inc();
        }
    }

    /// Forgets a test cluster that is gone.
    pub fn forget(&self, uid: &str) {
        self.last.lock().remove(uid);
    }
}

struct Delivery {
    api: GitHubApi,
    tokens: Tokens,
    recorder: Recorder,
    retry: RetryPolicy,
    requests: Family<ResultLabels, Counter>,
}

impl Delivery {
    fn count(&self, result: &'static str) {
        self.requests.get_or_create(&ResultLabels { result }).inc();
    }

    async fn attempt(&self, queued: &Queued) -> Result<(), CallError> {
        let token = self.tokens.token(&self.api).await?;
        self.api
            .create_status(&token, &queued.target, &queued.status)
            .await
    }

    /// A Warning Event on the test cluster; a lost one is only logged.
    async fn publish(&self, about: &ObjectReference, note: String) {
        let event = Event {
            type_: EventType::Warning,
            reason: "GitHubStatusFailed".to_owned(),
            note: Some(note),
            action: "ReportStatus".to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, about).await {
            tracing::warn!(%error, "recording a GitHub status event");
        }
    }
}

/// Sends the queued statuses in order, each until GitHub takes or refuses it.
async fn deliver(
    delivery: Delivery,
    mut queued: mpsc::Receiver<Queued>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            next = queued.recv() => next,
            () = shutdown.cancelled() => None,
        };
        let Some(item) = next else { return };
        let mut pauses = delivery.retry.backoff();
        let mut told = false;
        loop {
            let error = match delivery.attempt(&item).await {
                Ok(()) => {
                    delivery.count("created");
                    tracing::info!(context = %item.target.context, sha = %item.target.sha, state = item.status.state, "GitHub status created");
                    break;
                }
                Err(error) => error,
            };
            let pause = match &error {
                CallError::Refused(_) => {
                    delivery.count("refused");
                    tracing::warn!(%error, "GitHub refused a status; dropped");
                    delivery
                        .publish(
                            &item.about,
                            format!("GitHub refused the commit status: {error}"),
                        )
                        .await;
                    break;
                }
                CallError::RateLimited { after, .. } => *after,
                CallError::Transient(_) => {
                    // A refused token (401) or a rotated Secret: read it again next time.
                    delivery.tokens.invalidate();
                    pauses.next_pause().unwrap_or(delivery.retry.max)
                }
            };
            delivery.count("retried");
            tracing::warn!(%error, retry_in = ?pause, "GitHub status not created yet");
            if !told {
                told = true;
                let note = format!(
                    "GitHub did not take the commit status ({error}); retrying, the run goes on"
                );
                delivery.publish(&item.about, note).await;
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}
