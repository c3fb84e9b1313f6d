//! What the watches of the owned Config Connector objects have seen.

use std::sync::Arc;

use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};

use super::error::Error;
use crate::template::ObjectKind;

/// Reflector stores of the six owned kinds, fed by the watches that also trigger reconciles.
#[derive(Clone)]
pub struct OwnedStores(pub(super) Vec<(ObjectKind, ApiResource, Store<DynamicObject>)>);

impl OwnedStores {
    /// Waits until every store holds its watch's initial list.
    pub(super) async fn wait_until_ready(&self) -> Result<(), Error> {
        for (kind, _, store) in &self.0 {
            store
                .wait_until_ready()
                .await
                .map_err(|_| Error::StoreClosed(kind.kind))?;
        }
        Ok(())
    }

    /// The object as last seen by the watch; it may lag behind a write made just before.
    pub(super) fn get(
        &self,
        kind: &ObjectKind,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let (_, resource, store) = self.0.iter().find(|(k, _, _)| k == kind)?;
        store.get(&ObjectRef::new_with(name, resource.clone()).within(namespace))
    }
}
