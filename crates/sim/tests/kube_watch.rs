//! kube-rs conformance: watches from a resourceVersion, selector-filtered watches, bookmarks,
//! `timeoutSeconds`, 410 Gone after compaction and kube-runtime's watcher re-listing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;

fn configmap(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
        .expect("configmap")
}

/// `(type, name, resourceVersion)` of a watch event.
fn describe(event: &WatchEvent<ConfigMap>) -> (String, String, u64) {
    let (kind, object) = match event {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        other => panic!("unexpected event {other:?}"),
    };
    let rv = object
        .resource_version()
        .and_then(|rv| rv.parse().ok())
        .expect("numeric resourceVersion");
    (kind.to_owned(), object.name_any(), rv)
}

#[tokio::test]
async fn a_watch_from_a_resource_version_replays_later_changes_in_order() {
    let (_api, client) = start("watch", "watch").await;
    create_namespace(&client, "watch-other").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "watch");
    cms.create(
        &PostParams::default(),
        &configmap("w0", json!({"app": "x"})),
    )
    .await
    .expect("create w0");
    let listed = cms.list(&ListParams::default()).await.expect("list");
    let from = listed
        .metadata
        .resource_version
        .expect("list resourceVersion");

    // Changes after `from`: they happened before the watch starts, and it must still see them all.
    cms.create(
        &PostParams::default(),
        &configmap("w1", json!({"app": "x"})),
    )
    .await
    .expect("create w1");
    cms.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .expect("patch w1");
    Api::<ConfigMap>::namespaced(client.clone(), "watch-other")
        .create(&PostParams::default(), &configmap("elsewhere", json!({})))
        .await
        .expect("create elsewhere");
    cms.delete("w0", &DeleteParams::default())
        .await
        .expect("delete w0");

    let stream = cms
        .watch(&WatchParams::default().timeout(10), &from)
        .await
        .expect("watch");
    futures::pin_mut!(stream);
    let mut seen = Vec::new();
    // The backlog, then a change made while the watch is open.
    while seen.len() < 3 {
        let event = within("backlog events", stream.try_next())
            .await
            .expect("event")
            .expect("stream open");
        seen.push(describe(&event));
    }
    cms.create(
        &PostParams::default(),
        &configmap("w2", json!({"app": "x"})),
    )
    .await
    .expect("create w2");
    let event = within("a live event", stream.try_next())
        .await
        .expect("event")
        .expect("stream open");
    seen.push(describe(&event));

    let kinds: Vec<(&str, &str)> = seen
        .iter()
        .map(|(k, n, _)| (k.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ADDED", "w1"),
            ("MODIFIED", "w1"),
            ("DELETED", "w0"),
            ("ADDED", "w2")
        ]
    );
    let rvs: Vec<u64> = seen.iter().map(|(_, _, rv)| *rv).collect();
    let from: u64 = from.parse().expect("numeric");
    assert!(rvs[0] > from, "{rvs:?} after {from}");
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "in order: {rvs:?}");
}

#[tokio::test]
async fn a_selector_watch_reports_objects_entering_and_leaving() {
    let (_api, client) = start("watch-selector", "wsel").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "wsel");
    cms.create(
        &PostParams::default(),
        &configmap("in", json!({"app": "x"})),
    )
    .await
    .expect("create");
    cms.create(
        &PostParams::default(),
        &configmap("out", json!({"app": "y"})),
    )
    .await
    .expect("create");

    // From "0": the current matching objects first, as ADDED.
    let stream = cms
        .watch(&WatchParams::default().labels("app=x").timeout(10), "0")
        .await
        .expect("watch");
    futures::pin_mut!(stream);
    let mut next = async || {
        describe(
            &within("an event", stream.try_next())
                .await
                .expect("event")
                .expect("stream open"),
        )
    };
    assert_eq!(next().await.0, "ADDED");
    for (name, labels) in [("out", json!({"app": "x"})), ("in", json!({"app": "z"}))] {
        cms.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": labels}})),
        )
        .await
        .expect("relabel");
    }
    let (first, second) = (next().await, next().await);
    assert_eq!(
        [
            (first.0.as_str(), first.1.as_str()),
            (second.0.as_str(), second.1.as_str())
        ],
        [("ADDED", "out"), ("DELETED", "in")]
    );
}

#[tokio::test]
async fn bookmarks_and_timeout_seconds() {
    let (_api, client) = start("bookmarks", "bm").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "bm");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let with = cms
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            }
            .timeout(30),
            &rv,
        )
        .await
        .expect("watch with bookmarks");
    futures::pin_mut!(with);
    let bookmark = within("a bookmark", with.try_next())
        .await
        .expect("event")
        .expect("stream open");
    match bookmark {
        WatchEvent::Bookmark(b) => {
            assert_eq!(b.types.kind, "ConfigMap");
            assert_eq!(b.types.api_version, "v1");
            let bookmark_rv: u64 = b.metadata.resource_version.parse().expect("numeric");
            assert!(bookmark_rv >= rv.parse::<u64>().expect("numeric"));
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }

    // timeoutSeconds ends the stream cleanly, and without bookmarks none arrives meanwhile.
    let started = Instant::now();
    let without = cms
        .watch(&WatchParams::default().disable_bookmarks().timeout(2), &rv)
        .await
        .expect("watch without bookmarks");
    let events: Vec<WatchEvent<ConfigMap>> = within("the watch to time out", without.try_collect())
        .await
        .expect("no error");
    let elapsed = started.elapsed();
    assert!(events.is_empty(), "{events:?}");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_too_old_resource_version_is_gone() {
    let (api, client) = start("gone", "gone").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gone");
    let first = cms
        .create(&PostParams::default(), &configmap("a", json!({})))
        .await
        .expect("create");
    let old = first.resource_version().expect("rv");
    let second = cms
        .create(&PostParams::default(), &configmap("b", json!({})))
        .await
        .expect("create");
    let compacted = second.resource_version().expect("rv");
    api.compact_history();

    let stream = cms
        .watch(&WatchParams::default().timeout(10), &old)
        .await
        .expect("the watch request itself succeeds");
    let events: Vec<WatchEvent<ConfigMap>> = within("the expired watch", stream.try_collect())
        .await
        .expect("events");
    match events.as_slice() {
        [WatchEvent::Error(status)] => {
            assert_eq!(
                (status.code, status.reason.as_str(), status.message.as_str()),
                (
                    410,
                    "Expired",
                    format!("too old resource version: {old} ({compacted})").as_str()
                )
            );
        }
        other => panic!("expected one 410 ERROR event, got {other:?}"),
    }

    // From the compaction point on, watches work again.
    let stream = cms
        .watch(&WatchParams::default().timeout(10), &compacted)
        .await
        .expect("watch");
    futures::pin_mut!(stream);
    cms.create(&PostParams::default(), &configmap("c", json!({})))
        .await
        .expect("create");
    let event = within("an event", stream.try_next())
        .await
        .expect("event")
        .expect("open");
    let (kind, name, _) = describe(&event);
    assert_eq!((kind.as_str(), name.as_str()), ("ADDED", "c"));
}

/// What a watcher step means for this test.
#[derive(Debug, PartialEq)]
enum Step {
    Init,
    InitApply(String),
    InitDone,
    Apply(String),
    Delete(String),
    Gone,
    OtherError(String),
}

fn step(event: Result<watcher::Event<ConfigMap>, watcher::Error>) -> Step {
    match event {
        Ok(watcher::Event::Init) => Step::Init,
        Ok(watcher::Event::InitApply(o)) => Step::InitApply(o.name_any()),
        Ok(watcher::Event::InitDone) => Step::InitDone,
        Ok(watcher::Event::Apply(o)) => Step::Apply(o.name_any()),
        Ok(watcher::Event::Delete(o)) => Step::Delete(o.name_any()),
        Err(watcher::Error::WatchError(status)) if status.code == 410 => Step::Gone,
        Err(e) => Step::OtherError(e.to_string()),
    }
}

#[tokio::test]
async fn the_watcher_relists_after_410_gone() {
    let (api, client) = start("relist", "relist").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "relist");
    for name in ["a", "b"] {
        cms.create(&PostParams::default(), &configmap(name, json!({})))
            .await
            .expect("create");
    }
    let stream = watcher(cms.clone(), watcher::Config::default()).map(step);
    futures::pin_mut!(stream);
    let mut next = async || {
        within("a watcher event", stream.next())
            .await
            .expect("watcher runs")
    };
    assert_eq!(
        [next().await, next().await, next().await, next().await],
        [
            Step::Init,
            Step::InitApply("a".into()),
            Step::InitApply("b".into()),
            Step::InitDone
        ]
    );
    cms.create(&PostParams::default(), &configmap("c", json!({})))
        .await
        .expect("create");
    assert_eq!(next().await, Step::Apply("c".into()));

    // A write the watch does not see moves the resourceVersion on; compaction then makes the
    // watcher's resourceVersion too old, and dropping the watch makes it resume from there.
    Api::<Secret>::namespaced(client.clone(), "relist")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "unrelated"}})).expect("secret"),
        )
        .await
        .expect("create secret");
    api.compact_history();
    api.faults().drop_watches();
    assert_eq!(next().await, Step::Gone);
    assert_eq!(
        [
            next().await,
            next().await,
            next().await,
            next().await,
            next().await
        ],
        [
            Step::Init,
            Step::InitApply("a".into()),
            Step::InitApply("b".into()),
            Step::InitApply("c".into()),
            Step::InitDone
        ]
    );
    // And it watches again.
    cms.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(next().await, Step::Delete("a".into()));
}
