//! Lifecycle benchmark: the in-process suite driven through the broker's gRPC API as a CI job would
//! (create, watch from the returned version, stream the job's logs), measuring
//!
//! 1. one lifecycle at a time: latency from CreateTestCluster to Ready, Running, Succeeded and the
//!    cloud cluster deleted in the simulator's inventory;
//! 2. the services' API-server requests per lifecycle, by verb and resource (the simulator's own
//!    controllers are not counted);
//! 3. many concurrent lifecycles: throughput and latency;
//! 4. the process's RSS (simulator and all four services together).
//!
//! `cargo bench -p testcluster-e2e --bench lifecycle` prints the report and writes it to
//! `tests/BENCHMARKS.md`. `LIFECYCLE_SEQUENTIAL` (default 20) and `LIFECYCLE_CONCURRENT` (default
//! 100) set the number of runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::future::join_all;
use sim::SimConfig;
use sim::apiserver::RequestCounters;
use sim::cloud::Inventory;
use sim::cloud::connector::ConnectorConfig;
use sim::cloud::gke::GkeConfig;
use tcctl::suite::{NAMESPACE, Suite, SuiteConfig};
use testcluster_api::v1 as api;
use testcluster_api::v1::log_service_client::LogServiceClient;
use testcluster_api::v1::stream_logs_response::Event;
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;
use tonic::transport::Channel;

const COMMAND: &[&str] = &["sh", "-c", "echo hi"];
/// Bound on each step of a lifecycle.
const TIMEOUT: Duration = Duration::from_secs(120);

/// What is timed, from the CreateTestCluster call.
const MILESTONES: [&str; 4] = ["Ready", "Running", "Succeeded", "cloud cluster deleted"];
/// When each of [`MILESTONES`] was reached.
type Timings = [Option<Duration>; 4];

type Counts = BTreeMap<(String, String), u64>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sequential = count_from_env("LIFECYCLE_SEQUENTIAL", 20)?;
    let concurrent = count_from_env("LIFECYCLE_CONCURRENT", 100)?;
    let mut report = header();
    let rss_start = memory();

    let suite = Suite::start(config()).await?;
    let channel = Channel::from_shared(suite.broker_endpoint())?
        .connect()
        .await?;
    let inventory = suite.simulator().inventory().clone();
    let counters = suite.simulator().api().counters();
    let rss_started = memory();

    // Warm up (connections, discovery, caches), then one lifecycle at a time.
    run(&channel, &inventory, "warmup").await?;
    let mut timings = Vec::new();
    counters.reset();
    for i in 0..sequential {
        timings.push(run(&channel, &inventory, &format!("seq-{i}")).await?);
    }
    let sequential_counts = counters.snapshot();
    let idle_sequential = idle(counters).await;
    let rss_sequential = memory();
    writeln!(
        report,
        "## One lifecycle at a time ({sequential} runs)\n\n\
         Milliseconds from CreateTestCluster.\n\n{}",
        latency_table(&timings)
    )?;
    writeln!(
        report,
        "## API-server requests per lifecycle\n\n\
         Requests by the services (broker, provisioner, runner, logview), averaged over the \
         {sequential} sequential runs, each counted until its cloud cluster is gone (the last run's \
         remaining teardown shows in the first idle window). Afterwards, {idle_sequential}.\n\n{}",
        counts_table(&sequential_counts, sequential)
    )?;

    // Many at once.
    counters.reset();
    let started = Instant::now();
    let runs = (0..concurrent).map(|i| {
        let (channel, inventory) = (channel.clone(), inventory.clone());
        tokio::spawn(async move { run(&channel, &inventory, &format!("conc-{i}")).await })
    });
    let results = join_all(runs).await;
    let wall = started.elapsed();
    let concurrent_counts = counters.snapshot();
    let (mut timings, mut failures) = (Vec::new(), Vec::new());
    for result in results {
        match result? {
            Ok(t) => timings.push(t),
            Err(error) => failures.push(format!("{error:#}")),
        }
    }
    let rss_concurrent = memory();
    let idle_concurrent = idle(counters).await;
    let rss_settled = memory();
    writeln!(
        report,
        "## {concurrent} concurrent lifecycles\n\n\
         All {concurrent} created at once; {} finished (cloud cluster deleted), {} failed{}; the \
         last after {:.1} s: {:.2} lifecycles/s. Requests per lifecycle: {:.1} (sequential: \
         {:.1}). Afterwards, {idle_concurrent}.\n\n{}\n\
         Requests per lifecycle, by verb and resource:\n\n{}",
        timings.len(),
        failures.len(),
        failures
            .first()
            .map_or(String::new(), |first| format!(" (first: {first})")),
        wall.as_secs_f64(),
        timings.len() as f64 / wall.as_secs_f64(),
        total(&concurrent_counts) as f64 / concurrent as f64,
        total(&sequential_counts) as f64 / sequential as f64,
        latency_table(&timings),
        counts_table(&concurrent_counts, concurrent)
    )?;

    writeln!(
        report,
        "## Memory\n\n\
         The whole process: the simulator (API server, Config Connector, GKE fake, kubelet) and \
         the four services; the jobs' `sh` processes are not included. Cumulative: one warm-up \
         run, then the sequential runs, then the concurrent ones; every run's TestClusterGKE stays \
         as its record.\n\n\
         | when | VmRSS MiB | VmHWM MiB |\n|---|---:|---:|"
    )?;
    for (when, (rss, hwm)) in [
        ("process start", rss_start),
        ("suite started", rss_started),
        (
            &*format!("after {sequential} sequential lifecycles"),
            rss_sequential,
        ),
        (
            &*format!("after {concurrent} concurrent lifecycles"),
            rss_concurrent,
        ),
        ("10 s later", rss_settled),
    ] {
        writeln!(report, "| {when} | {rss:.1} | {hwm:.1} |")?;
    }

    print!("{report}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    std::fs::write(path, &report).with_context(|| format!("writing {path}"))?;
    eprintln!("written to {path}");
    suite.shutdown().await;
    Ok(())
}

/// The suite with a fast but not instant cloud.
fn config() -> SuiteConfig {
    let mut config = SuiteConfig::default();
    config.sim = SimConfig {
        connector: ConnectorConfig {
            cluster_create: Duration::from_millis(100),
            node_pool_create: Duration::from_millis(50),
            other_create: Duration::from_millis(20),
            delete: Duration::from_millis(20),
            ..ConnectorConfig::default()
        },
        gke: GkeConfig {
            cluster_create: Duration::from_millis(100),
            cluster_delete: Duration::from_millis(20),
            node_pool_create: Duration::from_millis(50),
            node_pool_delete: Duration::from_millis(20),
            node_pool_resize: Duration::from_millis(20),
            ..GkeConfig::default()
        },
        ..config.sim
    };
    config
}

fn count_from_env(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value.parse().with_context(|| format!("{name}={value}")),
        Err(_) => Ok(default),
    }
}

/// One lifecycle as a CI job sees it: create, watch to the end, stream the logs once the job
/// runs, then wait for the cloud cluster to be gone.
async fn run(channel: &Channel, inventory: &Inventory, name: &str) -> anyhow::Result<Timings> {
    let started = Instant::now();
    let mut broker = TestClusterServiceClient::new(channel.clone());
    let created = broker
        .create_test_cluster(request(name))
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
    let mut timings = Timings::default();
    let mut logs = None;
    let mut cluster_name = String::new();
    let mut phase = api::Phase::Unspecified;
    while let Some(message) = tokio::time::timeout(TIMEOUT, watch.message()).await?? {
        let status = message
            .test_cluster
            .and_then(|cluster| cluster.status)
            .unwrap_or_default();
        phase = status.phase();
        cluster_name = status.cluster_name;
        let milestone = match phase {
            api::Phase::Ready => 0,
            api::Phase::Running => 1,
            api::Phase::Succeeded => 2,
            _ => continue,
        };
        timings[milestone].get_or_insert(started.elapsed());
        if logs.is_none() && phase != api::Phase::Ready {
            logs = Some(tokio::spawn(log_lines(channel.clone(), name.to_owned())));
        }
    }
    ensure!(phase == api::Phase::Succeeded, "{name} ended in {phase:?}");
    let lines = logs.context("no logs streamed")?.await??;
    ensure!(lines == ["hi"], "{name} logged {lines:?}");
    inventory
        .wait_until(TIMEOUT, |inventory| {
            inventory
                .all()
                .iter()
                .any(|c| c.name == cluster_name && !c.is_live())
        })
        .await
        .map_err(|()| anyhow::anyhow!("cloud cluster {cluster_name} not deleted"))?;
    timings[3] = Some(started.elapsed());
    Ok(timings)
}

fn request(name: &str) -> api::CreateTestClusterRequest {
    api::CreateTestClusterRequest {
        namespace: NAMESPACE.to_owned(),
        name: name.to_owned(),
        spec: Some(api::TestClusterSpec {
            config_template: Some("basic".to_owned()),
            nodes: Some(1),
            job_spec: Some(api::JobSpec {
                runner: Some(api::JobRunnerSpec {
                    image: Some("bitnami/kubectl:latest".to_owned()),
                    command: COMMAND.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
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
    while let Some(message) = stream.message().await? {
        if let Some(Event::Line(line)) = message.event {
            lines.push(line.text);
        }
    }
    Ok(lines)
}

fn latency_table(timings: &[Timings]) -> String {
    let mut table =
        String::from("| milestone | p50 | p95 | max | seen |\n|---|---:|---:|---:|---:|\n");
    for (i, milestone) in MILESTONES.iter().enumerate() {
        let mut values: Vec<Duration> = timings.iter().filter_map(|t| t[i]).collect();
        values.sort();
        let ms = |q: f64| {
            let rank = ((values.len() as f64 * q).ceil() as usize).max(1);
            values
                .get(rank - 1)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        let _ = writeln!(
            table,
            "| {milestone} | {:.0} | {:.0} | {:.0} | {}/{} |",
            ms(0.5),
            ms(0.95),
            ms(1.0),
            values.len(),
            timings.len()
        );
    }
    table
}

fn counts_table(counts: &Counts, runs: usize) -> String {
    let verbs: Vec<&str> = {
        let mut verbs: Vec<&str> = counts.keys().map(|(verb, _)| verb.as_str()).collect();
        verbs.sort();
        verbs.dedup();
        verbs
    };
    let mut resources: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for ((verb, resource), n) in counts {
        resources.entry(resource).or_default().insert(verb, *n);
    }
    let per_run = |n: u64| n as f64 / runs as f64;
    let mut table = format!("| resource | {} | total |\n|---|", verbs.join(" | "));
    table.push_str(&"---:|".repeat(verbs.len() + 1));
    table.push('\n');
    for (resource, by_verb) in &resources {
        let cells: Vec<String> = verbs
            .iter()
            .map(|verb| {
                by_verb
                    .get(verb)
                    .map_or(String::new(), |n| cell(per_run(*n)))
            })
            .collect();
        let sum = by_verb.values().sum();
        let _ = writeln!(
            table,
            "| {resource} | {} | {} |",
            cells.join(" | "),
            cell(per_run(sum))
        );
    }
    let by_verb = verbs.iter().map(|verb| {
        let sum = counts
            .iter()
            .filter(|((v, _), _)| v == verb)
            .map(|(_, n)| n)
            .sum();
        cell(per_run(sum))
    });
    let _ = writeln!(
        table,
        "| **total** | {} | **{}** |",
        by_verb.collect::<Vec<_>>().join(" | "),
        cell(per_run(total(counts)))
    );
    table
}

/// The requests in two consecutive 5 s windows with no run in flight: the first may still see the
/// last teardowns; the second should see none (watches, no polling).
async fn idle(counters: &RequestCounters) -> String {
    let mut windows = Vec::new();
    for _ in 0..2 {
        counters.reset();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let counts = counters.snapshot();
        let by_request: Vec<String> = counts
            .iter()
            .map(|((verb, resource), n)| format!("{verb} {resource} {n}"))
            .collect();
        windows.push(match total(&counts) {
            0 => "0".to_owned(),
            n => format!("{n} ({})", by_request.join(", ")),
        });
    }
    format!(
        "with no run in flight: {} requests in the first 5 s, {} in the next 5 s",
        windows[0], windows[1]
    )
}

fn cell(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn total(counts: &Counts) -> u64 {
    counts.values().sum()
}

/// The process's (VmRSS, VmHWM) in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn header() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map_or("unknown", |rest| rest.trim_start_matches([' ', '\t', ':']));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "# Lifecycle benchmark\n\n\
         Generated by `cargo bench -p testcluster-e2e --bench lifecycle` (release profile; \
         `tests/benches/lifecycle.rs`) on {} — {cpus} CPUs (nproc), {cpu}.\n\n\
         The whole suite in one process: the simulator and the four services, driven through the \
         broker's gRPC API as a CI job would (CreateTestCluster, WatchTestCluster from the returned \
         version, StreamLogs once the job runs). Each run: a 1-node `basic` cluster with the job \
         `sh -c 'echo hi'`. Simulated cloud delays: ContainerCluster 100 ms, node pool 50 ms, other \
         objects 20 ms, deletes 20 ms (GKE API fake alike).\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
    )
}
