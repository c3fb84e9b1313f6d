//! One cloud seen through both APIs: clusters made with Config Connector objects are listed, read
//! and changed through the GKE REST API (`google-cloud-container-v1`), and what REST changes or
//! deletes shows in the objects' status, observed with watches.

// `currentNodeCount` is deprecated, but Config Connector and older clients read it.
#![allow(deprecated)]

mod common;

use std::time::{Duration, Instant};

use common::cnrm::{WAIT, api, create, ready_condition, ready_says, up_to_date, wait_for};
use common::create_namespace;
use common::gke::{gke_client, wait_done};
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model::{
    ClusterUpdate, cluster, node_pool, operation, release_channel,
};
use google_cloud_gax::error::rpc::Code;
use kube::Client;
use kube::api::DeleteParams;
use kube::core::DynamicObject;
use kube::runtime::wait::{Condition as _, await_condition};
use serde_json::{Value, json};
use testcluster_sim::cloud::ClusterKey;
use testcluster_sim::cloud::connector::ConnectorConfig;
use testcluster_sim::{SimConfig, Simulator};

const PROJECT: &str = "one-project";
const ZONE: &str = "us-central1-a";
const NEW_VERSION: &str = "1.34.1-gke.1200000";

/// Config Connector takes `cluster_create` to make a cluster and `delete` to remove one, long
/// enough for the states in between to be seen.
async fn start(cluster_create: Duration, delete: Duration) -> (Simulator, Client, ClusterManager) {
    testcluster_testkit::init();
    let sim = Simulator::start(SimConfig {
        connector: ConnectorConfig {
            cluster_create,
            node_pool_create: Duration::from_millis(50),
            other_create: Duration::from_millis(20),
            delete,
            max_retry_backoff: Duration::from_millis(500),
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let client = sim.api().client().await.expect("HTTPS client");
    let gke = gke_client(sim.gke().endpoint()).await;
    (sim, client, gke)
}

fn parent(location: &str) -> String {
    format!("projects/{PROJECT}/locations/{location}")
}

fn cluster_name(name: &str) -> String {
    format!("{}/clusters/{name}", parent(ZONE))
}

fn key(name: &str) -> ClusterKey {
    ClusterKey {
        project: PROJECT.into(),
        location: ZONE.into(),
        name: name.into(),
    }
}

fn container_cluster(name: &str, remove_default_pool: bool) -> Value {
    json!({
        "apiVersion": "container.cnrm.cloud.google.com/v1beta1",
        "kind": "ContainerCluster",
        "metadata": {
            "name": name,
            "labels": {"team": "ci"},
            "annotations": {
                "cnrm.cloud.google.com/project-id": PROJECT,
                "cnrm.cloud.google.com/remove-default-node-pool": remove_default_pool.to_string(),
            },
        },
        "spec": {
            "location": ZONE,
            "initialNodeCount": 1,
            "releaseChannel": {"channel": "RAPID"},
            "ipAllocationPolicy": {"clusterIpv4CidrBlock": "/16"},
            "nodeConfig": {"machineType": "e2-standard-4"},
        },
    })
}

fn container_node_pool(name: &str, cluster: &str, nodes: u32) -> Value {
    json!({
        "apiVersion": "container.cnrm.cloud.google.com/v1beta1",
        "kind": "ContainerNodePool",
        "metadata": {
            "name": name,
            "annotations": {"cnrm.cloud.google.com/project-id": PROJECT},
        },
        "spec": {
            "location": ZONE,
            "clusterRef": {"name": cluster},
            "nodeCount": nodes,
            "nodeConfig": {"machineType": "e2-standard-2"},
        },
    })
}

fn status_str<'o>(object: &'o DynamicObject, pointer: &str) -> &'o str {
    object.data["status"]
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

async fn get_cluster(
    gke: &ClusterManager,
    name: &str,
) -> google_cloud_container_v1::model::Cluster {
    gke.get_cluster()
        .set_name(cluster_name(name))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get cluster {name}: {e}"))
}

#[tokio::test]
async fn config_connector_clusters_are_gke_clusters_and_follow_what_gke_does() {
    let (sim, client, gke) = start(Duration::from_millis(400), Duration::from_millis(20)).await;
    let ns = "one";
    create_namespace(&client, ns).await;
    let clusters = api(&client, ns, "container", "ContainerCluster");
    let pools = api(&client, ns, "container", "ContainerNodePool");
    create(&client, ns, container_cluster("shared", true)).await;
    create(&client, ns, container_node_pool("workers", "shared", 2)).await;
    let ready = wait_for(
        &clusters,
        "shared",
        up_to_date(),
        "the cluster is up to date",
    )
    .await;
    wait_for(&pools, "workers", up_to_date(), "the pool is up to date").await;

    // GKE lists and reads the cluster Config Connector made, with what its spec asked for.
    let listed = gke
        .list_clusters()
        .set_parent(parent("-"))
        .send()
        .await
        .expect("list clusters");
    let names: Vec<&str> = listed.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["shared"]);
    let seen = get_cluster(&gke, "shared").await;
    assert_eq!(seen, listed.clusters[0]);
    assert_eq!(seen.status, cluster::Status::Running);
    assert_eq!(seen.location, ZONE);
    assert_eq!(seen.endpoint, status_str(&ready, "/endpoint"));
    let test_cluster = sim.cloud().cluster(&key("shared")).expect("running");
    assert_eq!(seen.endpoint, test_cluster.endpoint());
    assert_eq!(
        seen.master_auth
            .as_ref()
            .map(|a| a.cluster_ca_certificate.as_str()),
        Some(status_str(
            &ready,
            "/observedState/masterAuth/clusterCaCertificate"
        ))
    );
    assert_eq!(
        seen.resource_labels,
        [("managed-by-cnrm", "true"), ("team", "ci")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    );
    assert_eq!(
        seen.release_channel.as_ref().map(|r| r.channel.clone()),
        Some(release_channel::Channel::Rapid)
    );
    let ip = seen
        .ip_allocation_policy
        .as_ref()
        .expect("ipAllocationPolicy");
    assert!(ip.use_ip_aliases);
    assert_eq!(ip.cluster_ipv4_cidr_block, "/16");
    assert_eq!(
        seen.current_master_version,
        status_str(&ready, "/masterVersion")
    );
    assert_eq!(
        seen.label_fingerprint,
        status_str(&ready, "/labelFingerprint")
    );
    assert_eq!(seen.current_node_count, 2);
    assert!(!seen.etag.is_empty());
    let pool_names: Vec<&str> = seen.node_pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pool_names, ["workers"]);
    let workers = &seen.node_pools[0];
    assert_eq!(workers.status, node_pool::Status::Running);
    assert_eq!(
        workers.config.as_ref().map(|c| c.machine_type.as_str()),
        Some("e2-standard-2")
    );
    assert_eq!(workers.version, seen.current_master_version);

    // clusters.update: the master upgrade is an UPGRADE_MASTER operation, then both views show it.
    let upgrade = gke
        .update_cluster()
        .set_name(cluster_name("shared"))
        .set_update(ClusterUpdate::new().set_desired_master_version(NEW_VERSION))
        .send()
        .await
        .expect("update cluster");
    assert_eq!(upgrade.operation_type, operation::Type::UpgradeMaster);
    assert_eq!(upgrade.status, operation::Status::Running);
    let reconciling = get_cluster(&gke, "shared").await;
    assert_eq!(reconciling.status, cluster::Status::Reconciling);
    let busy = gke
        .update_cluster()
        .set_name(cluster_name("shared"))
        .set_update(ClusterUpdate::new().set_desired_logging_service("none"))
        .send()
        .await
        .expect_err("a second operation during the upgrade");
    assert_eq!(busy.http_status_code(), Some(400));
    assert_eq!(
        busy.status().map(|s| s.message.clone()),
        Some(format!(
            "Operation {} is currently upgrading cluster shared. Please wait and try again once \
             it is done.",
            upgrade.name
        ))
    );
    assert_eq!(wait_done(&gke, &parent(ZONE), &upgrade).await.error, None);
    let upgraded = get_cluster(&gke, "shared").await;
    assert_eq!(upgraded.status, cluster::Status::Running);
    assert_eq!(upgraded.current_master_version, NEW_VERSION);
    assert_ne!(upgraded.etag, seen.etag);
    wait_for(
        &clusters,
        "shared",
        |o: Option<&DynamicObject>| {
            o.is_some_and(|o| status_str(o, "/masterVersion") == NEW_VERSION)
        },
        "status.masterVersion shows the upgrade",
    )
    .await;

    // A stale etag is refused.
    let stale = gke
        .update_cluster()
        .set_name(cluster_name("shared"))
        .set_update(
            ClusterUpdate::new()
                .set_desired_logging_service("none")
                .set_etag(seen.etag.clone()),
        )
        .send()
        .await
        .expect_err("stale etag");
    assert_eq!(stale.http_status_code(), Some(409));
    assert_eq!(stale.status().map(|s| s.code), Some(Code::Aborted));

    // nodePools.update: UPGRADE_NODES, visible in the pool and in the ContainerNodePool.
    let nodes = gke
        .update_node_pool()
        .set_name(format!("{}/nodePools/workers", cluster_name("shared")))
        .set_node_version(NEW_VERSION)
        .send()
        .await
        .expect("update node pool");
    assert_eq!(nodes.operation_type, operation::Type::UpgradeNodes);
    assert_eq!(wait_done(&gke, &parent(ZONE), &nodes).await.error, None);
    let pool = gke
        .get_node_pool()
        .set_name(format!("{}/nodePools/workers", cluster_name("shared")))
        .send()
        .await
        .expect("get node pool");
    assert_eq!(pool.version, NEW_VERSION);
    assert_eq!(
        get_cluster(&gke, "shared").await.current_node_version,
        NEW_VERSION
    );
    wait_for(
        &pools,
        "workers",
        |o: Option<&DynamicObject>| {
            o.is_some_and(|o| status_str(o, "/observedState/version") == NEW_VERSION)
        },
        "status.observedState.version shows the upgrade",
    )
    .await;

    // setResourceLabels checks the fingerprint, as GKE does.
    let current = get_cluster(&gke, "shared").await;
    let refused = gke
        .set_labels()
        .set_name(cluster_name("shared"))
        .set_resource_labels([("team", "qa")])
        .set_label_fingerprint("00000000")
        .send()
        .await
        .expect_err("stale fingerprint");
    assert_eq!(refused.http_status_code(), Some(400));
    assert_eq!(
        refused.status().map(|s| s.message.clone()),
        Some(format!(
            "Labels could not be set due to fingerprint mismatch; try again with the proper \
             fingerprint: incorrect fingerprint supplied was \"00000000\", the expected one is \
             \"{}\".",
            current.label_fingerprint
        ))
    );
    let relabel = gke
        .set_labels()
        .set_name(cluster_name("shared"))
        .set_resource_labels([("team", "qa")])
        .set_label_fingerprint(current.label_fingerprint.clone())
        .send()
        .await
        .expect("set labels");
    assert_eq!(relabel.operation_type, operation::Type::SetLabels);
    assert_eq!(wait_done(&gke, &parent(ZONE), &relabel).await.error, None);
    let relabelled = get_cluster(&gke, "shared").await;
    assert_eq!(
        relabelled.resource_labels.get("team").map(String::as_str),
        Some("qa")
    );
    let fingerprint = relabelled.label_fingerprint.clone();
    assert_ne!(fingerprint, current.label_fingerprint);
    wait_for(
        &clusters,
        "shared",
        move |o: Option<&DynamicObject>| {
            o.is_some_and(|o| status_str(o, "/labelFingerprint") == fingerprint)
        },
        "status.labelFingerprint follows",
    )
    .await;

    // Deleted through REST: Config Connector notices at once and creates it again, Ready False
    // (Updating) meanwhile, as it corrects drift; its node pool follows.
    let updating = tokio::spawn(await_condition(
        clusters.clone(),
        "shared",
        ready_says("Updating", "Update in progress".to_owned()),
    ));
    let old_endpoint = upgraded.endpoint.clone();
    let delete = gke
        .delete_cluster()
        .set_name(cluster_name("shared"))
        .send()
        .await
        .expect("delete cluster");
    assert_eq!(wait_done(&gke, &parent(ZONE), &delete).await.error, None);
    let reported = tokio::time::timeout(WAIT, updating)
        .await
        .expect("the ContainerCluster reports the deletion in time")
        .expect("watch task")
        .expect("watch")
        .expect("the ContainerCluster still exists");
    assert_eq!(
        ready_condition(&reported).map(|c| c["status"].clone()),
        Some(json!("False"))
    );
    let recreated = wait_for(
        &clusters,
        "shared",
        |o: Option<&DynamicObject>| {
            o.is_some_and(|o| {
                up_to_date().matches_object(Some(o))
                    && !status_str(o, "/endpoint").is_empty()
                    && status_str(o, "/endpoint") != old_endpoint
            })
        },
        "the cluster is created again, with a new endpoint",
    )
    .await;
    sim.inventory()
        .wait_until(WAIT, |inventory| {
            inventory
                .find_live(PROJECT, ZONE, "shared")
                .is_some_and(|c| c.nodes == 2)
        })
        .await
        .expect("the node pool is created again");
    let back = get_cluster(&gke, "shared").await;
    assert_eq!(back.status, cluster::Status::Running);
    assert_eq!(back.endpoint, status_str(&recreated, "/endpoint"));
    assert_ne!(back.id, seen.id);
    let recorded = sim.inventory().all();
    assert_eq!(recorded.len(), 2);
    assert!(recorded[0].deleted.is_some());

    pools
        .delete("workers", &DeleteParams::default())
        .await
        .expect("delete the ContainerNodePool");
    common::wait_deleted(&pools, "workers").await;
    common::delete_and_wait_none_live(&sim, &clusters, "shared").await;
}

#[tokio::test]
async fn a_cluster_deleted_through_config_connector_stops_then_is_gone_from_gke() {
    let (sim, client, gke) = start(Duration::from_millis(50), Duration::from_millis(600)).await;
    let ns = "gone";
    create_namespace(&client, ns).await;
    let clusters = api(&client, ns, "container", "ContainerCluster");
    create(&client, ns, container_cluster("doomed", false)).await;
    wait_for(
        &clusters,
        "doomed",
        up_to_date(),
        "the cluster is up to date",
    )
    .await;
    let running = get_cluster(&gke, "doomed").await;
    assert_eq!(running.status, cluster::Status::Running);
    // Without remove-default-node-pool, the default pool has the spec's node config.
    let pool_names: Vec<&str> = running.node_pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pool_names, ["default-pool"]);
    assert_eq!(
        running.node_pools[0]
            .config
            .as_ref()
            .map(|c| c.machine_type.as_str()),
        Some("e2-standard-4")
    );

    clusters
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("delete the ContainerCluster");
    // GKE has no watch: its clients poll, and so does this test (bounded).
    let deadline = Instant::now() + WAIT;
    let mut seen_stopping = false;
    let gone = loop {
        match gke
            .get_cluster()
            .set_name(cluster_name("doomed"))
            .send()
            .await
        {
            Ok(cluster) => {
                assert!(
                    matches!(
                        cluster.status,
                        cluster::Status::Running | cluster::Status::Stopping
                    ),
                    "{:?}",
                    cluster.status
                );
                seen_stopping |= cluster.status == cluster::Status::Stopping;
            }
            Err(error) => break error,
        }
        assert!(Instant::now() < deadline, "the cluster is still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(seen_stopping, "STOPPING was never seen");
    assert_eq!(gone.http_status_code(), Some(404));
    assert_eq!(
        gone.status().map(|s| s.message.clone()),
        Some(format!(
            "Not found: projects/{PROJECT}/zones/{ZONE}/clusters/doomed."
        ))
    );
    let listed = gke
        .list_clusters()
        .set_parent(parent("-"))
        .send()
        .await
        .expect("list clusters");
    assert_eq!(listed.clusters, []);
    common::wait_deleted(&clusters, "doomed").await;
    assert!(sim.inventory().live().is_empty());
}
