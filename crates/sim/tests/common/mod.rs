//! Helpers shared by the kube-rs conformance tests: an API server per test, a client over HTTPS, a
//! custom resource registered at runtime, and waits with bounded timeouts.
// Every test binary compiles this module and uses only some of it.
#![allow(dead_code)]

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceValidation,
};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::Status;
use kube::runtime::wait::conditions;
use kube::{Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use testcluster_sim::Simulator;
use testcluster_sim::apiserver::{ApiServer, ApiServerConfig};
use testcluster_sim::workloads::{Backoff, WorkloadConfig, Workloads};

pub mod cnrm;
pub mod gke;
// Each test binary uses some of these.
#[allow(unused_imports)]
pub use testcluster_testkit::{WAIT, create_namespace, init, wait_deleted, wait_for, within};

/// A fresh API server and an HTTPS client for it (counted, subject to faults), with a namespace.
pub async fn start(name: &str, namespace: &str) -> (ApiServer, Client) {
    init();
    let api = ApiServer::start(ApiServerConfig {
        name: name.into(),
        ..ApiServerConfig::default()
    })
    .await
    .expect("api server starts");
    let client = api.client().await.expect("client");
    create_namespace(&client, namespace).await;
    (api, client)
}

/// A client like `ApiServer::client`, but without kube-rs' automatic retry of 429/503, so a test
/// sees those answers instead of waiting out the retries.
pub async fn client_without_retries(api: &ApiServer) -> Client {
    let mut config = kube::Config::from_custom_kubeconfig(
        api.kubeconfig(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    config.default_retry = false;
    Client::try_from(config).expect("client")
}

/// The `Status` of a failed request; panics if the request succeeded or failed otherwise.
pub fn status_of<T: Debug>(result: Result<T, kube::Error>) -> Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Asserts code, reason and message of a failed request.
pub fn assert_status<T: Debug>(
    result: Result<T, kube::Error>,
    code: u16,
    reason: &str,
    message: &str,
) {
    let status = status_of(result);
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (code, reason, message),
        "{status:?}"
    );
}

/// A namespaced custom resource with a status subresource, registered at runtime.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "conformance.testcluster.dev",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus",
    shortname = "gd",
    schema = "disabled"
)]
pub struct GadgetSpec {
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// A Gadget of `size`, without a colour or a status.
pub fn gadget(name: &str, size: i64) -> Gadget {
    Gadget::new(name, GadgetSpec { size, color: None })
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GadgetStatus {
    #[serde(default)]
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A CRD from the derive, with a structural schema set by hand (as kube-rs' `crd_derive_no_schema`
/// example does).
pub fn crd_with_schema<K: CustomResourceExt>() -> CustomResourceDefinition {
    let mut crd = K::crd();
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
    });
    for version in &mut crd.spec.versions {
        version.schema = Some(CustomResourceValidation {
            open_api_v3_schema: Some(serde_json::from_value(schema.clone()).expect("schema")),
        });
    }
    crd
}

/// Registers a CRD and waits until it is Established.
pub async fn register_crd<K: CustomResourceExt>(client: &Client) -> CustomResourceDefinition {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crd_with_schema::<K>();
    let name = crd.name_any();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    wait_for(&crds, &name, conditions::is_crd_established()).await
}

/// The kubelet and the Job controller over `api`, with a back-off that starts at `tick` and a pod
/// resync every `tick`, so that restarts and retries happen within a test's patience.
pub fn start_workloads(api: &ApiServer, tick: Duration) -> Workloads {
    Workloads::start(
        api.internal_client(),
        api.pod_logs().clone(),
        WorkloadConfig {
            backoff: Backoff {
                initial: tick,
                max: Duration::from_secs(2),
            },
            sync_interval: tick,
            ..WorkloadConfig::default()
        },
    )
    .expect("workloads")
}

/// Every object of kind `K` in `namespace`.
pub async fn list_in<K>(client: &Client, namespace: &str) -> Vec<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing {}: {e}", K::kind(&Default::default())))
        .items
}

/// A Warning Event as either Event API carries it.
#[derive(Debug, Default)]
pub struct Warning {
    pub reason: String,
    /// The name of the object it is about.
    pub object: String,
    /// The controller that reported it.
    pub controller: String,
    pub note: String,
}

/// The Warnings in `namespace` read through `events.k8s.io/v1`, as controllers write them.
pub async fn warnings(client: &Client, namespace: &str) -> Vec<Warning> {
    list_in::<k8s_openapi::api::events::v1::Event>(client, namespace)
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| Warning {
            reason: e.reason.unwrap_or_default(),
            object: e.regarding.and_then(|r| r.name).unwrap_or_default(),
            controller: e.reporting_controller.unwrap_or_default(),
            note: e.note.unwrap_or_default(),
        })
        .collect()
}

/// The Warnings in `namespace` read through core v1, as `kubectl describe` reads them.
pub async fn core_warnings(client: &Client, namespace: &str) -> Vec<Warning> {
    list_in::<k8s_openapi::api::core::v1::Event>(client, namespace)
        .await
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| Warning {
            reason: e.reason.unwrap_or_default(),
            object: e.involved_object.name.unwrap_or_default(),
            controller: e.source.and_then(|s| s.component).unwrap_or_default(),
            note: e.message.unwrap_or_default(),
        })
        .collect()
}

/// Asserts the simulated cloud never created a cluster.
pub fn assert_no_cloud_cluster(sim: &Simulator) {
    assert!(
        sim.inventory().all().is_empty(),
        "{:?}",
        sim.inventory().all()
    );
}

/// Deletes `name` through `api` and waits until no cloud cluster is live.
pub async fn delete_and_wait_none_live<K>(sim: &Simulator, api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    sim.inventory()
        .wait_until_none_live(WAIT)
        .await
        .unwrap_or_else(|live| panic!("clusters still live: {live:?}"));
}

/// Names of objects, in the order given.
pub fn names<K: ResourceExt>(objects: impl IntoIterator<Item = K>) -> Vec<String> {
    objects.into_iter().map(|o| o.name_any()).collect()
}
