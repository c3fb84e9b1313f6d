//! The GKE REST API fake and the GCE metadata server, driven by the official clients
//! (`google-cloud-container-v1`, `google-cloud-auth`) over real HTTP.

// `statusMessage`, `currentNodeCount` and friends are deprecated, but Config Connector and older
// clients read them, so the fake must fill them and these tests check them.
#![allow(deprecated)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use google_cloud_container_v1::client::ClusterManager;
use google_cloud_container_v1::model::{
    Cluster, NodeConfig, NodePool, Operation, cluster, operation,
};
use google_cloud_gax::error::rpc::{Code, StatusDetails};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::ListParams;
use kube::config::KubeConfigOptions;
use kube::{Api, Client};
use testcluster_sim::apiserver::kubeconfig_for;
use testcluster_sim::cloud::{CloudFailure, ClusterKey, Provider};
use testcluster_sim::{SimConfig, Simulator};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

mod common;

use common::gke::{WAIT, gke_client, wait_done};

const PROJECT: &str = "tc-project";
const ZONE: &str = "us-central1-a";

async fn start() -> (Simulator, ClusterManager) {
    testcluster_testkit::init();
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let client = gke_client(sim.gke().endpoint()).await;
    (sim, client)
}

fn parent(location: &str) -> String {
    format!("projects/{PROJECT}/locations/{location}")
}

fn cluster_name(location: &str, name: &str) -> String {
    format!("{}/clusters/{name}", parent(location))
}

fn key(location: &str, name: &str) -> ClusterKey {
    ClusterKey {
        project: PROJECT.into(),
        location: location.into(),
        name: name.into(),
    }
}

fn pool(name: &str, nodes: i32, machine_type: &str) -> NodePool {
    NodePool::new()
        .set_name(name)
        .set_initial_node_count(nodes)
        .set_config(NodeConfig::new().set_machine_type(machine_type))
}

async fn create(client: &ClusterManager, location: &str, cluster: Cluster) -> Operation {
    client
        .create_cluster()
        .set_parent(parent(location))
        .set_cluster(cluster)
        .send()
        .await
        .expect("create cluster")
}

/// A kube client for a test cluster, from what GKE says about it plus a bearer token.
async fn kube_client(cluster: &Cluster, token: &str) -> Client {
    let ca = base64::engine::general_purpose::STANDARD
        .decode(
            &cluster
                .master_auth
                .as_ref()
                .expect("masterAuth")
                .cluster_ca_certificate,
        )
        .expect("CA is base64");
    let ca = String::from_utf8(ca).expect("CA is PEM");
    let kubeconfig = kubeconfig_for(
        &cluster.name,
        &format!("https://{}", cluster.endpoint),
        &ca,
        token,
    );
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("kube client")
}

/// The token the metadata server hands out, fetched as workloads on GCE fetch it.
async fn metadata_token(sim: &Simulator) -> String {
    google_cloud_auth::credentials::mds::Builder::default()
        .with_endpoint(format!("http://{}", sim.gke().metadata_host()))
        .build_access_token_credentials()
        .expect("metadata credentials")
        .access_token()
        .await
        .expect("metadata token")
        .token
}

/// A plain HTTP/1.1 GET, for what the official clients hide (headers, enum encoding).
async fn raw_get(host: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn error_reason(error: &google_cloud_container_v1::Error) -> Option<String> {
    error.status()?.details.iter().find_map(|d| match d {
        StatusDetails::ErrorInfo(info) => Some(info.reason.clone()),
        _ => None,
    })
}

#[tokio::test]
async fn create_resize_and_delete_a_cluster() {
    let (sim, client) = start().await;
    let op = create(
        &client,
        ZONE,
        Cluster::new().set_name("direct-1").set_node_pools([pool(
            "default-pool",
            3,
            "e2-standard-4",
        )]),
    )
    .await;
    assert_eq!(op.status, operation::Status::Running);
    assert_eq!(op.operation_type, operation::Type::CreateCluster);
    assert!(op.name.starts_with("operation-"), "{}", op.name);
    assert!(
        op.target_link
            .ends_with("/zones/us-central1-a/clusters/direct-1"),
        "{}",
        op.target_link
    );

    // While it is being created: PROVISIONING, a second create is refused, and so is a delete.
    let provisioning = client
        .get_cluster()
        .set_name(cluster_name(ZONE, "direct-1"))
        .send()
        .await
        .expect("get provisioning cluster");
    assert_eq!(provisioning.status, cluster::Status::Provisioning);
    let duplicate = client
        .create_cluster()
        .set_parent(parent(ZONE))
        .set_cluster(
            Cluster::new()
                .set_name("direct-1")
                .set_initial_node_count(1),
        )
        .send()
        .await;
    let error = duplicate.expect_err("duplicate create");
    assert_eq!(error.http_status_code(), Some(409));
    assert_eq!(error.status().map(|s| s.code), Some(Code::AlreadyExists));
    assert_eq!(error_reason(&error).as_deref(), Some("alreadyExists"));
    let busy = client
        .delete_cluster()
        .set_name(cluster_name(ZONE, "direct-1"))
        .send()
        .await
        .expect_err("delete during creation");
    assert_eq!(busy.http_status_code(), Some(400));
    assert_eq!(
        busy.status().map(|s| s.code),
        Some(Code::FailedPrecondition)
    );
    assert_eq!(
        busy.status().map(|s| s.message.clone()),
        Some(format!(
            "Operation {} is currently creating cluster direct-1. Please wait and try again once it is done.",
            op.name
        ))
    );

    let done = wait_done(&client, &parent(ZONE), &op).await;
    assert_eq!(done.error, None);
    assert_eq!(done.status_message, "");
    assert!(!done.end_time.is_empty());

    let running = client
        .get_cluster()
        .set_name(cluster_name(ZONE, "direct-1"))
        .send()
        .await
        .expect("get cluster");
    assert_eq!(running.status, cluster::Status::Running);
    assert_eq!(running.location, ZONE);
    assert_eq!(running.current_node_count, 3);
    assert_eq!(running.node_pools.len(), 1);
    assert_eq!(
        running.node_pools[0]
            .config
            .as_ref()
            .map(|c| c.machine_type.as_str()),
        Some("e2-standard-4")
    );
    assert!(
        running.endpoint.starts_with("127.0.0.1:"),
        "{}",
        running.endpoint
    );

    // The endpoint and CA GKE gives reach the test cluster, with a token from the metadata server.
    let token = metadata_token(&sim).await;
    let kube = kube_client(&running, &token).await;
    let nodes: Api<Node> = Api::all(kube.clone());
    let listed = nodes
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    assert_eq!(listed.items.len(), 3);
    let live = sim
        .inventory()
        .find_live(PROJECT, ZONE, "direct-1")
        .expect("in the inventory");
    assert_eq!(live.provider, Provider::GkeApi);
    assert_eq!(live.nodes, 3);

    // setSize grows the pool.
    let resize = client
        .set_node_pool_size()
        .set_name(format!(
            "{}/nodePools/default-pool",
            cluster_name(ZONE, "direct-1")
        ))
        .set_node_count(5)
        .send()
        .await
        .expect("set size");
    assert_eq!(resize.operation_type, operation::Type::SetNodePoolSize);
    assert_eq!(wait_done(&client, &parent(ZONE), &resize).await.error, None);
    let listed = nodes
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    assert_eq!(listed.items.len(), 5);

    // Listing with location `-` finds it.
    let all = client
        .list_clusters()
        .set_parent(parent("-"))
        .send()
        .await
        .expect("list clusters");
    let names: Vec<&str> = all.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["direct-1"]);

    // Without `$alt=json;enum-encoding=int`, enums are names, as gcloud sees them.
    let host = sim
        .gke()
        .endpoint()
        .trim_start_matches("http://")
        .to_owned();
    let path = format!("/v1/{}", cluster_name(ZONE, "direct-1"));
    let (status, _, body) = raw_get(&host, &path, &[]).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""status":"RUNNING""#), "{body}");
    let path = format!("{path}?%24alt=json%3Benum-encoding%3Dint");
    let (_, _, body) = raw_get(&host, &path, &[]).await;
    assert!(body.contains(r#""status":2"#), "{body}");

    // Delete: STOPPING, then gone from GKE and from the cloud.
    let delete = client
        .delete_cluster()
        .set_name(cluster_name(ZONE, "direct-1"))
        .send()
        .await
        .expect("delete cluster");
    assert_eq!(delete.operation_type, operation::Type::DeleteCluster);
    let stopping = client
        .get_cluster()
        .set_name(cluster_name(ZONE, "direct-1"))
        .send()
        .await
        .expect("get stopping cluster");
    assert_eq!(stopping.status, cluster::Status::Stopping);
    assert_eq!(wait_done(&client, &parent(ZONE), &delete).await.error, None);
    assert!(sim.inventory().live().is_empty());
    let recorded = sim.inventory().all();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].deleted.is_some());
    let gone = client
        .get_cluster()
        .set_name(cluster_name(ZONE, "direct-1"))
        .send()
        .await
        .expect_err("deleted cluster");
    assert_eq!(gone.http_status_code(), Some(404));
    assert!(sim.cloud().cluster(&key(ZONE, "direct-1")).is_none());
}

#[tokio::test]
async fn a_stockout_ends_the_operation_with_gkes_message() {
    let (sim, client) = start().await;
    sim.zone_faults().set_stockout("europe-west2-b", true);
    let op = create(
        &client,
        "europe-west2-b",
        Cluster::new().set_name("stocked-out").set_node_pools([pool(
            "default-pool",
            2,
            "n1-standard-4",
        )]),
    )
    .await;
    assert_eq!(op.status, operation::Status::Running);

    let done = wait_done(&client, &parent("europe-west2-b"), &op).await;
    let expected = CloudFailure::Stockout {
        zone: "europe-west2-b".into(),
    }
    .message();
    let error = done.error.as_ref().expect("operation error");
    assert_eq!(error.message, expected);
    assert_eq!(error.code, 8, "RESOURCE_EXHAUSTED");
    assert_eq!(done.status_message, expected);
    assert_eq!(done.cluster_conditions.len(), 1);
    assert_eq!(done.cluster_conditions[0].message, expected);

    let failed = client
        .get_cluster()
        .set_name(cluster_name("europe-west2-b", "stocked-out"))
        .send()
        .await
        .expect("the cluster stays, in ERROR");
    assert_eq!(failed.status, cluster::Status::Error);
    assert_eq!(failed.status_message, expected);
    assert!(
        sim.inventory().all().is_empty(),
        "no cloud cluster was made"
    );

    // The ERROR cluster can be deleted, as on GKE.
    let delete = client
        .delete_cluster()
        .set_name(cluster_name("europe-west2-b", "stocked-out"))
        .send()
        .await
        .expect("delete failed cluster");
    assert_eq!(
        wait_done(&client, &parent("europe-west2-b"), &delete)
            .await
            .error,
        None
    );
    let listed = client
        .list_clusters()
        .set_parent(parent("europe-west2-b"))
        .send()
        .await
        .expect("list");
    assert!(listed.clusters.is_empty());
}

#[tokio::test]
async fn quota_refuses_the_create_with_403() {
    let (sim, client) = start().await;
    sim.zone_faults().set_cpu_quota(ZONE, Some(24.0));
    let error = client
        .create_cluster()
        .set_parent(parent(ZONE))
        .set_cluster(Cluster::new().set_name("too-big").set_node_pools([pool(
            "default-pool",
            9,
            "n1-standard-8",
        )]))
        .send()
        .await
        .expect_err("over quota");
    assert_eq!(error.http_status_code(), Some(403));
    let status = error.status().expect("Google error envelope");
    assert_eq!(status.code, Code::PermissionDenied);
    let expected = CloudFailure::Quota {
        project: PROJECT.into(),
        requested: 72.0,
        available: 24.0,
    }
    .message();
    assert_eq!(status.message, expected);
    assert_eq!(error_reason(&error).as_deref(), Some("forbidden"));
    assert!(sim.inventory().all().is_empty());
}

#[tokio::test]
async fn a_missing_cluster_is_404() {
    let (_sim, client) = start().await;
    let error = client
        .get_cluster()
        .set_name(cluster_name(ZONE, "nope"))
        .send()
        .await
        .expect_err("missing cluster");
    assert_eq!(error.http_status_code(), Some(404));
    let status = error.status().expect("Google error envelope");
    assert_eq!(status.code, Code::NotFound);
    assert_eq!(
        status.message,
        format!("Not found: projects/{PROJECT}/zones/{ZONE}/clusters/nope.")
    );
    assert_eq!(error_reason(&error).as_deref(), Some("notFound"));

    let error = client
        .delete_cluster()
        .set_name(cluster_name("us-west2", "nope"))
        .send()
        .await
        .expect_err("missing cluster");
    assert_eq!(
        error.status().map(|s| s.message.clone()),
        Some(format!(
            "Not found: projects/{PROJECT}/locations/us-west2/clusters/nope."
        ))
    );
}

#[tokio::test]
async fn the_metadata_token_opens_test_clusters() {
    let (sim, _client) = start().await;
    let test_cluster = sim
        .cloud()
        .create_cluster(&key(ZONE, "by-token"), Provider::GkeApi)
        .await
        .expect("test cluster");
    let token = metadata_token(&sim).await;
    assert!(
        token.starts_with("ya29."),
        "looks like a Google access token"
    );

    let kubeconfig = kubeconfig_for(
        "by-token",
        &test_cluster.api().https_url(),
        test_cluster.api().ca_pem(),
        &token,
    );
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    let kube = Client::try_from(config).expect("kube client");
    let namespaces: Api<Namespace> = Api::all(kube);
    namespaces
        .list(&ListParams::default())
        .await
        .expect("the token is accepted over HTTPS");

    // The same token again until it nears expiry, as GCE does.
    assert_eq!(metadata_token(&sim).await, token);

    let host = sim.gke().metadata_host();
    let flavor = [("Metadata-Flavor", "Google")];
    let token_path = "/computeMetadata/v1/instance/service-accounts/default/token";
    let (status, head, body) = raw_get(&host, token_path, &flavor).await;
    assert_eq!(status, 200);
    assert!(head.contains("metadata-flavor: google"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("token JSON");
    assert_eq!(json["access_token"], token.as_str());
    assert_eq!(json["token_type"], "Bearer");
    assert!(
        json["expires_in"]
            .as_u64()
            .is_some_and(|s| s > 3000 && s <= 3599)
    );

    let (status, _, _) = raw_get(&host, token_path, &[]).await;
    assert_eq!(status, 403, "the Metadata-Flavor header is required");
    let (status, head, _) = raw_get(&host, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(head.contains("metadata-flavor: google"), "{head}");
    let (_, _, project) = raw_get(&host, "/computeMetadata/v1/project/project-id", &flavor).await;
    assert_eq!(project, "testcluster-sim");
    let (_, _, email) = raw_get(
        &host,
        "/computeMetadata/v1/instance/service-accounts/default/email",
        &flavor,
    )
    .await;
    assert!(
        email.ends_with("-compute@developer.gserviceaccount.com"),
        "{email}"
    );
}

#[tokio::test]
async fn node_pools_come_and_go_and_the_server_stops_when_dropped() {
    testcluster_testkit::init();
    let cloud = testcluster_sim::cloud::Cloud::default();
    let server = testcluster_sim::cloud::gke::GkeServer::start(cloud.clone(), Default::default())
        .await
        .expect("GKE server");
    let client = gke_client(server.endpoint()).await;
    let region = "europe-west4";
    let op = create(
        &client,
        region,
        Cluster::new()
            .set_name("pools")
            .set_node_pools([pool("system", 1, "e2-standard-2")]),
    )
    .await;
    assert_eq!(wait_done(&client, &parent(region), &op).await.error, None);

    let name = cluster_name(region, "pools");
    let op = client
        .create_node_pool()
        .set_parent(&name)
        .set_node_pool(pool("workers", 2, "n2-standard-8"))
        .send()
        .await
        .expect("create node pool");
    assert_eq!(op.operation_type, operation::Type::CreateNodePool);
    assert!(
        op.target_link
            .ends_with("/locations/europe-west4/clusters/pools/nodePools/workers"),
        "{}",
        op.target_link
    );
    assert_eq!(wait_done(&client, &parent(region), &op).await.error, None);
    let test_cluster = cloud.cluster(&key(region, "pools")).expect("test cluster");
    assert_eq!(test_cluster.list_nodes().await.expect("nodes").len(), 3);

    // The legacy zones form of the path reaches the same pool.
    let workers = client
        .get_node_pool()
        .set_project_id(PROJECT)
        .set_zone(region)
        .set_cluster_id("pools")
        .set_node_pool_id("workers")
        .send()
        .await
        .expect("get node pool by zone");
    assert_eq!(
        workers.status,
        google_cloud_container_v1::model::node_pool::Status::Running
    );
    assert_eq!(workers.initial_node_count, 2);

    let op = client
        .delete_node_pool()
        .set_name(format!("{name}/nodePools/workers"))
        .send()
        .await
        .expect("delete node pool");
    assert_eq!(wait_done(&client, &parent(region), &op).await.error, None);
    assert_eq!(test_cluster.list_nodes().await.expect("nodes").len(), 1);
    let pools = client
        .list_node_pools()
        .set_parent(&name)
        .send()
        .await
        .expect("list node pools");
    let names: Vec<&str> = pools.node_pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["system"]);
    let error = client
        .get_node_pool()
        .set_name(format!("{name}/nodePools/workers"))
        .send()
        .await
        .expect_err("deleted pool");
    assert_eq!(
        error.status().map(|s| s.message.clone()),
        Some(format!(
            "nodePool \"projects/{PROJECT}/locations/{region}/clusters/pools/nodePools/workers\" not found"
        ))
    );

    let host = server.endpoint().trim_start_matches("http://").to_owned();
    drop(server);
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(&host).await.is_ok() {
        assert!(Instant::now() < deadline, "still listening after drop");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
