//! Custom resources validated against their CRD's `openAPIV3Schema`, with Config Connector's real
//! ContainerCluster CRD: the 422 and its causes as the real API server gives them, and pruning of
//! unknown fields.

mod common;

use common::{create_namespace, init, status_of};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::wait::conditions;
use serde_json::{Value, json};
use testcluster_sim::apiserver::{ApiServer, ApiServerConfig};

const CRD: &str = include_str!("../crds/containerclusters.container.cnrm.cloud.google.com.yaml");
const NAMESPACE: &str = "schema";

/// An API server with the ContainerCluster CRD established, and the API of ContainerClusters.
async fn start() -> (ApiServer, Api<DynamicObject>) {
    init();
    let api = ApiServer::start(ApiServerConfig {
        name: "schema".into(),
        ..ApiServerConfig::default()
    })
    .await
    .expect("api server starts");
    let client: Client = api.client().await.expect("client");
    create_namespace(&client, NAMESPACE).await;
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<CustomResourceDefinition>(&()),
    );
    let crd: DynamicObject = yaml_serde::from_str(CRD).expect("CRD parses");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    common::wait_for(
        &Api::<CustomResourceDefinition>::all(client.clone()),
        "containerclusters.container.cnrm.cloud.google.com",
        conditions::is_crd_established(),
    )
    .await;
    let gvk = GroupVersionKind::gvk(
        "container.cnrm.cloud.google.com",
        "v1beta1",
        "ContainerCluster",
    );
    let clusters = Api::namespaced_with(client, NAMESPACE, &ApiResource::from_gvk(&gvk));
    (api, clusters)
}

fn cluster(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "container.cnrm.cloud.google.com/v1beta1",
        "kind": "ContainerCluster",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("object")
}

/// (code, reason, message, [(reason, field, message)]) of a failed request.
fn invalid<T: std::fmt::Debug>(
    result: Result<T, kube::Error>,
) -> (u16, String, String, Vec<(String, String, String)>) {
    let status = status_of(result);
    let causes = status
        .details
        .map(|d| d.causes)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.reason, c.field, c.message))
        .collect();
    (status.code, status.reason, status.message, causes)
}

fn cause(reason: &str, field: &str, message: &str) -> (String, String, String) {
    (reason.to_owned(), field.to_owned(), message.to_owned())
}

const TYPE_CAUSE: &str =
    "Invalid value: \"string\": spec.initialNodeCount in body must be of type integer: \"string\"";

#[tokio::test]
async fn a_container_cluster_is_validated_against_the_real_crd() {
    let (_api, clusters) = start().await;
    let bad = clusters
        .create(
            &PostParams::default(),
            &cluster("bad", json!({"initialNodeCount": "three"})),
        )
        .await;
    assert_eq!(
        invalid(bad),
        (
            422,
            "Invalid".to_owned(),
            format!(
                "ContainerCluster.container.cnrm.cloud.google.com \"bad\" is invalid: [spec.initialNodeCount: {TYPE_CAUSE}, spec.location: Required value]"
            ),
            vec![
                cause("FieldValueTypeInvalid", "spec.initialNodeCount", TYPE_CAUSE),
                cause("FieldValueRequired", "spec.location", "Required value"),
            ]
        )
    );
    let missing = clusters.get_opt("bad").await.expect("get");
    assert!(missing.is_none(), "nothing was stored: {missing:?}");

    // A valid one is accepted, and fields the schema does not know are pruned, at any depth.
    let created = clusters
        .create(
            &PostParams::default(),
            &cluster(
                "good",
                json!({"location": "europe-west2-b", "initialNodeCount": 3, "notAField": true,
                    "nodeConfig": {"machineType": "n1-standard-4", "bogus": 1}}),
            ),
        )
        .await
        .expect("a valid cluster is created");
    assert_eq!(
        created.data["spec"],
        json!({"location": "europe-west2-b", "initialNodeCount": 3,
            "nodeConfig": {"machineType": "n1-standard-4"}})
    );

    // Every write is validated: merge patch, server-side apply, replace.
    let patched = clusters
        .patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"initialNodeCount": "three"}})),
        )
        .await;
    assert_eq!(
        invalid(patched).3,
        vec![cause(
            "FieldValueTypeInvalid",
            "spec.initialNodeCount",
            TYPE_CAUSE
        )]
    );
    let applied = clusters
        .patch(
            "good",
            &PatchParams::apply("schema-test").force(),
            &Patch::Apply(cluster("good", json!({"location": 7}))),
        )
        .await;
    assert_eq!(
        invalid(applied).3,
        vec![cause(
            "FieldValueTypeInvalid",
            "spec.location",
            "Invalid value: \"integer\": spec.location in body must be of type string: \"integer\""
        )]
    );
    let mut replaced = clusters.get("good").await.expect("get");
    replaced.data["spec"]["initialNodeCount"] = json!(1.5);
    let replaced = clusters
        .replace("good", &PostParams::default(), &replaced)
        .await;
    assert_eq!(
        invalid(replaced).3,
        vec![cause(
            "FieldValueTypeInvalid",
            "spec.initialNodeCount",
            "Invalid value: \"number\": spec.initialNodeCount in body must be of type integer: \"number\""
        )]
    );
    assert_eq!(
        clusters.get("good").await.expect("get").data["spec"]["initialNodeCount"],
        json!(3)
    );
}
