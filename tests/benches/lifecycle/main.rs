//! Lifecycle benchmark: the simulator (`testcluster-sim`) and each service (`testcluster-broker`,
//! `-provisioner`, `-runner`, `-logview`) as its own process, driven through the broker's gRPC API
//! as CI jobs would. It measures, beside each target:
//!
//! 1. the services' API-server requests per lifecycle, by verb and resource, from the simulator's
//!    `/metrics` (one lifecycle at a time, then many at once);
//! 2. the lifecycle's overhead beyond the simulated cloud's delays, p50 and p99, at both;
//! 3. the broker's `GetTestCluster` throughput as a ratio of its own `Health/Check`'s;
//! 4. each service's RSS idle and with many Ready jobless test clusters, and the broker's with many
//!    open `WatchTestCluster` streams.
//!
//! `cargo bench -p testcluster-e2e --bench lifecycle` runs it on the release binaries and writes
//! `tests/BENCHMARKS.md`; `-- --quick` runs a small bounded version that only prints (CI runs it
//! with `cargo test` on the debug binaries). The binaries come from the bench's own profile
//! directory; build them first (the error says how). The numbers of runs can be set with
//! `LIFECYCLE_SEQUENTIAL`, `LIFECYCLE_CONCURRENT`, `LIFECYCLE_READY` and `LIFECYCLE_WATCHES`.

mod load;
mod processes;
mod report;
mod runs;
mod sim_metrics;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use processes::{CloudDelays, Processes, Service};
use report::{Figure, cell, counts_table, latency_table, ms, quantile, top_requests, total};
use runs::Timings;
use tonic::transport::Channel;

/// A fast but not instant cloud.
const DELAYS: CloudDelays = CloudDelays {
    cluster_create: Duration::from_millis(100),
    node_pool_create: Duration::from_millis(50),
    other_create: Duration::from_millis(20),
    delete: Duration::from_millis(20),
};
/// How long without a request counts as the services having caught up.
const QUIET: Duration = Duration::from_secs(1);
/// Bound on waiting for the services to catch up or for every cloud cluster to go.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Calls in flight in the throughput comparison.
const THROUGHPUT_WORKERS: usize = 32;
/// Streams the lifecycles themselves may hold open beside the measured watches.
const STREAM_ROOM: usize = 1024;

// Targets (issue "core rebuilt for scale").
const MAX_REQUESTS_SEQUENTIAL: f64 = 50.0;
const MAX_REQUESTS_CONCURRENT: f64 = 60.0;
const MAX_OVERHEAD_P99_MS: f64 = 1000.0;
const MIN_GET_TO_HEALTH: f64 = 0.5;
const MAX_SERVICE_RSS_MIB: f64 = 64.0;
const MAX_BROKER_WATCHES_RSS_MIB: f64 = 256.0;

/// How much to run.
struct Sizes {
    quick: bool,
    sequential: usize,
    concurrent: usize,
    ready: usize,
    watches: usize,
    /// Of each of the two throughput measurements.
    throughput: Duration,
    /// The window in which an idle suite should send no request.
    idle: Duration,
}

impl Sizes {
    /// From the arguments (`--quick`; cargo adds `--bench`) and the environment.
    fn parse() -> anyhow::Result<Sizes> {
        let mut quick = false;
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--quick" => quick = true,
                "--bench" => {}
                other => bail!("unknown argument {other:?} (expected --quick)"),
            }
        }
        let (sequential, concurrent, ready, watches) = if quick {
            (3, 10, 50, 200)
        } else {
            (20, 100, 1_000, 10_000)
        };
        Ok(Sizes {
            quick,
            sequential: from_env("LIFECYCLE_SEQUENTIAL", sequential)?,
            concurrent: from_env("LIFECYCLE_CONCURRENT", concurrent)?,
            ready: from_env("LIFECYCLE_READY", ready)?.max(1),
            watches: from_env("LIFECYCLE_WATCHES", watches)?,
            throughput: Duration::from_secs(if quick { 1 } else { 5 }),
            idle: Duration::from_secs(if quick { 1 } else { 5 }),
        })
    }
}

fn from_env(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value.parse().with_context(|| format!("{name}={value}")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes = Sizes::parse()?;
    testcluster_service::install_crypto();
    let mut processes = Processes::start(DELAYS, sizes.watches + STREAM_ROOM).await?;
    let report = match measure(&processes, &sizes).await {
        Ok(report) => report,
        Err(error) => return Err(processes.explain(error)),
    };
    print!("{report}");
    if !sizes.quick {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
        std::fs::write(path, &report).with_context(|| format!("writing {path}"))?;
        eprintln!("written to {path}");
    }
    Ok(())
}

/// Everything measured, in the order run.
struct Measured {
    rss_idle: BTreeMap<Service, f64>,
    sequential: Vec<(Timings, Duration)>,
    sequential_counts: sim_metrics::Counts,
    idle_requests: sim_metrics::Counts,
    concurrent: Vec<Timings>,
    concurrent_failures: Vec<String>,
    concurrent_wall: Duration,
    concurrent_counts: sim_metrics::Counts,
    /// CPU seconds each process used during the concurrent lifecycles.
    concurrent_cpu: BTreeMap<String, f64>,
    rss_ready: BTreeMap<Service, f64>,
    health_per_second: f64,
    get_per_second: f64,
    broker_rss_watches: f64,
    sim_rss: [f64; 3],
}

async fn measure(processes: &Processes, sizes: &Sizes) -> anyhow::Result<String> {
    let sim = &processes.sim_metrics;
    let channel = Channel::from_shared(processes.broker_endpoint.clone())?
        .connect()
        .await?;

    // Warm up (connections, discovery, informers), then idle.
    runs::sequential(&channel, sim, "warmup", 1).await?;
    let before = sim.wait_settled(QUIET, SETTLE_TIMEOUT).await?;
    let rss_idle = processes.all_rss_mib()?;
    let sim_idle = processes.sim_rss_mib()?;

    eprintln!("{} lifecycles one at a time", sizes.sequential);
    let sequential = runs::sequential(&channel, sim, "seq", sizes.sequential).await?;
    let after = sim.wait_settled(QUIET, SETTLE_TIMEOUT).await?;
    let sequential_counts = after.requests_since(&before);
    tokio::time::sleep(sizes.idle).await;
    let idle_requests = sim.scrape().await?.requests_since(&after);

    eprintln!("{} lifecycles at once", sizes.concurrent);
    let before = sim.scrape().await?;
    let cpu_before = processes.cpu_seconds()?;
    let started = Instant::now();
    let (concurrent, concurrent_failures) =
        runs::concurrent(&channel, "conc", sizes.concurrent).await?;
    let after = sim.wait_settled(QUIET, SETTLE_TIMEOUT).await?;
    let concurrent_wall = started.elapsed();
    let concurrent_counts = after.requests_since(&before);
    let concurrent_cpu = processes
        .cpu_seconds()?
        .into_iter()
        .map(|(name, used)| {
            let before = cpu_before.get(&name).copied().unwrap_or_default();
            (name, used - before)
        })
        .collect();

    eprintln!("{} Ready jobless test clusters", sizes.ready);
    let names = load::ready_clusters(&channel, "ready", sizes.ready).await?;
    sim.wait_quiet(QUIET, SETTLE_TIMEOUT).await?;
    let rss_ready = processes.all_rss_mib()?;
    let sim_ready = processes.sim_rss_mib()?;

    eprintln!("GetTestCluster and Health/Check throughput");
    let (health_per_second, get_per_second) =
        load::throughput(&channel, &names[0], THROUGHPUT_WORKERS, sizes.throughput).await?;

    eprintln!("{} open WatchTestCluster streams", sizes.watches);
    let watches = load::open_watches(&processes.broker_endpoint, &names, sizes.watches).await?;
    sim.wait_quiet(QUIET, SETTLE_TIMEOUT).await?;
    let broker_rss_watches = processes.rss_mib(Service::Broker)?;
    let sim_watches = processes.sim_rss_mib()?;
    drop(watches);

    let measured = Measured {
        rss_idle,
        sequential,
        sequential_counts,
        idle_requests,
        concurrent,
        concurrent_failures,
        concurrent_wall,
        concurrent_counts,
        concurrent_cpu,
        rss_ready,
        health_per_second,
        get_per_second,
        broker_rss_watches,
        sim_rss: [sim_idle, sim_ready, sim_watches],
    };
    write(processes, sizes, &measured)
}

/// The lifecycle's time beyond the cloud's create delays, to Succeeded.
fn overheads(timings: &[Timings]) -> Vec<Duration> {
    let mut overheads: Vec<Duration> = timings
        .iter()
        .map(|t| t.succeeded.saturating_sub(DELAYS.create_path()))
        .collect();
    overheads.sort();
    overheads
}

/// Where a lifecycle's time goes, as medians: to Ready (less the cloud), to Running, to Succeeded.
fn time_split(timings: &[Timings]) -> String {
    let median = |f: &dyn Fn(&Timings) -> Duration| {
        let mut values: Vec<Duration> = timings.iter().map(f).collect();
        values.sort();
        ms(quantile(&values, 0.5))
    };
    format!(
        "medians: create→Ready {:.0} ms beyond the cloud's {:.0} ms, Ready→Running {:.0} ms, \
         Running→Succeeded {:.0} ms",
        median(&|t| t.ready.saturating_sub(DELAYS.create_path())),
        ms(DELAYS.create_path()),
        median(&|t| t.running.saturating_sub(t.ready)),
        median(&|t| t.succeeded.saturating_sub(t.running)),
    )
}

/// Who used the CPU while the lifecycles ran, against what the machine had: when the CPUs were
/// busy, the lifecycles waited for them.
fn cpu_split(used: &BTreeMap<String, f64>, wall: Duration) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let available = wall.as_secs_f64() * cpus as f64;
    let mut by_use: Vec<(&String, &f64)> = used.iter().collect();
    by_use.sort_by(|a, b| b.1.total_cmp(a.1));
    let parts: Vec<String> = by_use
        .iter()
        .map(|(name, seconds)| format!("{name} {seconds:.1} s"))
        .collect();
    format!(
        "CPU used in that phase: {} of the {available:.1} s that {cpus} CPUs had in its {:.1} s",
        parts.join(", "),
        wall.as_secs_f64()
    )
}

fn write(processes: &Processes, sizes: &Sizes, m: &Measured) -> anyhow::Result<String> {
    let (seq, conc) = (sizes.sequential, sizes.concurrent);
    let seq_timings: Vec<Timings> = m.sequential.iter().map(|(t, _)| *t).collect();
    let per_lifecycle =
        |counts: &sim_metrics::Counts, runs: usize| total(counts) as f64 / runs.max(1) as f64;

    let mut figures = vec![
        Figure::at_most(
            format!("API requests per lifecycle, one at a time ({seq} runs)"),
            per_lifecycle(&m.sequential_counts, seq),
            MAX_REQUESTS_SEQUENTIAL,
            "",
            || {
                format!(
                    "most requests per lifecycle: {}",
                    top_requests(&m.sequential_counts, seq, 4, None)
                )
            },
        ),
        Figure::at_most(
            format!("API requests per lifecycle, {conc} concurrent"),
            per_lifecycle(&m.concurrent_counts, conc),
            MAX_REQUESTS_CONCURRENT,
            "",
            || {
                format!(
                    "most requests per lifecycle: {}",
                    top_requests(
                        &m.concurrent_counts,
                        conc,
                        4,
                        Some(("one at a time", &m.sequential_counts, seq)),
                    )
                )
            },
        ),
    ];
    let concurrent_cpu = cpu_split(&m.concurrent_cpu, m.concurrent_wall);
    for (name, timings, cpu) in [
        (
            format!("lifecycle overhead p99, one at a time ({seq} runs)"),
            &seq_timings,
            None,
        ),
        (
            format!("lifecycle overhead p99, {conc} concurrent"),
            &m.concurrent,
            Some(&concurrent_cpu),
        ),
    ] {
        let overheads = overheads(timings);
        let mut figure = Figure::at_most(
            name,
            ms(quantile(&overheads, 0.99)).round(),
            MAX_OVERHEAD_P99_MS,
            "ms",
            || match cpu {
                Some(cpu) => format!("{}; {cpu}", time_split(timings)),
                None => time_split(timings),
            },
        );
        figure.measured = format!(
            "{} (p50 {:.0} ms)",
            figure.measured,
            ms(quantile(&overheads, 0.5))
        );
        figures.push(figure);
    }
    let ratio = m.get_per_second / m.health_per_second;
    let mut throughput = Figure::at_least(
        "broker GetTestCluster ÷ Health/Check throughput",
        ratio,
        MIN_GET_TO_HEALTH,
        || "GetTestCluster costs more than twice a health check".to_owned(),
    );
    throughput.measured = format!(
        "{} ({:.0} vs {:.0} calls/s)",
        throughput.measured, m.get_per_second, m.health_per_second
    );
    figures.push(throughput);
    for service in Service::ALL {
        let (idle, ready) = (m.rss_idle[&service], m.rss_ready[&service]);
        figures.push(Figure::at_most(
            format!("{} RSS idle", service.name()),
            round1(idle),
            MAX_SERVICE_RSS_MIB,
            "MiB",
            || "already over at start-up, before any test cluster".to_owned(),
        ));
        figures.push(Figure::at_most(
            format!(
                "{} RSS with {} Ready test clusters",
                service.name(),
                sizes.ready
            ),
            round1(ready),
            MAX_SERVICE_RSS_MIB,
            "MiB",
            || {
                format!(
                    "{} MiB over idle, {:.0} KiB per Ready test cluster (the {} finished runs' \
                     records are kept too)",
                    cell(round1(ready - idle)),
                    (ready - idle) * 1024.0 / sizes.ready as f64,
                    1 + seq + conc
                )
            },
        ));
    }
    let broker_ready = m.rss_ready[&Service::Broker];
    figures.push(Figure::at_most(
        format!(
            "broker RSS with {} open WatchTestCluster streams",
            sizes.watches
        ),
        round1(m.broker_rss_watches),
        MAX_BROKER_WATCHES_RSS_MIB,
        "MiB",
        || {
            format!(
                "{:.1} KiB per open stream over the {} Ready clusters' figure",
                (m.broker_rss_watches - broker_ready) * 1024.0 / sizes.watches.max(1) as f64,
                sizes.ready
            )
        },
    ));

    let mut text = header(processes, sizes);
    writeln!(text, "## Summary\n\n{}", report::summary(&figures))?;

    writeln!(
        text,
        "## One lifecycle at a time ({seq} runs)\n\n\
         Milliseconds from CreateTestCluster; overhead is the time to Succeeded less the cloud's \
         {:.0} ms on the critical path (network, subnetwork, ContainerCluster, node pool); \
         teardown is from Succeeded until the simulator's inventory shows the cloud cluster \
         deleted (scraped every 10 ms).\n\n{}",
        ms(DELAYS.create_path()),
        latency_table(&[
            ("Ready", seq_timings.iter().map(|t| t.ready).collect()),
            ("Running", seq_timings.iter().map(|t| t.running).collect()),
            (
                "Succeeded",
                seq_timings.iter().map(|t| t.succeeded).collect()
            ),
            ("overhead", overheads(&seq_timings)),
            ("teardown", m.sequential.iter().map(|(_, d)| *d).collect()),
        ])
    )?;
    let idle_total = total(&m.idle_requests);
    writeln!(
        text,
        "### API-server requests per lifecycle\n\n\
         By the services (broker, provisioner, runner, logview), from the simulator's \
         `apiserver_request_total`, averaged over the {seq} runs, counted until every cloud \
         cluster was deleted and no request came for {} s. In the {} s after that: {idle_total} \
         requests{}.\n\n{}",
        QUIET.as_secs(),
        sizes.idle.as_secs(),
        if idle_total == 0 {
            " (watches, no polling)".to_owned()
        } else {
            format!(" ({})", top_requests(&m.idle_requests, 1, 5, None))
        },
        counts_table(&m.sequential_counts, seq)
    )?;

    writeln!(
        text,
        "## {conc} concurrent lifecycles\n\n\
         All created at once: {} succeeded, {} failed{}; every cloud cluster deleted and the \
         services quiet after {:.1} s.\n\n{}\n\
         Requests per lifecycle, by verb and resource:\n\n{}",
        m.concurrent.len(),
        m.concurrent_failures.len(),
        m.concurrent_failures
            .first()
            .map_or(String::new(), |first| format!(" (first: {first})")),
        m.concurrent_wall.as_secs_f64(),
        latency_table(&[
            ("Ready", m.concurrent.iter().map(|t| t.ready).collect()),
            ("Running", m.concurrent.iter().map(|t| t.running).collect()),
            (
                "Succeeded",
                m.concurrent.iter().map(|t| t.succeeded).collect()
            ),
            ("overhead", overheads(&m.concurrent)),
        ]),
        counts_table(&m.concurrent_counts, conc)
    )?;

    writeln!(
        text,
        "## Memory\n\n\
         VmRSS in MiB from `/proc/<pid>/status`. Idle: after one warm-up lifecycle, no cloud \
         cluster live. Then, after the lifecycles above (whose {} TestClusterGKE objects stay as \
         records), {} Ready test clusters without a job, and then {} WatchTestCluster streams open \
         on the broker ({} per HTTP/2 connection) over those clusters. The simulator, which plays \
         the cloud and runs a Kubernetes API server per test cluster, has no target.\n\n\
         | process | idle | {} Ready | + {} watches |\n|---|---:|---:|---:|",
        1 + seq + conc,
        sizes.ready,
        sizes.watches,
        load::STREAMS_PER_CONNECTION,
        sizes.ready,
        sizes.watches,
    )?;
    for service in Service::ALL {
        let watches = if service == Service::Broker {
            format!("{:.1}", m.broker_rss_watches)
        } else {
            String::new()
        };
        writeln!(
            text,
            "| {} | {:.1} | {:.1} | {watches} |",
            service.name(),
            m.rss_idle[&service],
            m.rss_ready[&service]
        )?;
    }
    let [idle, ready, watches] = m.sim_rss;
    writeln!(
        text,
        "| simulator | {idle:.1} | {ready:.1} | {watches:.1} |"
    )?;
    Ok(text)
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn header(processes: &Processes, sizes: &Sizes) -> String {
    let command = if sizes.quick {
        "cargo test -p testcluster-e2e --bench lifecycle -- --quick"
    } else {
        "cargo bench -p testcluster-e2e --bench lifecycle"
    };
    format!(
        "# Lifecycle benchmark\n\n\
         Generated by `{command}` (`tests/benches/lifecycle/`) with the binaries in `{}`, on {} — \
         {}.\n\n\
         The simulator (`testcluster-sim`) and each service (`testcluster-broker`, \
         `testcluster-provisioner`, `testcluster-runner`, `testcluster-logview`) run as their own \
         processes, wired by flags as `tcctl up` wires them, and are driven through the broker's \
         gRPC API as CI jobs would (CreateTestCluster, WatchTestCluster from the returned version, \
         StreamLogs once the job runs). Each lifecycle: a 1-node `basic` cluster with the job \
         `sh -c 'echo hi'`. Simulated cloud delays: ContainerCluster {} ms, node pool {} ms, other \
         objects {} ms, deletes {} ms. Runs: {} one at a time, {} at once, {} Ready, {} watches \
         (`LIFECYCLE_SEQUENTIAL`, `LIFECYCLE_CONCURRENT`, `LIFECYCLE_READY`, \
         `LIFECYCLE_WATCHES`); throughput: {} calls in flight for {} s each.\n\n",
        processes.binaries.display(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        report::machine(),
        DELAYS.cluster_create.as_millis(),
        DELAYS.node_pool_create.as_millis(),
        DELAYS.other_create.as_millis(),
        DELAYS.delete.as_millis(),
        sizes.sequential,
        sizes.concurrent,
        sizes.ready,
        sizes.watches,
        THROUGHPUT_WORKERS,
        sizes.throughput.as_secs(),
    )
}
