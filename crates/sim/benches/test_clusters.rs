//! Memory of the whole simulator holding many test clusters, and whether it comes back after they
//! are deleted.
//!
//! The simulator runs in this process as `testcluster-sim` runs it: the management API server,
//! Config Connector, the GKE API and the workloads, plus one Kubernetes API server per test cluster.
//! Each round creates N test clusters' Config Connector objects (the seven the `basic` template
//! renders, with a node pool of two nodes) through the management API, 64 requests in flight,
//! waits until every node pool is Ready, then deletes every object and waits until the cloud and
//! the management cluster are empty again. Two rounds show whether memory grows with every run.
//!
//! The client (kube-rs over HTTPS) shares the process; what it keeps is the name of each object.
//!
//! Run: `cargo bench -p testcluster-sim --bench test_clusters` (1,000 test clusters; results in
//! `crates/sim/SCALE-1000.md`), `-- --clusters 5000` for the scale test (`SCALE-5000.md`), or
//! `-- --quick` (100 test clusters, report printed only) as CI does.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use kube::runtime::watcher::{self, Event};
use parking_lot::Mutex;
use serde_json::{Value, json};
use testcluster_sim::cloud::connector::ConnectorConfig;
use testcluster_sim::{SimConfig, Simulator};
use tokio::sync::watch;

mod measure;
mod objects;

use measure::{Stats, memory};
use objects::{config_connector_objects, resource};

const COMMAND: &str = "cargo bench -p testcluster-sim --bench test_clusters";
const NAMESPACES: usize = 100;
const CONCURRENCY: usize = 64;
const ROUNDS: usize = 2;
const NODES: u32 = 2;
/// A round must finish in this time, or the benchmark fails.
const ROUND_TIMEOUT: Duration = Duration::from_secs(1_800);

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "--quick");
    let clusters = match std::env::args().skip_while(|a| a != "--clusters").nth(1) {
        Some(n) => n.parse().context("--clusters takes a number")?,
        None if quick => 100,
        None => 1_000,
    };
    let report = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(clusters))?;
    print!("{report}");
    if !quick {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("SCALE-{clusters}.md"));
        std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
        println!("\nwritten to {}", path.display());
    }
    Ok(())
}

/// The objects of one kind that exist, by name, kept up to date by a watch on all namespaces; and
/// when each first reported `Ready`.
#[derive(Clone)]
struct Seen {
    state: Arc<Mutex<SeenState>>,
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct SeenState {
    present: HashSet<(String, String)>,
    ready_at: HashMap<(String, String), Instant>,
    /// The objects of a relist in progress.
    relisted: Option<HashSet<(String, String)>>,
}

impl Seen {
    fn start(client: kube::Client, ar: &ApiResource) -> Seen {
        let seen = Seen {
            state: Arc::default(),
            changes: watch::channel(0).0,
        };
        let api: Api<DynamicObject> = Api::all_with(client, ar);
        let task = seen.clone();
        tokio::spawn(async move {
            let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::Apply(o)) => task.apply(&o),
                    Ok(Event::Delete(o)) => task.delete(&o),
                    // A relist (after 410 Gone): what it does not list was deleted meanwhile.
                    Ok(Event::Init) => task.state.lock().relisted = Some(HashSet::new()),
                    Ok(Event::InitApply(o)) => {
                        if let Some(relisted) = &mut task.state.lock().relisted {
                            relisted.insert(Seen::key(&o));
                        }
                        task.apply(&o);
                    }
                    Ok(Event::InitDone) => task.relisted(),
                    Err(e) => eprintln!("watch: {e}"),
                }
            }
        });
        seen
    }

    fn key(o: &DynamicObject) -> (String, String) {
        (
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone().unwrap_or_default(),
        )
    }

    fn apply(&self, o: &DynamicObject) {
        let key = Seen::key(o);
        let ready = o.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let mut state = self.state.lock();
        if ready {
            state
                .ready_at
                .entry(key.clone())
                .or_insert_with(Instant::now);
        }
        state.present.insert(key);
        drop(state);
        self.changes.send_modify(|n| *n += 1);
    }

    fn delete(&self, o: &DynamicObject) {
        let key = Seen::key(o);
        let mut state = self.state.lock();
        state.present.remove(&key);
        state.ready_at.remove(&key);
        drop(state);
        self.changes.send_modify(|n| *n += 1);
    }

    fn relisted(&self) {
        let mut state = self.state.lock();
        if let Some(relisted) = state.relisted.take() {
            state.ready_at.retain(|key, _| relisted.contains(key));
            state.present = relisted;
        }
        drop(state);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Waits until `done` holds, re-checking on every event.
    async fn until(&self, what: &str, done: impl Fn(&SeenState) -> bool) -> anyhow::Result<()> {
        let mut changes = self.changes.subscribe();
        tokio::time::timeout(ROUND_TIMEOUT, async {
            while !done(&self.state.lock()) {
                changes.changed().await?;
            }
            anyhow::Ok(())
        })
        .await
        .with_context(|| format!("timed out waiting until {what}"))?
    }
}

/// What one round measured.
struct Round {
    ready_wall: Duration,
    ready_latency: Stats,
    rss_ready: f64,
    teardown_wall: Duration,
    rss_after: f64,
}

/// Runs the rounds; the report in Markdown.
async fn run(clusters: usize) -> anyhow::Result<String> {
    let (rss_start, _) = memory();
    let sim = Simulator::start(SimConfig {
        connector: ConnectorConfig {
            cluster_create: Duration::from_millis(20),
            node_pool_create: Duration::from_millis(10),
            other_create: Duration::from_millis(5),
            delete: Duration::from_millis(10),
            ..ConnectorConfig::default()
        },
        ..SimConfig::default()
    })
    .await?;
    let client = sim.api().client().await?;
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("", "v1", "Namespace", "namespaces"),
    );
    for n in 0..NAMESPACES {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": format!("ns-{n:03}"),
            "annotations": {"cnrm.cloud.google.com/project-id": "cilium-ci"},
        }});
        namespaces
            .create(&PostParams::default(), &serde_json::from_value(ns)?)
            .await?;
    }
    let kinds: Vec<ApiResource> = config_connector_objects("ns", "c", &Value::Null, NODES)
        .into_iter()
        .map(|(ar, _, _)| ar)
        .collect();
    let seen: Vec<Seen> = kinds
        .iter()
        .map(|ar| Seen::start(client.clone(), ar))
        .collect();
    let node_pools = seen
        .iter()
        .zip(&kinds)
        .find(|(_, ar)| ar.kind == "ContainerNodePool")
        .map(|(seen, _)| seen.clone())
        .context("node pools are among the objects")?;
    let (rss_idle, _) = memory();

    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        rounds.push(one_round(&sim, &client, &seen, &node_pools, round, clusters).await?);
    }
    let (rss_end, hwm) = memory();

    let mut report = String::new();
    let _ = writeln!(report, "# testcluster-sim with {clusters} test clusters\n");
    let _ = writeln!(
        report,
        "Produced by `{COMMAND}{}` ({}; source: `crates/sim/benches/test_clusters.rs`) on {}, {}. \
         The whole simulator runs in the benchmark's process: management API server, Config Connector, GKE \
         API, workloads, and one Kubernetes API server per test cluster. Each round creates {clusters} test \
         clusters' seven Config Connector objects (network, subnetwork, cluster, a node pool of {NODES} \
         nodes, service account, policy member, key) in {NAMESPACES} namespaces, {CONCURRENCY} requests in \
         flight, waits until every node pool is Ready, then deletes every object and waits until no cloud \
         cluster and no object is left.\n",
        if clusters == 1_000 {
            String::new()
        } else {
            format!(" -- --clusters {clusters}")
        },
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        },
        measure::machine(),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    let _ = writeln!(
        report,
        "| round | all Ready | RSS with {clusters} Ready | per test cluster | all deleted | RSS after deletion |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|");
    for (i, r) in rounds.iter().enumerate() {
        let _ = writeln!(
            report,
            "| {} | {:.1} s | {:.1} MiB | {:.0} KiB | {:.1} s | {:.1} MiB |",
            i + 1,
            r.ready_wall.as_secs_f64(),
            r.rss_ready,
            (r.rss_ready - rss_idle) * 1024.0 / clusters as f64,
            r.teardown_wall.as_secs_f64(),
            r.rss_after,
        );
    }
    let target = 600.0 * clusters as f64 / 1_000.0;
    let worst = rounds.iter().map(|r| r.rss_ready).fold(0.0, f64::max);
    let _ = writeln!(
        report,
        "\nTarget ≤ {target:.0} MiB with {clusters} Ready: **{}** ({worst:.1} MiB at most). Round 2 against round 1 \
         after deletion: {:+.1} MiB.",
        if worst <= target { "PASS" } else { "MISS" },
        rounds.last().map_or(0.0, |r| r.rss_after) - rounds.first().map_or(0.0, |r| r.rss_after),
    );
    let _ = writeln!(
        report,
        "\n| create → node pool Ready | clusters | p50 | p99 | max |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|");
    for (i, r) in rounds.iter().enumerate() {
        let _ = writeln!(
            report,
            "{}",
            r.ready_latency.row(&format!("round {}", i + 1))
        );
    }
    let _ = writeln!(report, "\n## Memory (VmRSS of the whole process)\n");
    let _ = writeln!(report, "| point | RSS |");
    let _ = writeln!(report, "|---|---:|");
    for (point, mib) in [
        ("process start", rss_start),
        (
            "simulator started, namespaces and watches in place",
            rss_idle,
        ),
        ("end", rss_end),
        ("peak (VmHWM)", hwm),
    ] {
        let _ = writeln!(report, "| {point} | {mib:.1} MiB |");
    }
    Ok(report)
}

async fn one_round(
    sim: &Simulator,
    client: &kube::Client,
    seen: &[Seen],
    node_pools: &Seen,
    round: usize,
    clusters: usize,
) -> anyhow::Result<Round> {
    let created_at: Arc<Mutex<HashMap<(String, String), Instant>>> = Arc::default();
    let objects: Vec<_> = (0..clusters)
        .flat_map(|i| {
            let namespace = format!("ns-{:03}", i % NAMESPACES);
            let cluster = format!("tc-{round}-{i:05}");
            config_connector_objects(
                &namespace,
                &cluster,
                &json!({"bench": "test-clusters"}),
                NODES,
            )
        })
        .collect();
    let started = Instant::now();
    futures::stream::iter(objects.iter().cloned())
        .map(|(ar, namespace, object)| {
            let client = client.clone();
            let created_at = created_at.clone();
            async move {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &ar);
                let object: DynamicObject = serde_json::from_value(object)?;
                if ar.kind == "ContainerCluster" {
                    created_at.lock().insert(
                        (namespace, object.metadata.name.clone().unwrap_or_default()),
                        Instant::now(),
                    );
                }
                api.create(&PostParams::default(), &object).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    node_pools
        .until("every node pool is Ready", |s| s.ready_at.len() == clusters)
        .await?;
    let ready_wall = started.elapsed();
    let (rss_ready, _) = memory();
    let ready_latency = {
        let state = node_pools.state.lock();
        let created_at = created_at.lock();
        Stats::new(
            state
                .ready_at
                .iter()
                .filter_map(|(key, ready)| Some(*ready - *created_at.get(key)?))
                .collect(),
        )
    };
    anyhow::ensure!(
        sim.inventory().live().len() == clusters,
        "{} live cloud clusters, expected {clusters}",
        sim.inventory().live().len()
    );

    let started = Instant::now();
    futures::stream::iter(objects)
        .map(|(ar, namespace, object)| {
            let client = client.clone();
            async move {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &ar);
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                api.delete(&name, &DeleteParams::background()).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    for kind in seen {
        kind.until("every object is gone", |s| s.present.is_empty())
            .await?;
    }
    sim.inventory()
        .wait_until_none_live(ROUND_TIMEOUT)
        .await
        .map_err(|live| anyhow::anyhow!("{} cloud clusters still live", live.len()))?;
    let teardown_wall = started.elapsed();
    let (rss_after, _) = memory();
    Ok(Round {
        ready_wall,
        ready_latency,
        rss_ready,
        teardown_wall,
        rss_after,
    })
}
