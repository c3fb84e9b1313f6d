//! kube-rs conformance: the status subresource and generation, optimistic concurrency, merge / JSON /
//! strategic patches, server-side apply with field managers, and finalizers.

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::wait::conditions;
use kube::{Resource, ResourceExt};
use serde_json::json;

fn configmap(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("configmap")
}

fn data(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let (_api, client) = start("status", "status").await;
    register_crd::<Gadget>(&client).await;
    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "status");
    let created = gadgets
        .create(&PostParams::default(), &gadget("g", 1))
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));

    // A spec write through the main resource ignores the status it carries.
    let mut desired = created.clone();
    desired.spec.size = 2;
    desired.status = Some(GadgetStatus {
        phase: "Hacked".into(),
        observed_generation: Some(7),
    });
    let replaced = gadgets
        .replace("g", &PostParams::default(), &desired)
        .await
        .expect("replace");
    assert_eq!(replaced.spec.size, 2);
    assert_eq!(replaced.status, None);
    assert_eq!(replaced.metadata.generation, Some(2));

    // A status write ignores the spec it carries, and does not bump the generation.
    let mut status_write = replaced.clone();
    status_write.spec.size = 99;
    status_write.status = Some(GadgetStatus {
        phase: "Ready".into(),
        observed_generation: Some(2),
    });
    let after_status = gadgets
        .replace_status("g", &PostParams::default(), &status_write)
        .await
        .expect("replace status");
    assert_eq!(after_status.spec.size, 2);
    assert_eq!(
        after_status.status.as_ref().map(|s| s.phase.as_str()),
        Some("Ready")
    );
    assert_eq!(after_status.metadata.generation, Some(2));
    let patched_status = gadgets
        .patch_status(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 100}, "status": {"phase": "Degraded"}})),
        )
        .await
        .expect("patch status");
    assert_eq!(patched_status.spec.size, 2);
    assert_eq!(
        patched_status.status.as_ref().map(|s| s.phase.as_str()),
        Some("Degraded")
    );
    assert_eq!(patched_status.metadata.generation, Some(2));

    // Metadata (labels, annotations) does not bump the generation either.
    let labelled = gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}}}),
            ),
        )
        .await
        .expect("label");
    assert_eq!(labelled.labels()["team"], "a");
    assert_eq!(labelled.metadata.generation, Some(2));
    assert_ne!(
        labelled.resource_version(),
        patched_status.resource_version()
    );

    // A spec change does, and the status stays as the status subresource left it.
    let respecced = gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "red"}, "status": {"phase": "Ignored"}})),
        )
        .await
        .expect("spec patch");
    assert_eq!(respecced.metadata.generation, Some(3));
    assert_eq!(respecced.spec.color.as_deref(), Some("red"));
    assert_eq!(
        respecced.status.as_ref().map(|s| s.phase.as_str()),
        Some("Degraded")
    );
    // A write that changes nothing changes neither resourceVersion nor generation.
    let same = gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "red"}})),
        )
        .await
        .expect("no-op patch");
    assert_eq!(same.resource_version(), respecced.resource_version());
    assert_eq!(same.metadata.generation, Some(3));
}

#[tokio::test]
async fn optimistic_concurrency_conflicts() {
    let (_api, client) = start("occ", "occ").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "occ");
    let original = cms
        .create(&PostParams::default(), &configmap("cc", json!({"n": "0"})))
        .await
        .expect("create");
    let mut first = original.clone();
    first.data = Some(map(&[("n", "1")]));
    let updated = cms
        .replace("cc", &PostParams::default(), &first)
        .await
        .expect("first writer wins");
    assert_eq!(data(&updated), map(&[("n", "1")]));

    let mut second = original.clone();
    second.data = Some(map(&[("n", "2")]));
    let modified = "Operation cannot be fulfilled on configmaps \"cc\": the object has been modified; please apply your changes to the latest version and try again";
    let conflict = status_of(cms.replace("cc", &PostParams::default(), &second).await);
    assert_eq!(
        (
            conflict.code,
            conflict.reason.as_str(),
            conflict.message.as_str()
        ),
        (409, "Conflict", modified)
    );
    let details = conflict.details.expect("details");
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("cc", "configmaps")
    );
    // A patch that names a stale resourceVersion is a conflict too.
    assert_status(
        cms.patch(
            "cc",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": original.resource_version()}, "data": {"n": "3"}})),
        )
        .await,
        409,
        "Conflict",
        modified,
    );
    // ... and one with the current resourceVersion is fine.
    cms.patch(
        "cc",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"resourceVersion": updated.resource_version()}, "data": {"n": "3"}})),
    )
    .await
    .expect("patch with current resourceVersion");
    // Without a resourceVersion, a replace is unconditional.
    let mut unconditional = original.clone();
    unconditional.metadata.resource_version = None;
    unconditional.data = Some(map(&[("n", "4")]));
    let forced = cms
        .replace("cc", &PostParams::default(), &unconditional)
        .await
        .expect("unconditional replace");
    assert_eq!(data(&forced), map(&[("n", "4")]));

    // Delete preconditions.
    let stale_rv = original.resource_version().expect("rv");
    let current_rv = forced.resource_version().expect("rv");
    assert_status(
        cms.delete(
            "cc",
            &DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(stale_rv.clone()),
                    uid: None,
                }),
                ..DeleteParams::default()
            },
        )
        .await,
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on configmaps \"cc\": Precondition failed: ResourceVersion in precondition: {stale_rv}, ResourceVersion in object meta: {current_rv}"
        ),
    );
    let uid = forced.uid().expect("uid");
    assert_status(
        cms.delete(
            "cc",
            &DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: None,
                    uid: Some("not-the-uid".into()),
                }),
                ..DeleteParams::default()
            },
        )
        .await,
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on configmaps \"cc\": Precondition failed: UID in precondition: not-the-uid, UID in object meta: {uid}"
        ),
    );
    cms.delete(
        "cc",
        &DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(current_rv),
                uid: Some(uid),
            }),
            ..DeleteParams::default()
        },
    )
    .await
    .expect("delete with matching preconditions");
    assert_eq!(cms.get_opt("cc").await.expect("get"), None);

    // Custom resources use their group in the message.
    register_crd::<Gadget>(&client).await;
    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "occ");
    let g = gadgets
        .create(&PostParams::default(), &gadget("g", 1))
        .await
        .expect("create gadget");
    let mut newer = g.clone();
    newer.spec.size = 2;
    gadgets
        .replace("g", &PostParams::default(), &newer)
        .await
        .expect("replace");
    let mut stale = g.clone();
    stale.spec.size = 3;
    assert_status(
        gadgets.replace("g", &PostParams::default(), &stale).await,
        409,
        "Conflict",
        "Operation cannot be fulfilled on gadgets.conformance.testcluster.dev \"g\": the object has been modified; please apply your changes to the latest version and try again",
    );
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let (_api, client) = start("patches", "patches").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "patches");
    cms.create(
        &PostParams::default(),
        &configmap("p", json!({"a": "1", "b": "2"})),
    )
    .await
    .expect("create");

    // Merge patch: null deletes, other keys merge.
    let merged = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"data": {"a": null, "c": "3"}, "metadata": {"labels": {"l": "x"}}}),
            ),
        )
        .await
        .expect("merge patch");
    assert_eq!(data(&merged), map(&[("b", "2"), ("c", "3")]));
    assert_eq!(merged.labels()["l"], "x");

    // JSON patch: ops in order; a failed test leaves the object untouched.
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "20"},
        {"op": "add", "path": "/data/d", "value": "4"},
        {"op": "remove", "path": "/data/c"},
    ]))
    .expect("ops");
    let patched = cms
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .expect("json patch");
    assert_eq!(data(&patched), map(&[("b", "20"), ("d", "4")]));
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/data/b", "value": "21"},
        {"op": "test", "path": "/data/b", "value": "2"},
    ]))
    .expect("ops");
    let failed = status_of(
        cms.patch("p", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await,
    );
    assert_eq!((failed.code, failed.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        data(&cms.get("p").await.expect("get")),
        map(&[("b", "20"), ("d", "4")])
    );
    // `test` against an absent field with `null` succeeds, as Kubernetes' JSON patch does (kube-rs'
    // finalizer helper relies on it to add the first finalizer).
    let first_finalizer: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["conformance.testcluster.dev/x"]},
    ]))
    .expect("ops");
    let with_finalizer = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::<()>::Json(first_finalizer.clone()),
        )
        .await
        .expect("test null on an absent field");
    assert_eq!(
        with_finalizer.finalizers(),
        ["conformance.testcluster.dev/x"]
    );
    // ... and fails when the field is there.
    assert_eq!(
        status_of(
            cms.patch(
                "p",
                &PatchParams::default(),
                &Patch::<()>::Json(first_finalizer)
            )
            .await
        )
        .code,
        422
    );
    let remove: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "conformance.testcluster.dev/x"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]))
    .expect("ops");
    let without = cms
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(remove))
        .await
        .expect("remove finalizer");
    // An emptied list is omitted, as Kubernetes serialises it.
    assert_eq!(without.metadata.finalizers, None);

    // Strategic merge: containers merge by name; a merge patch replaces the list.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "patches");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "sidecar:1"},
                ]},
            },
        },
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    let strategic = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]},
            ]}}}})),
        )
        .await
        .expect("strategic patch");
    let containers = strategic
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.clone())
        .expect("containers");
    let summary: Vec<(String, Option<String>, Vec<String>)> = containers
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.image.clone(),
                c.env.iter().flatten().map(|e| e.name.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "app".to_owned(),
                Some("app:2".to_owned()),
                vec!["A".to_owned(), "B".to_owned()]
            ),
            ("sidecar".to_owned(), Some("sidecar:1".to_owned()), vec![]),
        ]
    );
    assert_eq!(strategic.metadata.generation, Some(2));
    let deleted_sidecar = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "$patch": "delete"},
            ]}}}})),
        )
        .await
        .expect("strategic delete");
    assert_eq!(
        container_names(deleted_sidecar),
        Some(vec!["app".to_owned()])
    );
    let replaced_list = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "other", "image": "other:1"},
            ]}}}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        container_names(replaced_list),
        Some(vec!["other".to_owned()])
    );
}

/// Names of a Deployment's pod template containers, in order.
fn container_names(deployment: Deployment) -> Option<Vec<String>> {
    let containers = deployment.spec?.template.spec?.containers;
    Some(containers.into_iter().map(|c| c.name).collect())
}

fn managers(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.managed_fields()
        .iter()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn owned_fields(cm: &ConfigMap, manager: &str) -> serde_json::Value {
    cm.managed_fields()
        .iter()
        .find(|m| m.manager.as_deref() == Some(manager))
        .and_then(|m| m.fields_v1.as_ref())
        .map(|f| f.0.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn server_side_apply_with_field_managers() {
    let (_api, client) = start("ssa", "ssa").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ssa");
    let apply = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": data});

    // Apply creates.
    let created = cms
        .patch(
            "shared",
            &PatchParams::apply("alice"),
            &Patch::Apply(apply(json!({"a": "1"}))),
        )
        .await
        .expect("apply creates");
    assert_eq!(data(&created), map(&[("a", "1")]));
    assert_eq!(
        managers(&created),
        [("alice".to_owned(), "Apply".to_owned())]
    );
    assert_eq!(
        owned_fields(&created, "alice"),
        json!({"f:data": {"f:a": {}}})
    );
    let entry = &created.managed_fields()[0];
    assert_eq!(entry.api_version.as_deref(), Some("v1"));
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    assert!(entry.time.is_some());

    // A second manager adds its own field.
    let shared = cms
        .patch(
            "shared",
            &PatchParams::apply("bob"),
            &Patch::Apply(apply(json!({"b": "2"}))),
        )
        .await
        .expect("bob applies");
    assert_eq!(data(&shared), map(&[("a", "1"), ("b", "2")]));
    assert_eq!(
        managers(&shared),
        [
            ("alice".to_owned(), "Apply".to_owned()),
            ("bob".to_owned(), "Apply".to_owned())
        ]
    );

    // Changing a field another manager owns is a conflict...
    assert_status(
        cms.patch(
            "shared",
            &PatchParams::apply("bob"),
            &Patch::Apply(apply(json!({"a": "9", "b": "2"}))),
        )
        .await,
        409,
        "Conflict",
        "Apply failed with 1 conflict: conflict with \"alice\" using v1: .data.a",
    );
    assert_eq!(
        data(&cms.get("shared").await.expect("get")),
        map(&[("a", "1"), ("b", "2")])
    );

    // ... unless forced: the forcing manager takes ownership.
    let forced = cms
        .patch(
            "shared",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(apply(json!({"a": "9", "b": "2"}))),
        )
        .await
        .expect("forced apply");
    assert_eq!(data(&forced), map(&[("a", "9"), ("b", "2")]));
    assert_eq!(managers(&forced), [("bob".to_owned(), "Apply".to_owned())]);
    assert_eq!(
        owned_fields(&forced, "bob"),
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );

    // A manager that stops applying a field removes it.
    let dropped = cms
        .patch(
            "shared",
            &PatchParams::apply("bob"),
            &Patch::Apply(apply(json!({"a": "9"}))),
        )
        .await
        .expect("apply without b");
    assert_eq!(data(&dropped), map(&[("a", "9")]));

    // An ordinary update records an Update entry for its manager.
    let mut edited = dropped.clone();
    edited.data = Some(map(&[("a", "9"), ("c", "3")]));
    let updated = cms
        .replace(
            "shared",
            &PostParams {
                field_manager: Some("editor".into()),
                ..PostParams::default()
            },
            &edited,
        )
        .await
        .expect("update");
    assert_eq!(
        managers(&updated),
        [
            ("bob".to_owned(), "Apply".to_owned()),
            ("editor".to_owned(), "Update".to_owned())
        ]
    );
    assert_eq!(
        owned_fields(&updated, "editor"),
        json!({"f:data": {"f:c": {}}})
    );

    // A create records its manager too.
    let made = cms
        .create(
            &PostParams {
                field_manager: Some("creator".into()),
                ..PostParams::default()
            },
            &configmap("made", json!({"x": "1"})),
        )
        .await
        .expect("create");
    assert_eq!(
        managers(&made),
        [("creator".to_owned(), "Update".to_owned())]
    );
    assert_eq!(owned_fields(&made, "creator")["f:data"], json!({"f:x": {}}));
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_removed() {
    let (_api, client) = start("finalizers", "fin").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "fin");
    let mut held = configmap("held", json!({"a": "1"}));
    held.metadata.finalizers = Some(vec!["conformance.testcluster.dev/hold".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("create");

    let deleting = cms
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete")
        .left()
        .expect("the object, not a Status: it still exists");
    assert!(deleting.meta().deletion_timestamp.is_some());
    assert_eq!(deleting.finalizers(), ["conformance.testcluster.dev/hold"]);

    let still = cms.get("held").await.expect("still there");
    assert!(still.metadata.deletion_timestamp.is_some());
    assert_eq!(still.metadata.deletion_grace_period_seconds, Some(0));
    // Deleting again changes nothing.
    let again = cms
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete again")
        .left()
        .expect("object");
    assert_eq!(again.resource_version(), still.resource_version());
    assert_eq!(
        again.metadata.deletion_timestamp,
        still.metadata.deletion_timestamp
    );
    // A terminating object can still be updated.
    let updated = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await
        .expect("update while terminating");
    assert_eq!(data(&updated), map(&[("a", "2")]));

    // Removing the last finalizer lets the deletion finish.
    let uid = still.uid().expect("uid");
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizer");
    within(
        "held to go",
        kube::runtime::wait::await_condition(cms.clone(), "held", conditions::is_deleted(&uid)),
    )
    .await
    .expect("watch");
    assert_status(
        cms.get("held").await,
        404,
        "NotFound",
        "configmaps \"held\" not found",
    );
}
