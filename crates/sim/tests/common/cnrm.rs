//! Config Connector objects as a service handles them: created as JSON, read as
//! `DynamicObject`s, waited on through watches until their `Ready` condition says something.

use std::time::Duration;

use kube::api::PostParams;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Client};
use serde_json::Value;

/// Bound on waiting for a Config Connector condition.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn resource(group: &str, kind: &str) -> ApiResource {
    ApiResource {
        group: format!("{group}.cnrm.cloud.google.com"),
        version: "v1beta1".into(),
        api_version: format!("{group}.cnrm.cloud.google.com/v1beta1"),
        kind: kind.into(),
        plural: format!("{}s", kind.to_lowercase()),
    }
}

pub fn api(client: &Client, namespace: &str, group: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &resource(group, kind))
}

pub async fn create(client: &Client, namespace: &str, object: Value) -> DynamicObject {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let group = api_version.split('.').next().expect("group").to_owned();
    let kind = object["kind"].as_str().expect("kind").to_owned();
    api(client, namespace, &group, &kind)
        .create(
            &PostParams::default(),
            &serde_json::from_value(object).expect("object"),
        )
        .await
        .unwrap_or_else(|e| panic!("creating {kind}: {e}"))
}

pub fn ready_condition(object: &DynamicObject) -> Option<&Value> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

/// The Ready condition has `reason` and `message`, written for the object's current generation.
pub fn ready_says(reason: &'static str, message: String) -> impl Condition<DynamicObject> {
    move |object: Option<&DynamicObject>| {
        object.is_some_and(|o| {
            o.data["status"]["observedGeneration"].as_i64() == o.metadata.generation
                && ready_condition(o)
                    .is_some_and(|c| c["reason"] == reason && c["message"] == message.as_str())
        })
    }
}

pub fn up_to_date() -> impl Condition<DynamicObject> {
    ready_says("UpToDate", "The resource is up to date".to_owned())
}

pub async fn wait_for(
    api: &Api<DynamicObject>,
    name: &str,
    condition: impl Condition<DynamicObject>,
    what: &str,
) -> DynamicObject {
    let last = tokio::time::timeout(WAIT, await_condition(api.clone(), name, condition))
        .await
        .unwrap_or_else(|_| {
            panic!("timed out waiting for {name}: {what}");
        })
        .expect("watch");
    last.unwrap_or_else(|| panic!("{name} is gone while waiting for {what}"))
}
