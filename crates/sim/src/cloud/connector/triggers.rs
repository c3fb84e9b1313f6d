//! Which Config Connector objects to reconcile when the cloud says a cluster changed, so that a
//! change made through the GKE API (a deletion, an upgrade) shows in their status at once, as it
//! would at the real Config Connector's next reconcile, instead of at the 10-minute resync.

use futures::{Stream, StreamExt as _, stream};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_stream::wrappers::BroadcastStream;

use super::actions::resource_id;
use super::kinds::Kind;
use crate::cloud::{Cloud, ClusterKey};

/// For ContainerCluster and ContainerNodePool, the objects (found in the controller's `store`)
/// that stand for, or belong to, each cluster the cloud reports changed; `None` for other kinds.
/// Matching is by cluster name and location, without the project (resolving it takes API calls);
/// an object matched needlessly only gets a reconcile that finds nothing to do.
pub(super) fn cloud_changes(
    kind: Kind,
    cloud: &Cloud,
    store: Store<DynamicObject>,
    resource: ApiResource,
) -> Option<impl Stream<Item = ObjectRef<DynamicObject>> + Send + 'static> {
    if !matches!(kind, Kind::ContainerCluster | Kind::ContainerNodePool) {
        return None;
    }
    // A watcher that fell behind loses changes; their objects are reconciled at the next resync.
    let changes = BroadcastStream::new(cloud.watch_clusters()).filter_map(|c| async { c.ok() });
    Some(changes.flat_map(move |key| {
        let refs: Vec<_> = store
            .state()
            .into_iter()
            .filter(|object| stands_for(kind, object, &key))
            .map(|object| ObjectRef::from_obj_with(object.as_ref(), resource.clone()))
            .collect();
        stream::iter(refs)
    }))
}

fn stands_for(kind: Kind, object: &DynamicObject, key: &ClusterKey) -> bool {
    let spec = &object.data["spec"];
    match kind {
        Kind::ContainerCluster => {
            spec["location"] == key.location.as_str() && resource_id(object) == key.name
        }
        _ => {
            let cluster = &spec["clusterRef"];
            cluster["name"] == key.name.as_str()
                || cluster["external"]
                    .as_str()
                    .and_then(|e| e.rsplit('/').next())
                    .is_some_and(|name| name == key.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(name: &str) -> ClusterKey {
        ClusterKey {
            project: "p".into(),
            location: "us-central1-a".into(),
            name: name.into(),
        }
    }

    #[test]
    fn objects_match_their_cluster() {
        let mut cluster = DynamicObject::new("c", &Kind::ContainerCluster.api_resource());
        cluster.data = json!({"spec": {"location": "us-central1-a"}});
        assert!(stands_for(Kind::ContainerCluster, &cluster, &key("c")));
        assert!(!stands_for(Kind::ContainerCluster, &cluster, &key("d")));
        cluster.data["spec"]["resourceID"] = json!("d");
        assert!(stands_for(Kind::ContainerCluster, &cluster, &key("d")));

        let mut pool = DynamicObject::new("np", &Kind::ContainerNodePool.api_resource());
        pool.data = json!({"spec": {"clusterRef": {"name": "c"}}});
        assert!(stands_for(Kind::ContainerNodePool, &pool, &key("c")));
        pool.data = json!({"spec": {"clusterRef": {
            "external": "projects/p/locations/us-central1-a/clusters/e"}}});
        assert!(stands_for(Kind::ContainerNodePool, &pool, &key("e")));
        assert!(!stands_for(Kind::ContainerNodePool, &pool, &key("c")));
    }
}
