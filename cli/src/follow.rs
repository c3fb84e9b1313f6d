//! Following one run: its phase changes from `WatchTestCluster` and, once the job runs, its log lines
//! from `StreamLogs`, printed as they come; then the outcome, which decides tcctl's exit code.
//!
//! A run with a job ends with its terminal phase. A cluster without a job never reaches one (it
//! stays Ready until deleted), so following it ends once it is Ready.
//!
//! A watch interrupted by the broker (a restart, a new replica) is resumed from the last version
//! seen, a bounded number of times, so that no phase change is lost to it.
//!
//! Status lines go to stderr and the job's output to stdout, so `tcctl run ... > out.txt` keeps
//! exactly what the job printed.

use std::time::Duration;

use anyhow::{Context as _, bail};
use testcluster_api::v1 as api;
use testcluster_api::v1::log_service_client::LogServiceClient;
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;
use testcluster_auth::client::{AuthorizedChannel, Bearer};
use testcluster_service::retry::{Backoff, RetryPolicy};
use tokio::task::JoinHandle;
use tonic::{Code, Status, Streaming};

use crate::EXIT_INFRASTRUCTURE;
use crate::output::{describe_status, phase_name};

/// How long the job's logs may trail its terminal phase before tcctl stops waiting for them.
const LOG_DRAIN: Duration = Duration::from_secs(30);
/// Consecutive attempts to resume an interrupted watch before tcctl gives up.
const WATCH_RETRIES: usize = 8;
/// Pauses between those attempts: about 45 seconds in all, enough for a broker to restart.
const WATCH_RETRY: RetryPolicy =
    RetryPolicy::exponential(Duration::from_millis(500), Duration::from_secs(10))
        .with_max_attempts(WATCH_RETRIES);
/// HTTP/2 pings on the broker connection while calls are open: a long quiet watch (a cluster
/// takes minutes to create) must neither be cut by an idle proxy nor hang on a dead peer.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The last snapshot of the test cluster.
    pub test_cluster: api::TestCluster,
    /// logview's last word on the job, when its logs were streamed.
    pub final_status: Option<api::FinalStatus>,
}

impl Outcome {
    pub fn phase(&self) -> api::Phase {
        phase_of(&self.test_cluster)
    }

    /// The job's exit code as recorded in the status (or, failing that, by logview).
    pub fn job_exit_code(&self) -> Option<i32> {
        self.test_cluster
            .status
            .as_ref()
            .and_then(|status| status.job.as_ref())
            .and_then(|job| job.exit_code)
            .or_else(|| self.final_status.as_ref().and_then(|f| f.exit_code))
    }

    /// tcctl's exit code: the job's, 1 for a job that failed without one (deadline, image pull),
    /// 0 for a cluster without a job that is Ready, [`EXIT_INFRASTRUCTURE`] when the
    /// infrastructure gave up.
    pub fn exit_code(&self) -> i32 {
        match self.phase() {
            api::Phase::Succeeded => 0,
            api::Phase::Ready if !has_job(&self.test_cluster) => 0,
            api::Phase::Failed => match self.job_exit_code() {
                Some(code) if code != 0 => code,
                _ => 1,
            },
            _ => EXIT_INFRASTRUCTURE,
        }
    }
}

fn phase_of(cluster: &api::TestCluster) -> api::Phase {
    cluster
        .status
        .as_ref()
        .map_or(api::Phase::Unspecified, |status| status.phase())
}

/// Whether the test cluster has a job to run; without one it stays Ready until deleted.
pub fn has_job(cluster: &api::TestCluster) -> bool {
    cluster
        .spec
        .as_ref()
        .is_some_and(|spec| spec.job_spec.is_some())
}

/// Follows the run of `created` (as `CreateTestCluster` returned it) until a terminal phase, or,
/// for a cluster without a job, until it is Ready.
pub async fn follow(
    channel: AuthorizedChannel,
    created: &api::TestCluster,
) -> anyhow::Result<Outcome> {
    // Watching from the version create returned replays every change since (unless the API
    // server's history no longer reaches back that far: then the watch starts from the current
    // state, which is why phases are compared below, not counted).
    let mut snapshots = Snapshots::new(channel.clone(), created);
    let job = has_job(created);

    let mut last = created.clone();
    let mut shown = api::Phase::Unspecified;
    let mut logs: Option<JoinHandle<Option<api::FinalStatus>>> = None;
    loop {
        show_phase(&last, &mut shown);
        let phase = phase_of(&last);
        if logs.is_none()
            && job
            && matches!(
                phase,
                api::Phase::Running | api::Phase::Succeeded | api::Phase::Failed
            )
        {
            logs = Some(tokio::spawn(stream_logs(
                channel.clone(),
                last.namespace.clone(),
                last.name.clone(),
            )));
        }
        if is_terminal(phase) || (!job && phase == api::Phase::Ready) {
            break;
        }
        let Some(message) = snapshots.next().await? else {
            bail!("the broker ended the watch before the run finished");
        };
        if message.deleted {
            bail!(
                "test cluster {}/{} was deleted before its run finished",
                last.namespace,
                last.name
            );
        }
        if let Some(cluster) = message.test_cluster {
            last = cluster;
        }
    }

    let final_status = match logs {
        Some(handle) => tokio::time::timeout(LOG_DRAIN, handle)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
        None => None,
    };
    // logview's message usually repeats the job's, already shown with the phase.
    let job_message = last
        .status
        .as_ref()
        .and_then(|status| status.job.as_ref())
        .map(|job| job.message.as_str())
        .unwrap_or_default();
    if let Some(final_status) = &final_status
        && !final_status.message.is_empty()
        && final_status.message != job_message
    {
        eprintln!("tcctl: {}", final_status.message);
    }
    Ok(Outcome {
        test_cluster: last,
        final_status,
    })
}

fn is_terminal(phase: api::Phase) -> bool {
    matches!(
        phase,
        api::Phase::Succeeded | api::Phase::Failed | api::Phase::Error
    )
}

/// The snapshots of one test cluster, from a watch that is resumed when it breaks.
struct Snapshots {
    client: TestClusterServiceClient<AuthorizedChannel>,
    namespace: String,
    name: String,
    /// The version of the last snapshot: a resumed watch carries on after it.
    version: String,
    stream: Option<Streaming<api::WatchTestClusterResponse>>,
    /// Pauses between failed attempts since the last message.
    retries: Backoff,
    /// Failed attempts since the last message.
    failures: usize,
}

impl Snapshots {
    fn new(channel: AuthorizedChannel, created: &api::TestCluster) -> Self {
        Snapshots {
            client: TestClusterServiceClient::new(channel),
            namespace: created.namespace.clone(),
            name: created.name.clone(),
            version: created.resource_version.clone(),
            stream: None,
            retries: WATCH_RETRY.backoff(),
            failures: 0,
        }
    }

    /// The next message; `None` when the broker ended the watch.
    async fn next(&mut self) -> anyhow::Result<Option<api::WatchTestClusterResponse>> {
        loop {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let request = api::WatchTestClusterRequest {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                        resource_version: self.version.clone(),
                    };
                    match self.client.watch_test_cluster(request).await {
                        Ok(response) => self.stream.insert(response.into_inner()),
                        Err(status) => {
                            self.pause_before_retry(status).await?;
                            continue;
                        }
                    }
                }
            };
            match stream.message().await {
                Ok(message) => {
                    self.retries.reset();
                    self.failures = 0;
                    if let Some(cluster) = message.as_ref().and_then(|m| m.test_cluster.as_ref())
                        && !cluster.resource_version.is_empty()
                    {
                        self.version.clone_from(&cluster.resource_version);
                    }
                    return Ok(message);
                }
                Err(status) => {
                    self.stream = None;
                    self.pause_before_retry(status).await?;
                }
            }
        }
    }

    /// Waits before the next attempt, or gives up with `status` when it is not worth retrying.
    async fn pause_before_retry(&mut self, status: Status) -> anyhow::Result<()> {
        self.failures += 1;
        let pause = match self.retries.next_pause() {
            Some(pause) if is_retryable(&status) => pause,
            _ => bail!("watch: {}", describe_status(&status)),
        };
        eprintln!(
            "tcctl: watch interrupted ({:?}: {}); resuming in {pause:?} ({}/{WATCH_RETRIES})",
            status.code(),
            status.message(),
            self.failures
        );
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

/// Whether a failed watch may succeed when tried again: the broker shutting down or unreachable,
/// or the connection broken under the stream.
fn is_retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Aborted
            | Code::Cancelled
            | Code::ResourceExhausted
    )
}

/// Prints the phase when it changed, with what is new at that point.
fn show_phase(cluster: &api::TestCluster, shown: &mut api::Phase) {
    let phase = phase_of(cluster);
    if phase == *shown || phase == api::Phase::Unspecified {
        return;
    }
    *shown = phase;
    let status = cluster.status.clone().unwrap_or_default();
    let job = status.job.clone().unwrap_or_default();
    let detail = match phase {
        api::Phase::Provisioning | api::Phase::Pending if !status.cluster_name.is_empty() => {
            format!(" (cluster {})", status.cluster_name)
        }
        api::Phase::Ready if !status.location.is_empty() => format!(" (in {})", status.location),
        api::Phase::Running if !job.name.is_empty() => format!(" (job {})", job.name),
        api::Phase::Succeeded | api::Phase::Failed => {
            let mut detail = match job.exit_code {
                Some(code) => format!(" (exit code {code}"),
                None => " (no exit code".to_owned(),
            };
            if !job.reason.is_empty() {
                detail.push_str(&format!(", {}", job.reason));
            }
            if !job.message.is_empty() {
                detail.push_str(&format!(": {}", job.message));
            }
            detail + ")"
        }
        api::Phase::Error => match &status.error {
            Some(error) => format!(" ({}: {})", error.code, error.message),
            None => String::new(),
        },
        _ => String::new(),
    };
    eprintln!("tcctl: phase {}{detail}", phase_name(phase.into()));
}

/// Prints the job's log lines as they come, prefixed with their container; returns logview's final
/// status. Log trouble is reported but does not end the run: the status still decides the outcome.
async fn stream_logs(
    channel: AuthorizedChannel,
    namespace: String,
    name: String,
) -> Option<api::FinalStatus> {
    let mut client = LogServiceClient::new(channel);
    let request = api::StreamLogsRequest {
        namespace,
        name,
        follow: true,
    };
    let mut stream = match client.stream_logs(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            eprintln!("tcctl: logs unavailable: {}", describe_status(&status));
            return None;
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(message)) => match message.event {
                Some(api::stream_logs_response::Event::Line(line)) => {
                    println!("[{}] {}", container_name(line.container), line.text);
                }
                Some(api::stream_logs_response::Event::FinalStatus(status)) => return Some(status),
                None => {}
            },
            Ok(None) => return None,
            Err(status) => {
                eprintln!("tcctl: log stream ended: {}", describe_status(&status));
                return None;
            }
        }
    }
}

/// The container's name as in the job's pod.
pub fn container_name(container: i32) -> &'static str {
    match api::Container::try_from(container).unwrap_or(api::Container::Unspecified) {
        api::Container::Init => "init",
        api::Container::Runner => "runner",
        api::Container::Unspecified => "?",
    }
}

/// Connects to the broker, saying what to do when it is not there.
pub async fn connect(endpoint: &str, bearer: Bearer) -> anyhow::Result<AuthorizedChannel> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .with_context(|| format!("invalid endpoint {endpoint:?}"))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .connect()
        .await
        .with_context(|| {
            format!("cannot reach the broker at {endpoint} (is `tcctl up` running? or use `tcctl run --local`)")
        })?;
    Ok(bearer.on(channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(phase: api::Phase, exit_code: Option<i32>) -> Outcome {
        Outcome {
            test_cluster: api::TestCluster {
                status: Some(api::TestClusterStatus {
                    phase: phase.into(),
                    job: Some(api::JobStatus {
                        exit_code,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            final_status: None,
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(outcome(api::Phase::Succeeded, Some(0)).exit_code(), 0);
        assert_eq!(outcome(api::Phase::Failed, Some(3)).exit_code(), 3);
        assert_eq!(outcome(api::Phase::Failed, None).exit_code(), 1);
        assert_eq!(
            outcome(api::Phase::Error, None).exit_code(),
            EXIT_INFRASTRUCTURE
        );
        // Following a cluster without a job ends at Ready, which is success; with a job it is not
        // an end at all.
        assert_eq!(outcome(api::Phase::Ready, None).exit_code(), 0);
        let mut with_job = outcome(api::Phase::Ready, None);
        with_job.test_cluster.spec = Some(api::TestClusterSpec {
            job_spec: Some(api::JobSpec::default()),
            ..Default::default()
        });
        assert_eq!(with_job.exit_code(), EXIT_INFRASTRUCTURE);
    }

    #[test]
    fn watch_retries_are_bounded_and_only_for_transient_failures() {
        assert!(is_retryable(&Status::unavailable("server shutting down")));
        assert!(is_retryable(&Status::unknown("transport error")));
        assert!(!is_retryable(&Status::not_found("gone")));
        assert!(!is_retryable(&Status::invalid_argument("bad")));
        let mut retries = WATCH_RETRY.backoff();
        let pauses: Vec<Duration> = std::iter::from_fn(|| retries.next_pause()).collect();
        assert_eq!(pauses.len(), WATCH_RETRIES);
        let total: Duration = pauses.iter().sum();
        assert!(
            total > Duration::from_secs(30) && total < Duration::from_secs(60),
            "{total:?}"
        );
    }
}
