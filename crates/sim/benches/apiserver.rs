//! Load benchmark of the simulated Kubernetes API server, through kube-rs over HTTPS as services
//! connect to it.
//!
//! 1. Creates 1,000 simulated test clusters' worth of objects (10 each: a TestClusterGKE, the seven
//!    Config Connector objects behind it, a ConfigMap and a Secret) in 100 namespaces, 64 requests in
//!    flight.
//! 2. Lists: one namespace, all namespaces, a label selector, paging.
//! 3. Fan-out: 100 concurrent watches on TestClusterGKE in all namespaces; 200 sequential writes,
//!    timing each from just before the write is sent to the moment each watcher has decoded it.
//! 4. Deletes 1,000 objects (each deletion wakes the garbage collector), then measures how long the
//!    garbage collector takes to remove an object whose owner was deleted.
//!
//! Client and server share this process and the machine's cores, so every figure includes the
//! client's own TLS and JSON work. Results go to stdout and to `crates/sim/BENCHMARKS.md`.
//!
//! Run: `cargo bench -p testcluster-sim --bench apiserver`

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use testcluster_sim::apiserver::{ApiServer, ApiServerConfig};

mod measure;
mod objects;

use measure::{Stats, memory};
use objects::{config_connector_objects, resource};

const COMMAND: &str = "cargo bench -p testcluster-sim --bench apiserver";
const NAMESPACES: usize = 100;
const CLUSTERS: usize = 1_000;
const CONCURRENCY: usize = 64;
const WATCHERS: usize = 100;
const FANOUT_WRITES: usize = 200;
const DELETES: usize = 1_000;
const GC_ROUNDS: usize = 20;

const CNRM_CRDS: [&str; 7] = [
    include_str!("../crds/computenetworks.compute.cnrm.cloud.google.com.yaml"),
    include_str!("../crds/computesubnetworks.compute.cnrm.cloud.google.com.yaml"),
    include_str!("../crds/containerclusters.container.cnrm.cloud.google.com.yaml"),
    include_str!("../crds/containernodepools.container.cnrm.cloud.google.com.yaml"),
    include_str!("../crds/iampolicymembers.iam.cnrm.cloud.google.com.yaml"),
    include_str!("../crds/iamserviceaccountkeys.iam.cnrm.cloud.google.com.yaml"),
    include_str!("../crds/iamserviceaccounts.iam.cnrm.cloud.google.com.yaml"),
];

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

fn tcg() -> ApiResource {
    resource(
        "clusters.ci.cilium.io",
        "v1alpha2",
        "TestClusterGKE",
        "testclustersgke",
    )
}

fn tcg_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "testclustersgke.clusters.ci.cilium.io"},
        "spec": {
            "group": "clusters.ci.cilium.io",
            "scope": "Namespaced",
            "names": {"kind": "TestClusterGKE", "listKind": "TestClusterGKEList", "plural": "testclustersgke",
                      "singular": "testclustergke", "shortNames": ["tcg", "tcgke"]},
            "versions": [{
                "name": "v1alpha2", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

/// The ten objects of simulated test cluster `i`: its TestClusterGKE, the Config Connector objects
/// behind it, and a ConfigMap and a Secret.
fn cluster_objects(i: usize) -> Vec<(ApiResource, String, Value)> {
    let namespace = format!("ns-{:03}", i % NAMESPACES);
    let name = format!("tc-{i:04}");
    let cluster = format!("{name}-x7k2p");
    let labels = json!({"testcluster.ci.cilium.io/name": name, "testcluster.ci.cilium.io/shard": format!("s{}", i % 100)});
    let meta = |name: &str| json!({"name": name, "namespace": namespace, "labels": labels});
    let mut objects = vec![(
        tcg(),
        namespace.clone(),
        json!({
            "apiVersion": "clusters.ci.cilium.io/v1alpha2", "kind": "TestClusterGKE",
            "metadata": meta(&name),
            "spec": {"configTemplate": "basic", "machineType": "n1-standard-4", "nodes": 2,
                     "project": "cilium-ci", "location": "europe-west2-b", "region": "europe-west2",
                     "jobSpec": {"runner": {"image": "cilium/cilium-test:8cfdbfe",
                                            "command": ["/usr/local/bin/test-gke.sh"]}}},
        }),
    )];
    objects.extend(config_connector_objects(&namespace, &cluster, &labels, 2));
    objects.extend([
        (
            resource("", "v1", "ConfigMap", "configmaps"),
            namespace.clone(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&format!("{name}-init")),
                   "data": {"init-manifest": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: monitoring\n".repeat(4)}}),
        ),
        (
            resource("", "v1", "Secret", "secrets"),
            namespace.clone(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(&format!("{name}-kubeconfig")),
                   "type": "Opaque", "data": {"kubeconfig": "a3ViZWNvbmZpZw==".repeat(64)}}),
        ),
    ]);
    objects
}

async fn run() -> anyhow::Result<()> {
    let mut report = String::new();
    let (rss_start, _) = memory();
    let api = ApiServer::start(ApiServerConfig {
        name: "bench".into(),
        ..ApiServerConfig::default()
    })
    .await?;
    let client = api.client().await?;
    let (rss_empty, _) = memory();

    // Setup: CRDs and namespaces.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for yaml in CNRM_CRDS {
        let crd: CustomResourceDefinition = yaml_serde::from_str(yaml)?;
        crds.create(&PostParams::default(), &crd).await?;
    }
    crds.create(&PostParams::default(), &serde_json::from_value(tcg_crd())?)
        .await?;
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("", "v1", "Namespace", "namespaces"),
    );
    for n in 0..NAMESPACES {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n:03}")}});
        namespaces
            .create(&PostParams::default(), &serde_json::from_value(ns)?)
            .await?;
    }

    // 1. Creates.
    let objects: Vec<_> = (0..CLUSTERS).flat_map(cluster_objects).collect();
    let total = objects.len();
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(objects)
        .map(|(ar, namespace, object)| {
            let client = client.clone();
            async move {
                let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &ar);
                let object: DynamicObject = serde_json::from_value(object)?;
                let t0 = Instant::now();
                api.create(&PostParams::default(), &object).await?;
                anyhow::Ok(t0.elapsed())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let create_wall = started.elapsed();
    let creates = Stats::new(latencies);
    let (rss_full, _) = memory();

    // 2. Lists.
    let tcgs: Api<DynamicObject> = Api::all_with(client.clone(), &tcg());
    let configmaps = resource("", "v1", "ConfigMap", "configmaps");
    let mut list_rows = Vec::new();
    {
        let one_ns: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "ns-007", &configmaps);
        let all_cm: Api<DynamicObject> = Api::all_with(client.clone(), &configmaps);
        let mut samples = Vec::new();
        for _ in 0..200 {
            let t0 = Instant::now();
            let list = one_ns.list(&ListParams::default()).await?;
            samples.push(t0.elapsed());
            anyhow::ensure!(list.items.len() == CLUSTERS / NAMESPACES, "one namespace");
        }
        list_rows.push(Stats::new(samples).row(&format!(
            "ConfigMaps in one namespace ({} items)",
            CLUSTERS / NAMESPACES
        )));
        let mut samples = Vec::new();
        for _ in 0..50 {
            let t0 = Instant::now();
            let list = tcgs.list(&ListParams::default()).await?;
            samples.push(t0.elapsed());
            anyhow::ensure!(list.items.len() == CLUSTERS, "all TestClusterGKE");
        }
        list_rows.push(Stats::new(samples).row(&format!(
            "TestClusterGKE, all namespaces ({CLUSTERS} items)"
        )));
        let mut samples = Vec::new();
        for round in 0..50 {
            let selector = format!("testcluster.ci.cilium.io/shard=s{}", round % 100);
            let t0 = Instant::now();
            let list = all_cm
                .list(&ListParams::default().labels(&selector))
                .await?;
            samples.push(t0.elapsed());
            anyhow::ensure!(list.items.len() == CLUSTERS / 100, "label selector");
        }
        list_rows.push(Stats::new(samples).row(&format!(
            "ConfigMaps, all namespaces, label selector ({} of {CLUSTERS} match)",
            CLUSTERS / 100
        )));
        let mut samples = Vec::new();
        for _ in 0..20 {
            let t0 = Instant::now();
            let mut params = ListParams::default().limit(100);
            let mut seen = 0;
            loop {
                let page = tcgs.list(&params).await?;
                seen += page.items.len();
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
            samples.push(t0.elapsed());
            anyhow::ensure!(seen == CLUSTERS, "paged list saw {seen}");
        }
        list_rows.push(Stats::new(samples).row(&format!(
            "TestClusterGKE, all namespaces, pages of 100 ({CLUSTERS} items, whole walk)"
        )));
    }

    // 3. Watch fan-out.
    let rv = tcgs
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .context("list resourceVersion")?;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let tcgs = tcgs.clone();
        let rv = rv.clone();
        let seen_tx = seen_tx.clone();
        watchers.push(tokio::spawn(async move {
            let params = WatchParams::default().timeout(290);
            let mut stream = tcgs.watch(&params, &rv).await?.boxed();
            while let Some(event) = stream.try_next().await? {
                if let WatchEvent::Modified(object) = event
                    && let Some(seq) = object
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("bench/seq"))
                        .and_then(|s| s.parse::<usize>().ok())
                {
                    let _ = seen_tx.send((seq, Instant::now()));
                }
            }
            anyhow::Ok(())
        }));
    }
    drop(seen_tx);
    let mut all_seen = Vec::new();
    let mut each_seen = Vec::new();
    let mut write_latency = Vec::new();
    // Write 0 is a warm-up: it completes once every watch is established.
    for seq in 0..=FANOUT_WRITES {
        let i = (seq * 7) % CLUSTERS;
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &format!("ns-{:03}", i % NAMESPACES), &tcg());
        let patch = json!({"metadata": {"annotations": {"bench/seq": seq.to_string()}}});
        let t0 = Instant::now();
        api.patch(
            &format!("tc-{i:04}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        let written = t0.elapsed();
        let mut count = 0;
        let mut last = t0;
        while count < WATCHERS {
            let (s, at) = tokio::time::timeout(Duration::from_secs(30), seen_rx.recv())
                .await
                .context("watchers did not see a write within 30 s")?
                .context("watchers ended")?;
            anyhow::ensure!(s == seq, "watcher saw write {s} while waiting for {seq}");
            count += 1;
            last = last.max(at);
            if seq > 0 {
                each_seen.push(at - t0);
            }
        }
        if seq > 0 {
            write_latency.push(written);
            all_seen.push(last - t0);
        }
    }
    let (rss_watching, _) = memory();
    for watcher in &watchers {
        watcher.abort();
    }

    // 4. Deletes.
    let started = Instant::now();
    let delete_latencies: Vec<Duration> = futures::stream::iter(0..DELETES)
        .map(|i| {
            let api: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                &format!("ns-{:03}", i % NAMESPACES),
                &configmaps,
            );
            async move {
                let t0 = Instant::now();
                api.delete(&format!("tc-{i:04}-init"), &DeleteParams::default())
                    .await?;
                anyhow::Ok(t0.elapsed())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let delete_wall = started.elapsed();
    let deletes = Stats::new(delete_latencies);

    // 5. Garbage collection: from deleting an owner until its dependent is gone.
    let mut gc_samples = Vec::new();
    let gc_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "ns-000", &configmaps);
    for round in 0..GC_ROUNDS {
        let owner: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("owner-{round}")},
        }))?;
        let owner = gc_api.create(&PostParams::default(), &owner).await?;
        let uid = owner.metadata.uid.context("owner uid")?;
        let dependent: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("dependent-{round}"), "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": format!("owner-{round}"), "uid": uid,
            }]},
        }))?;
        gc_api.create(&PostParams::default(), &dependent).await?;
        let t0 = Instant::now();
        gc_api
            .delete(&format!("owner-{round}"), &DeleteParams::background())
            .await?;
        while gc_api
            .get_opt(&format!("dependent-{round}"))
            .await?
            .is_some()
        {
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "dependent not collected"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        gc_samples.push(t0.elapsed());
    }
    let (rss_end, hwm) = memory();

    // Report.
    let per_second = |n: usize, d: Duration| format!("{:.0}/s", n as f64 / d.as_secs_f64());
    let _ = writeln!(report, "# testcluster-sim API server benchmark\n");
    let _ = writeln!(
        report,
        "Produced by `{COMMAND}` (release build; source: `crates/sim/benches/apiserver.rs`) on {}, {}. \
         Client (kube-rs over HTTPS with a bearer token, as the services connect) and server \
         share this process and these cores, so every figure includes the client's TLS and JSON work. \
         Latencies are per request.\n",
        measure::machine(),
        chrono::Utc::now().format("%Y-%m-%d")
    );
    let _ = writeln!(report, "## Creating {total} objects\n");
    let _ = writeln!(
        report,
        "{CLUSTERS} simulated test clusters × 10 objects (TestClusterGKE, ContainerCluster, ContainerNodePool, \
         ComputeNetwork, ComputeSubnetwork, IAMServiceAccount, IAMPolicyMember, IAMServiceAccountKey, ConfigMap, \
         Secret) in {NAMESPACES} namespaces, {CONCURRENCY} requests in flight: **{} in {:.2} s ({})**.\n",
        total,
        create_wall.as_secs_f64(),
        per_second(total, create_wall)
    );
    let _ = writeln!(report, "| operation | requests | p50 | p99 | max |");
    let _ = writeln!(report, "|---|---:|---:|---:|---:|");
    let _ = writeln!(report, "{}", creates.row("create (POST)"));
    let _ = writeln!(report, "\n## Lists (with {total} objects stored)\n");
    let _ = writeln!(report, "| list | requests | p50 | p99 | max |");
    let _ = writeln!(report, "|---|---:|---:|---:|---:|");
    for row in &list_rows {
        let _ = writeln!(report, "{row}");
    }
    let _ = writeln!(report, "\n## Watch fan-out\n");
    let _ = writeln!(
        report,
        "{WATCHERS} concurrent watches on TestClusterGKE in all namespaces; {FANOUT_WRITES} sequential merge \
         patches. \"All watchers\" is the time from just before the PATCH is sent until the last of the \
         {WATCHERS} watchers has decoded the event; \"one watcher\" is the same for each watcher and event.\n"
    );
    let _ = writeln!(report, "| measure | samples | p50 | p99 | max |");
    let _ = writeln!(report, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        report,
        "{}",
        Stats::new(write_latency).row("PATCH response")
    );
    let _ = writeln!(
        report,
        "{}",
        Stats::new(all_seen).row(&format!("write → all {WATCHERS} watchers"))
    );
    let _ = writeln!(
        report,
        "{}",
        Stats::new(each_seen).row("write → one watcher")
    );
    let _ = writeln!(report, "\n## Deletes\n");
    let _ = writeln!(
        report,
        "{DELETES} ConfigMaps, {CONCURRENCY} in flight (each deletion wakes the garbage collector): **{:.2} s ({})**.\n",
        delete_wall.as_secs_f64(),
        per_second(DELETES, delete_wall)
    );
    let _ = writeln!(report, "| operation | requests | p50 | p99 | max |");
    let _ = writeln!(report, "|---|---:|---:|---:|---:|");
    let _ = writeln!(report, "{}", deletes.row("delete"));
    let _ = writeln!(
        report,
        "{}",
        Stats::new(gc_samples).row(&format!(
            "garbage collection: delete owner → dependent gone ({} objects stored)",
            total - DELETES
        ))
    );
    let _ = writeln!(report, "\n## Memory (VmRSS of the whole process)\n");
    let _ = writeln!(report, "| point | RSS |");
    let _ = writeln!(report, "|---|---:|");
    for (point, mib) in [
        ("process start", rss_start),
        ("API server started, client connected", rss_empty),
        (&*format!("{total} objects stored"), rss_full),
        (&*format!("{WATCHERS} watches open"), rss_watching),
        ("end", rss_end),
        ("peak (VmHWM)", hwm),
    ] {
        let _ = writeln!(report, "| {point} | {mib:.1} MiB |");
    }

    print!("{report}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("\nwritten to {}", path.display());
    drop(api);
    Ok(())
}
