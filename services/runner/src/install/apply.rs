//! Server-side apply of manifests to a test cluster, under the runner's field manager: applying
//! the same objects again changes nothing, so an install that was interrupted is simply redone.

use std::collections::HashMap;

use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};

use super::manifests::{Manifest, Manifests};
use crate::names::FIELD_MANAGER;

/// Namespace of a namespaced object that names none, as kubectl would use.
const DEFAULT_NAMESPACE: &str = "default";

/// An object that could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("{object}: {source}")]
pub struct ApplyError {
    /// `Kind namespace/name`.
    pub object: String,
    #[source]
    pub source: kube::Error,
}

impl ApplyError {
    /// Whether applying again can help: a refusal of the object itself (400, 403, 404 for an
    /// unknown kind, 422) will be refused again; anything else (the API server unreachable or
    /// overloaded, a conflict) may pass later.
    pub fn is_permanent(&self) -> bool {
        match &self.source {
            kube::Error::Api(status) => {
                (400..500).contains(&status.code) && !matches!(status.code, 408 | 409 | 429)
            }
            kube::Error::Discovery(_) => true,
            _ => false,
        }
    }
}

/// Applies every object in order; stops at the first that fails.
pub async fn apply_all(client: &Client, manifests: &Manifests) -> Result<(), ApplyError> {
    let mut kinds: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)> = HashMap::new();
    for manifest in &manifests.objects {
        let failed = |source| ApplyError {
            object: manifest.describe(),
            source,
        };
        let (resource, capabilities) = match kinds.get(&manifest.gvk) {
            Some(known) => known.clone(),
            None => {
                // Asked per kind and per install, not cached across installs: a kind may have
                // come with a CRD applied just before.
                let found = discovery::pinned_kind(client, &manifest.gvk)
                    .await
                    .map_err(failed)?;
                kinds.insert(manifest.gvk.clone(), found.clone());
                found
            }
        };
        apply_one(client, manifest, &resource, &capabilities)
            .await
            .map_err(failed)?;
    }
    Ok(())
}

async fn apply_one(
    client: &Client,
    manifest: &Manifest,
    resource: &ApiResource,
    capabilities: &ApiCapabilities,
) -> Result<(), kube::Error> {
    let mut object = manifest.object.clone();
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Cluster => {
            object.metadata.namespace = None;
            Api::all_with(client.clone(), resource)
        }
        Scope::Namespaced => {
            let namespace = object
                .metadata
                .namespace
                .get_or_insert_with(|| DEFAULT_NAMESPACE.to_owned())
                .clone();
            Api::namespaced_with(client.clone(), &namespace, resource)
        }
    };
    let name = object.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await?;
    Ok(())
}
