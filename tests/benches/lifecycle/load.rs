//! Load that is not a lifecycle: many Ready jobless test clusters, many open watch streams, and the
//! broker's read throughput beside its health check's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use tcctl::suite::NAMESPACE;
use testcluster_api::v1 as api;
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::runs::{TIMEOUT, request};

/// Requests in flight at once while creating clusters or opening watches: well under the broker's
/// `--max-concurrent-requests` (256), so that none is refused.
const IN_FLIGHT: usize = 100;
/// Streams per HTTP/2 connection: under the server's limit of concurrent streams (hyper's default,
/// 200), so that watches beyond it need no queueing; many CI jobs would come on many connections.
pub const STREAMS_PER_CONNECTION: usize = 100;

/// Creates `count` jobless clusters named `<prefix>-<i>` and waits for each to be Ready.
pub async fn ready_clusters(
    channel: &Channel,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    futures::stream::iter((0..count).map(|i| {
        let (channel, name) = (channel.clone(), format!("{prefix}-{i}"));
        async move {
            until_ready(channel, &name)
                .await
                .with_context(|| format!("{name} not Ready"))?;
            Ok::<_, anyhow::Error>(name)
        }
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect()
    .await
}

async fn until_ready(channel: Channel, name: &str) -> anyhow::Result<()> {
    let mut broker = TestClusterServiceClient::new(channel);
    let created = broker
        .create_test_cluster(request(name, false))
        .await?
        .into_inner()
        .test_cluster
        .context("no test cluster in the response")?;
    let mut watch = broker
        .watch_test_cluster(watch_request(name, created.resource_version))
        .await?
        .into_inner();
    while let Some(message) = tokio::time::timeout(TIMEOUT, watch.message()).await?? {
        let phase = message
            .test_cluster
            .and_then(|cluster| cluster.status)
            .unwrap_or_default()
            .phase();
        match phase {
            api::Phase::Ready => return Ok(()),
            api::Phase::Failed | api::Phase::Error => anyhow::bail!("ended in {phase:?}"),
            _ => {}
        }
    }
    anyhow::bail!("the watch ended before Ready")
}

fn watch_request(name: &str, resource_version: String) -> api::WatchTestClusterRequest {
    api::WatchTestClusterRequest {
        namespace: NAMESPACE.to_owned(),
        name: name.to_owned(),
        resource_version,
    }
}

/// Opens `count` WatchTestCluster streams on the broker, spread over `names`, and returns them
/// open (unread: their first message waits in the connection's window).
pub async fn open_watches(
    endpoint: &str,
    names: &[String],
    count: usize,
) -> anyhow::Result<Vec<Streaming<api::WatchTestClusterResponse>>> {
    anyhow::ensure!(!names.is_empty(), "no clusters to watch");
    let mut channels = Vec::new();
    for _ in 0..count.div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(
            Endpoint::from_shared(endpoint.to_owned())?
                .connect()
                .await?,
        );
    }
    futures::stream::iter((0..count).map(|i| {
        let channel = channels[i / STREAMS_PER_CONNECTION].clone();
        let name = &names[i % names.len()];
        async move {
            let response = TestClusterServiceClient::new(channel)
                .watch_test_cluster(watch_request(name, String::new()))
                .await
                .with_context(|| format!("watch {i} of {name}"))?;
            Ok::<_, anyhow::Error>(response.into_inner())
        }
    }))
    .buffer_unordered(IN_FLIGHT)
    .try_collect()
    .await
}

/// Calls per second of `grpc.health.v1.Health/Check` and of `GetTestCluster` of `name` on the
/// broker, each with `workers` calls in flight for `duration`.
pub async fn throughput(
    channel: &Channel,
    name: &str,
    workers: usize,
    duration: Duration,
) -> anyhow::Result<(f64, f64)> {
    let health = HealthClient::new(channel.clone());
    let check = calls_per_second(workers, duration, move || {
        let mut health = health.clone();
        async move {
            health.check(HealthCheckRequest::default()).await?;
            Ok(())
        }
    })
    .await?;
    let broker = TestClusterServiceClient::new(channel.clone());
    let name = name.to_owned();
    let get = calls_per_second(workers, duration, move || {
        let (mut broker, name) = (broker.clone(), name.clone());
        async move {
            broker
                .get_test_cluster(api::GetTestClusterRequest {
                    namespace: NAMESPACE.to_owned(),
                    name,
                })
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok((check, get))
}

/// Runs `call` from `workers` loops for `duration`; completed calls per second. Any failed call
/// fails the measurement: a refused call would flatter the figure.
async fn calls_per_second<F, Fut>(
    workers: usize,
    duration: Duration,
    call: F,
) -> anyhow::Result<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let loops = (0..workers).map(|_| {
        let (call, done) = (call.clone(), done.clone());
        tokio::spawn(async move {
            while Instant::now() < deadline {
                call().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, tonic::Status>(())
        })
    });
    let started = Instant::now();
    for result in futures::future::join_all(loops).await {
        result?.context("a call failed")?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
