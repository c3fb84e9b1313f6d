//! Lifecycles as a CI job drives them through the broker: create, watch from the returned version
//! to the end, stream the job's logs once it runs. One at a time, each also waiting for its cloud
//! cluster to be deleted, or many at once.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::future::join_all;
use tcctl::suite::NAMESPACE;
use testcluster_api::v1 as api;
use testcluster_api::v1::log_service_client::LogServiceClient;
use testcluster_api::v1::stream_logs_response::Event;
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;
use tonic::transport::Channel;

use crate::sim_metrics::SimMetrics;

/// The job every lifecycle runs, and what it logs.
const COMMAND: &[&str] = &["sh", "-c", "echo hi"];
const LOGGED: &[&str] = &["hi"];
/// Bound on each wait of a lifecycle.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// When a lifecycle reached each phase, from its CreateTestCluster call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub ready: Duration,
    pub running: Duration,
    pub succeeded: Duration,
}

/// Lifecycles one after another; each also waits for its cloud cluster to be deleted and returns
/// how long after Succeeded that was (rounded up to the metrics' scrape interval).
pub async fn sequential(
    channel: &Channel,
    sim: &SimMetrics,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<(Timings, Duration)>> {
    let mut runs = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        let timings = lifecycle(channel, &format!("{prefix}-{i}")).await?;
        sim.wait_until("the cloud cluster deleted", TIMEOUT, |s| {
            s.live_clusters == 0
        })
        .await?;
        runs.push((timings, started.elapsed().saturating_sub(timings.succeeded)));
    }
    Ok(runs)
}

/// `count` lifecycles started at once; the ones that succeeded, and the first failure's error.
pub async fn concurrent(
    channel: &Channel,
    prefix: &str,
    count: usize,
) -> anyhow::Result<(Vec<Timings>, Vec<String>)> {
    let runs = (0..count).map(|i| {
        let (channel, name) = (channel.clone(), format!("{prefix}-{i}"));
        tokio::spawn(async move { lifecycle(&channel, &name).await })
    });
    let (mut timings, mut failures) = (Vec::new(), Vec::new());
    for result in join_all(runs).await {
        match result? {
            Ok(t) => timings.push(t),
            Err(error) => failures.push(format!("{error:#}")),
        }
    }
    Ok((timings, failures))
}

/// One lifecycle, to Succeeded with the job's log streamed.
async fn lifecycle(channel: &Channel, name: &str) -> anyhow::Result<Timings> {
    let started = Instant::now();
    let mut broker = TestClusterServiceClient::new(channel.clone());
    let created = broker
        .create_test_cluster(request(name, true))
        .await?
        .into_inner()
        .test_cluster
        .context("no test cluster in the response")?;
    let mut watch = broker
        .watch_test_cluster(api::WatchTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: name.to_owned(),
            resource_version: created.resource_version,
        })
        .await?
        .into_inner();
    let (mut ready, mut running, mut succeeded) = (None, None, None);
    let mut logs = None;
    let mut phase = api::Phase::Unspecified;
    while let Some(message) = tokio::time::timeout(TIMEOUT, watch.message()).await?? {
        phase = message
            .test_cluster
            .and_then(|cluster| cluster.status)
            .unwrap_or_default()
            .phase();
        let reached = match phase {
            api::Phase::Ready => &mut ready,
            api::Phase::Running => &mut running,
            api::Phase::Succeeded => &mut succeeded,
            _ => continue,
        };
        reached.get_or_insert(started.elapsed());
        if logs.is_none() && phase != api::Phase::Ready {
            logs = Some(tokio::spawn(log_lines(channel.clone(), name.to_owned())));
        }
    }
    ensure!(phase == api::Phase::Succeeded, "{name} ended in {phase:?}");
    let lines = logs.context("no logs streamed")?.await??;
    ensure!(lines == LOGGED, "{name} logged {lines:?}");
    // A phase the watch skipped (a fast job can go from Provisioning to Running in one status
    // write) counts as reached with the next one.
    let succeeded = succeeded.context("no Succeeded")?;
    let running = running.unwrap_or(succeeded);
    Ok(Timings {
        ready: ready.unwrap_or(running),
        running,
        succeeded,
    })
}

/// A 1-node `basic` cluster, with the job or without (then it stays Ready until deleted).
pub fn request(name: &str, with_job: bool) -> api::CreateTestClusterRequest {
    let job_spec = with_job.then(|| api::JobSpec {
        runner: Some(api::JobRunnerSpec {
            image: Some("bitnami/kubectl:latest".to_owned()),
            command: COMMAND.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        ..Default::default()
    });
    api::CreateTestClusterRequest {
        namespace: NAMESPACE.to_owned(),
        name: name.to_owned(),
        spec: Some(api::TestClusterSpec {
            config_template: Some("basic".to_owned()),
            nodes: Some(1),
            job_spec,
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn log_lines(channel: Channel, name: String) -> anyhow::Result<Vec<String>> {
    let mut stream = LogServiceClient::new(channel)
        .stream_logs(api::StreamLogsRequest {
            namespace: NAMESPACE.to_owned(),
            name,
            follow: true,
        })
        .await?
        .into_inner();
    let mut lines = Vec::new();
    while let Some(message) = tokio::time::timeout(TIMEOUT, stream.message()).await?? {
        if let Some(Event::Line(line)) = message.event {
            lines.push(line.text);
        }
    }
    Ok(lines)
}
