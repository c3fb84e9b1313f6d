//! The API server's answers where a conformance pass found the simulator lenient: server-side dry
//! run on every write verb, unsupported field selectors, finalizers added to an object being deleted,
//! strategic merge patches on custom resources, `generation` only where a kind has one, and exact
//! lists of a compacted resourceVersion. Each answer is the real server's code and text.

mod common;

use common::{Gadget, assert_status, gadget, register_crd, start};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"level": "1"}}))
        .expect("a configmap")
}

#[tokio::test]
async fn dry_run_takes_every_step_but_storing() {
    let (_api, client) = start("dry-run", "dry").await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "dry");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = cms
        .create(&dry, &configmap("ghost"))
        .await
        .expect("dry create");
    assert_eq!(answered.name_any(), "ghost");
    assert!(answered.uid().is_some(), "defaulted as a real create is");
    assert!(cms.get_opt("ghost").await.expect("get").is_none());

    cms.create(&PostParams::default(), &configmap("real"))
        .await
        .expect("create");
    // A dry-run create of an existing name fails as the real one would.
    assert_status(
        cms.create(&dry, &configmap("real")).await,
        409,
        "AlreadyExists",
        "configmaps \"real\" already exists",
    );
    let patch = Patch::Merge(json!({"data": {"level": "2"}}));
    let patched = cms
        .patch("real", &PatchParams::default().dry_run(), &patch)
        .await
        .expect("dry patch");
    assert_eq!(patched.data.expect("data")["level"], "2");
    let apply = Patch::Apply(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "real"}, "data": {"level": "3"}}),
    );
    let params = PatchParams::apply("dry-test").force().dry_run();
    cms.patch("real", &params, &apply).await.expect("dry apply");
    let mut replaced = cms.get("real").await.expect("get");
    replaced.data = Some([("level".to_owned(), "4".to_owned())].into());
    cms.replace("real", &dry, &replaced)
        .await
        .expect("dry replace");
    let deleted = cms
        .delete(
            "real",
            &DeleteParams {
                dry_run: true,
                ..DeleteParams::default()
            },
        )
        .await
        .expect("dry delete");
    assert!(deleted.is_left(), "answered with the object");
    let stored = cms.get("real").await.expect("the object survives");
    assert_eq!(stored.data.expect("data")["level"], "1");
}

#[tokio::test]
async fn an_unknown_dry_run_value_is_refused() {
    let (api, _client) = start("dry-run-value", "dry").await;
    let response = post_configmap(&api, "/api/v1/namespaces/dry/configmaps?dryRun=Foo").await;
    assert_eq!(response.0, 422);
    assert_eq!(
        response.1["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Foo\"}: supported values: \"All\""
    );
}

/// POSTs a ConfigMap to `path`: (code, JSON body).
async fn post_configmap(
    api: &testcluster_sim::apiserver::ApiServer,
    path: &str,
) -> (u16, serde_json::Value) {
    let client = api.client().await.expect("client");
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&configmap("odd")).expect("json"))
        .expect("request");
    match client.request::<serde_json::Value>(request).await {
        Ok(body) => (200, body),
        Err(kube::Error::Api(status)) => (
            status.code,
            json!({"message": status.message, "reason": status.reason}),
        ),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn unsupported_field_selectors_are_a_bad_request() {
    let (_api, client) = start("fields", "fields").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fields");
    pods.list(&ListParams::default().fields("spec.nodeName=node-1,status.phase=Running"))
        .await
        .expect("pods can be selected by node and phase");
    let deployments: Api<Deployment> = Api::namespaced(client, "fields");
    assert_status(
        deployments
            .list(&ListParams::default().fields("spec.paused=true"))
            .await,
        400,
        "BadRequest",
        "field label not supported: spec.paused",
    );
}

#[tokio::test]
async fn no_finalizer_may_join_an_object_being_deleted() {
    let (_api, client) = start("finalizers", "fin").await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "fin");
    let mut held = configmap("held");
    held.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("create");
    cms.delete("held", &DeleteParams::default())
        .await
        .expect("delete");
    let patch =
        Patch::Merge(json!({"metadata": {"finalizers": ["example.com/keep", "example.com/late"]}}));
    assert_status(
        cms.patch("held", &PatchParams::default(), &patch).await,
        422,
        "Invalid",
        "ConfigMap \"held\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/late\"}",
    );
}

#[tokio::test]
async fn custom_resources_take_no_strategic_merge_patch_and_keep_a_generation() {
    let (_api, client) = start("smp", "smp").await;
    register_crd::<Gadget>(&client).await;
    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "smp");
    let created = gadgets
        .create(&PostParams::default(), &gadget("g", 1))
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert_status(
        gadgets
            .patch(
                "g",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 2}})),
            )
            .await,
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    );

    // A ConfigMap has no generation at all, even when a client sends one.
    let cms: Api<ConfigMap> = Api::namespaced(client, "smp");
    let mut cm = configmap("plain");
    cm.metadata.generation = Some(7);
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, None);
    let patched = cms
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"level": "2"}})),
        )
        .await
        .expect("patch");
    assert_eq!(patched.metadata.generation, None);
}

#[tokio::test]
async fn exact_lists_are_served_from_history_or_gone() {
    let (api, client) = start("exact", "exact").await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "exact");
    cms.create(&PostParams::default(), &configmap("first"))
        .await
        .expect("create");
    let at = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    cms.create(&PostParams::default(), &configmap("second"))
        .await
        .expect("create");
    cms.delete("first", &DeleteParams::default())
        .await
        .expect("delete");

    let exact = ListParams::default()
        .at(&at)
        .matching(kube::api::VersionMatch::Exact);
    let then = cms
        .list(&exact)
        .await
        .expect("an exact list of a kept version");
    assert_eq!(then.metadata.resource_version.as_deref(), Some(at.as_str()));
    let names: Vec<String> = then.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["first"]);

    api.compact_history();
    assert_status(
        cms.list(&exact).await,
        410,
        "Expired",
        "The resourceVersion for the provided list is too old.",
    );
}

#[tokio::test]
async fn events_expire_after_the_event_ttl_and_watchers_see_them_go() {
    common::init();
    let api =
        testcluster_sim::apiserver::ApiServer::start(testcluster_sim::apiserver::ApiServerConfig {
            name: "event-ttl".into(),
            event_ttl: Some(std::time::Duration::from_secs(2)),
            ..Default::default()
        })
        .await
        .expect("api server starts");
    let client = api.client().await.expect("client");
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let event = serde_json::from_value(json!({
        "metadata": {"name": "short-lived"},
        "eventTime": "2026-12-02T10:00:00.000000Z",
        "reportingController": "test", "reportingInstance": "test-1",
        "action": "Testing", "reason": "Tested", "type": "Normal", "note": "expires",
        "regarding": {"kind": "ConfigMap", "namespace": "default", "name": "any"},
    }))
    .expect("event");
    events
        .create(&PostParams::default(), &event)
        .await
        .expect("create event");
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client, "default");
    assert!(core.get_opt("short-lived").await.expect("get").is_some());
    // Both views of the Event are deleted (watchers see DELETED) once the TTL has passed.
    common::wait_deleted(&events, "short-lived").await;
    common::wait_deleted(&core, "short-lived").await;
}
