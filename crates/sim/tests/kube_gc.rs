//! kube-rs conformance: garbage collection through ownerReferences (background, foreground and
//! orphan propagation) and namespace deletion.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const HOLD: &str = "conformance.testcluster.dev/hold";

async fn owner(client: &Client, namespace: &str, name: &str) -> ConfigMap {
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).expect("owner"),
        )
        .await
        .expect("create owner")
}

async fn dependent(
    client: &Client,
    namespace: &str,
    name: &str,
    owner: &ConfigMap,
    finalizers: &[&str],
) -> Secret {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {
                "name": name,
                "finalizers": finalizers,
                "ownerReferences": [{
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": owner.name_any(),
                    "uid": owner.uid().expect("uid"),
                    "blockOwnerDeletion": true,
                }],
            }}))
            .expect("dependent"),
        )
        .await
        .expect("create dependent")
}

fn is_deleting(secret: Option<&Secret>) -> bool {
    secret.is_some_and(|s| s.metadata.deletion_timestamp.is_some())
}

async fn release(secrets: &Api<Secret>, name: &str) {
    secrets
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("remove finalizer");
}

#[tokio::test]
async fn background_deletion_removes_dependents_after_the_owner() {
    let (_api, client) = start("gc-background", "gcb").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gcb");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "gcb");
    let parent = owner(&client, "gcb", "parent").await;
    dependent(&client, "gcb", "child-1", &parent, &[]).await;
    dependent(&client, "gcb", "child-2", &parent, &[]).await;
    let unrelated = owner(&client, "gcb", "unrelated").await;
    dependent(&client, "gcb", "other-child", &unrelated, &[]).await;

    cms.delete("parent", &DeleteParams::background())
        .await
        .expect("delete");
    // The owner goes at once; its dependents follow.
    assert_eq!(cms.get_opt("parent").await.expect("get"), None);
    wait_deleted(&secrets, "child-1").await;
    wait_deleted(&secrets, "child-2").await;
    assert!(secrets.get_opt("other-child").await.expect("get").is_some());

    // The default propagation for a ConfigMap is background too.
    let parent = owner(&client, "gcb", "parent-2").await;
    dependent(&client, "gcb", "child-3", &parent, &[]).await;
    cms.delete("parent-2", &DeleteParams::default())
        .await
        .expect("delete");
    wait_deleted(&secrets, "child-3").await;
}

#[tokio::test]
async fn foreground_deletion_keeps_the_owner_until_its_dependents_are_gone() {
    let (_api, client) = start("gc-foreground", "gcf").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gcf");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "gcf");
    let parent = owner(&client, "gcf", "parent").await;
    // A finalizer keeps one dependent around, so the foreground wait is observable.
    dependent(&client, "gcf", "held", &parent, &[HOLD]).await;
    dependent(&client, "gcf", "free", &parent, &[]).await;

    let deleting = cms
        .delete("parent", &DeleteParams::foreground())
        .await
        .expect("delete")
        .left()
        .expect("the owner still exists");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(deleting.finalizers(), ["foregroundDeletion"]);

    // The dependents are deleted: one goes, the held one is marked.
    wait_deleted(&secrets, "free").await;
    let held = wait_for(&secrets, "held", is_deleting).await;
    assert_eq!(held.finalizers(), [HOLD]);
    let waiting = cms.get("parent").await.expect("owner still there");
    assert!(waiting.metadata.deletion_timestamp.is_some());
    assert_eq!(waiting.finalizers(), ["foregroundDeletion"]);

    release(&secrets, "held").await;
    wait_deleted(&secrets, "held").await;
    wait_deleted(&cms, "parent").await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_and_removes_their_owner_reference() {
    let (_api, client) = start("gc-orphan", "gco").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gco");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "gco");
    let parent = owner(&client, "gco", "parent").await;
    let other = owner(&client, "gco", "other").await;
    dependent(&client, "gco", "child", &parent, &[]).await;
    // A dependent with two owners keeps the other reference.
    let two_owners = dependent(&client, "gco", "shared", &parent, &[]).await;
    let mut refs = two_owners.owner_references().to_vec();
    refs.push(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "other".into(),
            uid: other.uid().expect("uid"),
            ..Default::default()
        },
    );
    secrets
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"ownerReferences": refs}})),
        )
        .await
        .expect("second owner");

    cms.delete("parent", &DeleteParams::orphan())
        .await
        .expect("delete");
    wait_deleted(&cms, "parent").await;
    let child = secrets.get("child").await.expect("the orphan stays");
    assert_eq!(child.metadata.owner_references, None);
    assert!(child.metadata.deletion_timestamp.is_none());
    let shared = secrets.get("shared").await.expect("stays");
    let remaining: Vec<String> = shared
        .owner_references()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(remaining, ["other"]);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents_then_the_namespace() {
    let (_api, client) = start("gc-namespace", "doomed").await;
    create_namespace(&client, "survivor").await;
    register_crd::<Gadget>(&client).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "doomed");
    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "doomed");
    for name in ["one", "two"] {
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).expect("cm"),
        )
        .await
        .expect("create");
    }
    gadgets
        .create(&PostParams::default(), &gadget("g", 1))
        .await
        .expect("create gadget");
    // A finalizer on one object keeps the namespace terminating until it is released.
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": [HOLD]}}))
                .expect("secret"),
        )
        .await
        .expect("create held");
    let survivor: Api<ConfigMap> = Api::namespaced(client.clone(), "survivor");
    survivor
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "one"}})).expect("cm"),
        )
        .await
        .expect("create elsewhere");

    let terminating = namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("delete namespace")
        .left()
        .expect("the namespace, terminating");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(
        terminating.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );

    wait_deleted(&cms, "one").await;
    wait_deleted(&cms, "two").await;
    wait_deleted(&gadgets, "g").await;
    wait_for(&secrets, "held", is_deleting).await;
    let still = namespaces.get("doomed").await.expect("still terminating");
    assert_eq!(
        still.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );
    assert_status(
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "late"}})).expect("cm"),
        )
        .await,
        403,
        "Forbidden",
        "configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated",
    );

    release(&secrets, "held").await;
    wait_deleted(&namespaces, "doomed").await;
    assert_status(
        namespaces.get("doomed").await,
        404,
        "NotFound",
        "namespaces \"doomed\" not found",
    );
    assert!(survivor.get_opt("one").await.expect("get").is_some());
    assert!(namespaces.get_opt("survivor").await.expect("get").is_some());
}
