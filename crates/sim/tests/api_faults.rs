//! Injected API faults (500s, 429s with Retry-After, 409s, latency, dropped and flaky watches) as kube-rs
//! clients see them, and the request counters (also as `/metrics` text).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;
use testcluster_sim::apiserver::ApiServer;
use testcluster_sim::{SimConfig, Simulator};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("configmap")
}

/// Waits, bounded, until the counter for `verb` `resource` reaches `at_least`.
async fn counted(api: &ApiServer, verb: &str, resource: &str, at_least: u64) {
    within(&format!("{verb} {resource} to be counted"), async {
        while api.counters().get(verb, resource) < at_least {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn injected_500s_are_internal_errors_for_outside_clients_only() {
    let (api, client) = start("faults-500", "f500").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "f500");
    api.faults().set_error_rate(1000);
    for _ in 0..3 {
        assert_status(
            cms.list(&ListParams::default()).await,
            500,
            "InternalError",
            "injected fault: etcdserver: request timed out",
        );
    }
    assert_status(
        cms.create(&PostParams::default(), &configmap("x")).await,
        500,
        "InternalError",
        "injected fault: etcdserver: request timed out",
    );
    // The simulator's own controllers are never faulted.
    let internal: Api<ConfigMap> = Api::namespaced(api.internal_client(), "f500");
    internal
        .create(&PostParams::default(), &configmap("inside"))
        .await
        .expect("internal create");
    api.faults().clear();
    assert_eq!(
        names(cms.list(&ListParams::default()).await.expect("list")),
        ["inside"]
    );
}

#[tokio::test]
async fn injected_conflicts_refuse_updates_and_patches_without_writing() {
    let (api, client) = start("faults-409", "f409").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "f409");
    let created = cms
        .create(&PostParams::default(), &configmap("c"))
        .await
        .expect("create");
    api.faults().set_conflict_rate(1000);
    let message = "Operation cannot be fulfilled on configmaps \"c\": the object has been \
                   modified; please apply your changes to the latest version and try again";
    let patch = json!({"data": {"k": "v"}});
    assert_status(
        cms.patch("c", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
        409,
        "Conflict",
        message,
    );
    assert_status(
        cms.replace("c", &PostParams::default(), &created).await,
        409,
        "Conflict",
        message,
    );
    // Reads and creates are not writes to an existing object.
    let unchanged = cms.get("c").await.expect("get");
    assert_eq!(unchanged.resource_version(), created.resource_version());
    cms.create(&PostParams::default(), &configmap("d"))
        .await
        .expect("create");
    api.faults().clear();
    cms.patch("c", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch once cleared");
}

#[tokio::test]
async fn injected_429s_carry_retry_after_and_kube_retries_them() {
    let (api, client) = start("faults-429", "f429").await;
    let bare = client_without_retries(&api).await;
    api.faults().set_throttle_rate(1000);

    // The raw response: 429 with Retry-After and a TooManyRequests Status.
    let request = http::Request::get("/api/v1/namespaces/f429/configmaps")
        .body(Vec::new())
        .expect("request");
    let response = bare.send(request.map(kube::client::Body::from)).await;
    let response = response.expect("a response, even an error one");
    assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let cms: Api<ConfigMap> = Api::namespaced(bare.clone(), "f429");
    assert_status(
        cms.list(&ListParams::default()).await,
        429,
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
    );

    // kube's default client waits Retry-After and tries again: it succeeds once throttling stops.
    api.counters().reset();
    let retrying: Api<ConfigMap> = Api::namespaced(client.clone(), "f429");
    let pending = tokio::spawn(async move { retrying.list(&ListParams::default()).await });
    counted(&api, "list", "configmaps", 2).await;
    api.faults().clear();
    let listed = within("the retried list", pending)
        .await
        .expect("task")
        .expect("list succeeds after retries");
    assert!(listed.items.is_empty());
    assert!(api.counters().get("list", "configmaps") >= 3);
}

#[tokio::test]
async fn injected_latency_delays_every_request() {
    let (api, client) = start("faults-latency", "flat").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "flat");
    cms.create(&PostParams::default(), &configmap("x"))
        .await
        .expect("create");
    let delay = Duration::from_millis(300);
    api.faults().set_latency(delay);
    for _ in 0..2 {
        let started = Instant::now();
        cms.get("x").await.expect("get");
        let took = started.elapsed();
        assert!(took >= delay, "{took:?}");
    }
    // Internal requests are not delayed.
    let internal: Api<ConfigMap> = Api::namespaced(api.internal_client(), "flat");
    let started = Instant::now();
    internal.get("x").await.expect("internal get");
    assert!(started.elapsed() < delay);
    api.faults().clear();
    let started = Instant::now();
    cms.get("x").await.expect("get");
    assert!(started.elapsed() < delay);
}

#[tokio::test]
async fn dropped_watches_end_and_the_watcher_recovers() {
    let (api, client) = start("faults-watch", "fw").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fw");
    cms.create(&PostParams::default(), &configmap("a"))
        .await
        .expect("create");

    // A plain watch ends when the server drops it.
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let raw = cms
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .expect("watch");
    futures::pin_mut!(raw);
    api.faults().drop_watches();
    assert!(
        within("the dropped watch to end", raw.try_next())
            .await
            .expect("no error")
            .is_none()
    );

    // kube-runtime's watcher resumes and keeps delivering changes. It runs in a task of its own so
    // that it is polled (and re-watches) while the test looks at the counters.
    api.counters().reset();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(watcher(cms.clone(), watcher::Config::default()).for_each(
        move |event| {
            let _ = tx.send(event.map_err(|e| e.to_string()));
            async {}
        },
    ));
    let mut next = async || {
        within("a watcher event", rx.recv())
            .await
            .expect("watcher running")
    };
    let mut initial = Vec::new();
    loop {
        match next().await.expect("no error") {
            watcher::Event::InitApply(o) => initial.push(o.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(initial, ["a"]);
    counted(&api, "watch", "configmaps", 1).await;
    api.faults().drop_watches();
    counted(&api, "watch", "configmaps", 2).await;
    cms.create(&PostParams::default(), &configmap("b"))
        .await
        .expect("create");
    match next().await.expect("no error") {
        watcher::Event::Apply(o) => assert_eq!(o.name_any(), "b"),
        other => panic!("expected b, got {other:?}"),
    }
    assert_eq!(
        api.counters().get("list", "configmaps"),
        1,
        "resumed without a re-list"
    );

    // Flaky watches end after their first event.
    api.faults().set_flaky_watches(true);
    let flaky = cms
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .expect("watch");
    let events: Vec<WatchEvent<ConfigMap>> = within("the flaky watch to end", flaky.try_collect())
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "{events:?}");
    // The watcher, whose watches now end after every event, still sees every change in order.
    let watches_before = api.counters().get("watch", "configmaps");
    api.faults().drop_watches();
    counted(&api, "watch", "configmaps", watches_before + 1).await;
    for (i, name) in ["a", "b", "a"].into_iter().enumerate() {
        cms.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": i.to_string()}})),
        )
        .await
        .expect("patch");
    }
    let mut modified = Vec::new();
    while modified.len() < 3 {
        match next().await.expect("no error") {
            watcher::Event::Apply(o) => modified.push(o.name_any()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(modified, ["a", "b", "a"]);
    assert!(api.counters().get("watch", "configmaps") >= watches_before + 3);
    assert_eq!(api.counters().get("list", "configmaps"), 1);
    task.abort();
}

#[tokio::test]
async fn request_counters_count_outside_requests_per_verb_and_resource() {
    let (api, client) = start("counters", "cnt").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "cnt");
    api.counters().reset();
    assert_eq!(api.counters().total(), 0);
    for name in ["a", "b", "c"] {
        cms.create(&PostParams::default(), &configmap(name))
            .await
            .expect("create");
    }
    assert_eq!(
        cms.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        3
    );
    // The simulator's own requests are not counted.
    let internal: Api<ConfigMap> = Api::namespaced(api.internal_client(), "cnt");
    internal
        .create(&PostParams::default(), &configmap("internal"))
        .await
        .expect("internal create");
    internal
        .list(&ListParams::default())
        .await
        .expect("internal list");

    assert_eq!(api.counters().get("create", "configmaps"), 3);
    assert_eq!(api.counters().get("list", "configmaps"), 1);
    assert_eq!(api.counters().get("get", "configmaps"), 0);
    assert_eq!(api.counters().total(), 4);

    cms.get("a").await.expect("get");
    cms.patch(
        "a",
        &PatchParams::apply("counter-test"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1"}})),
    )
    .await
    .expect("apply");
    cms.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .expect("patch");
    cms.delete("c", &Default::default()).await.expect("delete");
    let expected: BTreeMap<(String, String), u64> = [
        (("apply", "configmaps"), 1),
        (("create", "configmaps"), 3),
        (("delete", "configmaps"), 1),
        (("get", "configmaps"), 1),
        (("list", "configmaps"), 1),
        (("patch", "configmaps"), 1),
    ]
    .into_iter()
    .map(|((v, r), n)| ((v.to_owned(), r.to_owned()), n))
    .collect();
    assert_eq!(api.counters().snapshot(), expected);
    api.counters().reset();
    assert_eq!(api.counters().total(), 0);
}

#[tokio::test]
async fn the_metrics_text_carries_the_request_counters_and_the_cloud() {
    init();
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    let client = sim.api().client().await.expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for _ in 0..2 {
        cms.list(&ListParams::default()).await.expect("list");
    }
    let text = testcluster_sim::metrics::encode(&sim);
    for line in [
        "apiserver_request_total{verb=\"list\",resource=\"configmaps\",user=\"system:admin\",code=\"200\"} 2",
        "sim_cloud_clusters_created_total 0",
        "sim_cloud_clusters_live 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }
}
