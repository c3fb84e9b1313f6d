//! What the watches of the owned Config Connector objects have seen.

use std::sync::Arc;

use kube::ResourceExt as _;
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Map, Value};
use testcluster_service::stores_ready::StoresReady;

use super::error::Error;
use crate::template::ObjectKind;

/// Reflector stores of the six owned kinds, fed by the watches that also trigger reconciles.
#[derive(Clone)]
pub struct OwnedStores {
    stores: Vec<(ObjectKind, ApiResource, Store<DynamicObject>)>,
    ready: StoresReady,
}

impl OwnedStores {
    /// Starts waiting for the stores' first lists (in a task: call within the runtime).
    pub(super) fn new(stores: Vec<(ObjectKind, ApiResource, Store<DynamicObject>)>) -> Self {
        let ready = StoresReady::all(
            stores
                .iter()
                .map(|(_, _, store)| StoresReady::store(store))
                .collect(),
        );
        OwnedStores { stores, ready }
    }

    /// Waits until every store holds its watch's initial list.
    pub(super) async fn wait_until_ready(&self) -> Result<(), Error> {
        if self.ready.wait().await {
            Ok(())
        } else {
            Err(Error::StoreClosed)
        }
    }

    /// The object as last seen by the watch; it may lag behind a write made just before.
    pub(super) fn get(
        &self,
        kind: &ObjectKind,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let (_, resource, store) = self.stores.iter().find(|(k, _, _)| k == kind)?;
        store.get(&ObjectRef::new_with(name, resource.clone()).within(namespace))
    }
}

/// Fields of an owned object's `status` that reconciles read: readiness (see `dependency_of`)
/// and a ContainerCluster's endpoint (see `access::endpoint_and_ca`).
const KEPT_STATUS: [&str; 3] = ["conditions", "observedGeneration", "endpoint"];

/// Cuts `object` down to what reconciles read before it is stored: metadata without managed
/// fields and annotations, the [`KEPT_STATUS`] fields, and the cluster CA (in
/// `status.observedState`, or in `spec` with older Config Connector versions). The rest, mostly
/// the spec and Config Connector's observed state, was most of the provisioner's memory: six
/// objects per test cluster, each kept for the run's whole life.
pub(super) fn slim(object: &mut DynamicObject) {
    object.managed_fields_mut().clear();
    object.metadata.annotations = None;
    let ca = |root: &Value| root["masterAuth"]["clusterCaCertificate"].clone();
    let status = &object.data["status"];
    let mut kept: Map<String, Value> = KEPT_STATUS
        .iter()
        .filter(|field| !status[**field].is_null())
        .map(|field| ((*field).to_owned(), status[*field].clone()))
        .collect();
    let observed_ca = ca(&status["observedState"]);
    if !observed_ca.is_null() {
        kept.insert(
            "observedState".to_owned(),
            serde_json::json!({"masterAuth": {"clusterCaCertificate": observed_ca}}),
        );
    }
    let spec_ca = ca(&object.data["spec"]);
    let mut data = serde_json::json!({"status": kept});
    if !spec_ca.is_null() {
        data["spec"] = serde_json::json!({"masterAuth": {"clusterCaCertificate": spec_ca}});
    }
    object.data = data;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slimming_keeps_what_reconciles_read() {
        let mut object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "container.cnrm.cloud.google.com/v1beta1",
            "kind": "ContainerCluster",
            "metadata": {
                "name": "c-abcde",
                "namespace": "ns",
                "uid": "u1",
                "generation": 2,
                "annotations": {"cnrm.cloud.google.com/project-id": "p"},
                "managedFields": [{"manager": "testcluster-provisioner"}],
                "ownerReferences": [{"apiVersion": "v", "kind": "K", "name": "n", "uid": "o", "controller": true}],
            },
            "spec": {"location": "europe-west1-b", "masterAuth": {"clusterCaCertificate": "Q0E="}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "observedGeneration": 2,
                "endpoint": "10.0.0.1",
                "observedState": {"masterAuth": {"clusterCaCertificate": "Q0E="}, "other": "x"},
                "selfLink": "https://container.googleapis.com/...",
            },
        }))
        .expect("a ContainerCluster");
        slim(&mut object);
        assert_eq!(
            object.data,
            serde_json::json!({
                "spec": {"masterAuth": {"clusterCaCertificate": "Q0E="}},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "observedGeneration": 2,
                    "endpoint": "10.0.0.1",
                    "observedState": {"masterAuth": {"clusterCaCertificate": "Q0E="}},
                },
            })
        );
        assert!(object.metadata.annotations.is_none());
        assert!(object.managed_fields().is_empty());
        assert_eq!(object.owner_references().len(), 1);
        assert_eq!(object.metadata.generation, Some(2));
    }
}
