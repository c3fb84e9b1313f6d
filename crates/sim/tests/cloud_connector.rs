//! The simulated Config Connector, driven as a service drives the real one: Config Connector
//! objects applied to the management cluster over HTTPS, waited on through watches, and the test
//! cluster they produce reached with the endpoint and CA from the ContainerCluster's status.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::cnrm::{WAIT, api, create, ready_condition, ready_says, up_to_date, wait_for};
use common::{
    Warning, assert_no_cloud_cluster, core_warnings, create_namespace, delete_and_wait_none_live,
    warnings,
};
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use testcluster_sim::cloud::ClusterKey;
use testcluster_sim::cloud::connector::ConnectorConfig;
use testcluster_sim::{SimConfig, Simulator};

const PROJECT: &str = "sim-project";

async fn start(cluster_create: Duration) -> (Simulator, Client) {
    let sim = Simulator::start(SimConfig {
        connector: ConnectorConfig {
            cluster_create,
            node_pool_create: Duration::from_millis(100),
            other_create: Duration::from_millis(20),
            delete: Duration::from_millis(20),
            max_retry_backoff: Duration::from_millis(500),
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let client = sim.api().client().await.expect("HTTPS client");
    (sim, client)
}

fn cluster(name: &str, location: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["location"] = json!(location);
    json!({
        "apiVersion": "container.cnrm.cloud.google.com/v1beta1",
        "kind": "ContainerCluster",
        "metadata": {
            "name": name,
            "annotations": {
                "cnrm.cloud.google.com/project-id": PROJECT,
                "cnrm.cloud.google.com/remove-default-node-pool": "true",
            },
        },
        "spec": spec,
    })
}

/// Runs `kubectl` (from `KUBECTL`, else the PATH) and returns its stdout.
fn kubectl(args: &[&str]) -> String {
    let binary = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let output = std::process::Command::new(&binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubectl ({binary}): {e}; install kubectl or set KUBECTL to its path")
        });
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn cluster_set_becomes_ready_in_dependency_order_serves_kubectl_and_is_torn_down() {
    // A slow cluster create leaves the node pool visibly waiting on it.
    let (sim, client) = start(Duration::from_secs(1)).await;
    let ns = "cc-lifecycle";
    create_namespace(&client, ns).await;

    create(
        &client,
        ns,
        json!({
            "apiVersion": "compute.cnrm.cloud.google.com/v1beta1",
            "kind": "ComputeNetwork",
            "metadata": {"name": "net"},
            "spec": {"routingMode": "REGIONAL", "autoCreateSubnetworks": false},
        }),
    )
    .await;
    create(
        &client,
        ns,
        json!({
            "apiVersion": "compute.cnrm.cloud.google.com/v1beta1",
            "kind": "ComputeSubnetwork",
            "metadata": {"name": "subnet"},
            "spec": {"ipCidrRange": "10.2.0.0/16", "region": "europe-west2", "networkRef": {"name": "net"}},
        }),
    )
    .await;
    create(
        &client,
        ns,
        json!({
            "apiVersion": "iam.cnrm.cloud.google.com/v1beta1",
            "kind": "IAMServiceAccount",
            "metadata": {"name": "runner", "annotations": {"cnrm.cloud.google.com/project-id": PROJECT}},
            "spec": {"displayName": "test runner"},
        }),
    )
    .await;
    create(
        &client,
        ns,
        json!({
            "apiVersion": "iam.cnrm.cloud.google.com/v1beta1",
            "kind": "IAMPolicyMember",
            "metadata": {"name": "runner-admin"},
            "spec": {
                "memberFrom": {"serviceAccountRef": {"name": "runner"}},
                "role": "roles/container.admin",
                "resourceRef": {"kind": "Project", "external": format!("projects/{PROJECT}")},
            },
        }),
    )
    .await;
    create(
        &client,
        ns,
        json!({
            "apiVersion": "iam.cnrm.cloud.google.com/v1beta1",
            "kind": "IAMServiceAccountKey",
            "metadata": {"name": "runner-key", "annotations": {"cnrm.cloud.google.com/project-id": PROJECT}},
            "spec": {"publicKeyType": "TYPE_X509_PEM_FILE", "keyAlgorithm": "KEY_ALG_RSA_2048",
                     "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE", "serviceAccountRef": {"name": "runner"}},
        }),
    )
    .await;
    // The pool first: it must wait for a cluster that does not exist yet.
    create(
        &client,
        ns,
        json!({
            "apiVersion": "container.cnrm.cloud.google.com/v1beta1",
            "kind": "ContainerNodePool",
            "metadata": {"name": "pool", "annotations": {"cnrm.cloud.google.com/project-id": PROJECT}},
            "spec": {
                "location": "europe-west2-b",
                "nodeCount": 3,
                "nodeConfig": {"machineType": "e2-standard-4"},
                "clusterRef": {"name": "tc"},
            },
        }),
    )
    .await;
    let pools = api(&client, ns, "container", "ContainerNodePool");
    let clusters = api(&client, ns, "container", "ContainerCluster");
    wait_for(
        &pools,
        "pool",
        ready_says(
            "DependencyNotFound",
            format!("reference ContainerCluster {ns}/tc is not found"),
        ),
        "DependencyNotFound",
    )
    .await;

    let not_ready = tokio::spawn({
        let pools = pools.clone();
        let message = format!("reference ContainerCluster {ns}/tc is not ready");
        async move {
            wait_for(
                &pools,
                "pool",
                ready_says("DependencyNotReady", message),
                "DependencyNotReady",
            )
            .await
        }
    });
    create(
        &client,
        ns,
        cluster(
            "tc",
            "europe-west2-b",
            json!({
                "initialNodeCount": 1,
                "networkRef": {"name": "net"},
                "subnetworkRef": {"name": "subnet"},
            }),
        ),
    )
    .await;
    let waiting = not_ready.await.expect("waiter");
    assert_eq!(ready_condition(&waiting).expect("Ready")["status"], "False");
    // While the pool waits, its cluster is not ready yet.
    let cluster_then = clusters.get("tc").await.expect("cluster");
    assert_ne!(
        ready_condition(&cluster_then).map(|c| c["status"].clone()),
        Some(json!("True"))
    );

    let cluster = wait_for(&clusters, "tc", up_to_date(), "cluster UpToDate").await;
    let pool = wait_for(&pools, "pool", up_to_date(), "pool UpToDate").await;
    assert_eq!(ready_condition(&pool).expect("Ready")["status"], "True");
    for object in [&cluster, &pool] {
        assert_eq!(
            object.finalizers(),
            [
                "cnrm.cloud.google.com/finalizer",
                "cnrm.cloud.google.com/deletion-defender"
            ]
        );
    }
    let sa = wait_for(
        &api(&client, ns, "iam", "IAMServiceAccount"),
        "runner",
        up_to_date(),
        "service account UpToDate",
    )
    .await;
    assert_eq!(
        sa.data["status"]["email"],
        format!("runner@{PROJECT}.iam.gserviceaccount.com")
    );
    wait_for(
        &api(&client, ns, "iam", "IAMPolicyMember"),
        "runner-admin",
        up_to_date(),
        "policy member UpToDate",
    )
    .await;
    let key = wait_for(
        &api(&client, ns, "iam", "IAMServiceAccountKey"),
        "runner-key",
        up_to_date(),
        "key UpToDate",
    )
    .await;
    assert!(key.data["status"]["privateKey"].is_string());
    for (kind, name) in [("ComputeNetwork", "net"), ("ComputeSubnetwork", "subnet")] {
        wait_for(
            &api(&client, ns, "compute", kind),
            name,
            up_to_date(),
            "UpToDate",
        )
        .await;
    }

    // The inventory holds one cluster with the pool's three nodes (the default pool is removed).
    let live = sim.inventory().live();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        (
            live[0].project.as_str(),
            live[0].name.as_str(),
            live[0].nodes
        ),
        (PROJECT, "tc", 3)
    );

    // Reach the test cluster only through what the ContainerCluster's status says.
    let endpoint = cluster.data["status"]["endpoint"]
        .as_str()
        .expect("status.endpoint");
    let ca = cluster.data["status"]["observedState"]["masterAuth"]["clusterCaCertificate"]
        .as_str()
        .expect("clusterCaCertificate");
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca)
        .expect("CA is base64");
    assert!(String::from_utf8_lossy(&ca_pem).contains("BEGIN CERTIFICATE"));
    let token = sim.cloud().issue_identity_token();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: tc\n  cluster:\n    server: https://{endpoint}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: tc\n  user:\n    token: {token}\ncontexts:\n- name: tc\n  \
         context:\n    cluster: tc\n    user: tc\ncurrent-context: tc\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, &kubeconfig).expect("kubeconfig written");
    let path = path.to_str().expect("utf-8 path").to_owned();
    let nodes = tokio::task::spawn_blocking(move || {
        kubectl(&["--kubeconfig", &path, "get", "nodes", "-o", "name"])
    })
    .await
    .expect("kubectl ran");
    let nodes: Vec<&str> = nodes.lines().collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(
        nodes.iter().all(|n| n.starts_with("node/gke-tc-pool-")),
        "{nodes:?}"
    );

    let config = kube::Config::from_custom_kubeconfig(
        yaml_serde::from_str(&kubeconfig).expect("kubeconfig parses"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("kube config");
    let test_cluster = Client::try_from(config).expect("client");
    let listed = Api::<Node>::all(test_cluster.clone())
        .list(&ListParams::default())
        .await
        .expect("nodes listed");
    assert_eq!(listed.items.len(), 3);
    assert!(listed.items.iter().all(|n| {
        n.labels()
            .get("cloud.google.com/gke-nodepool")
            .map(String::as_str)
            == Some("pool")
    }));

    // A new nodeCount resizes the pool in place.
    let before = pool.metadata.generation.expect("generation");
    pools
        .patch(
            "pool",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"nodeCount": 4}})),
        )
        .await
        .expect("pool patched");
    let resized = wait_for(&pools, "pool", up_to_date(), "pool resized").await;
    assert_eq!(resized.metadata.generation, Some(before + 1));
    assert_eq!(
        sim.inventory()
            .find_live(PROJECT, "europe-west2-b", "tc")
            .map(|c| c.nodes),
        Some(4)
    );
    assert_eq!(
        Api::<Node>::all(test_cluster)
            .list(&ListParams::default())
            .await
            .expect("nodes listed")
            .items
            .len(),
        4
    );

    // Deleting the set deletes the cloud cluster and lets every object go.
    let everything = [
        ("container", "ContainerNodePool", "pool"),
        ("container", "ContainerCluster", "tc"),
        ("iam", "IAMServiceAccountKey", "runner-key"),
        ("iam", "IAMPolicyMember", "runner-admin"),
        ("iam", "IAMServiceAccount", "runner"),
        ("compute", "ComputeSubnetwork", "subnet"),
        ("compute", "ComputeNetwork", "net"),
    ];
    let mut uids = Vec::new();
    for (group, kind, name) in everything {
        let objects = api(&client, ns, group, kind);
        let uid = objects.get(name).await.expect("exists").uid().expect("uid");
        objects
            .delete(name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("deleting {kind} {name}: {e}"));
        uids.push((objects, name, uid));
    }
    sim.inventory()
        .wait_until_none_live(WAIT)
        .await
        .unwrap_or_else(|live| panic!("clusters still live: {live:?}"));
    for (objects, name, uid) in uids {
        tokio::time::timeout(
            WAIT,
            await_condition(objects, name, conditions::is_deleted(&uid)),
        )
        .await
        .unwrap_or_else(|_| panic!("{name} was not deleted"))
        .expect("watch");
    }
    let all = sim.inventory().all();
    assert_eq!(all.len(), 1);
    assert!(all[0].deleted.is_some());
    assert!(
        sim.cloud()
            .cluster(&ClusterKey {
                project: PROJECT.into(),
                location: "europe-west2-b".into(),
                name: "tc".into(),
            })
            .is_none()
    );
}

#[tokio::test]
async fn stockout_fails_with_config_connectors_text_until_the_zone_recovers() {
    let (sim, client) = start(Duration::from_millis(100)).await;
    let ns = "cc-stockout";
    create_namespace(&client, ns).await;
    sim.zone_faults().set_stockout("europe-west2-b", true);
    create(
        &client,
        ns,
        cluster(
            "stocked-out",
            "europe-west2-b",
            json!({"initialNodeCount": 1}),
        ),
    )
    .await;
    let clusters = api(&client, ns, "container", "ContainerCluster");
    let failed = wait_for(
        &clusters,
        "stocked-out",
        ready_says(
            "UpdateFailed",
            "Update call failed: error applying desired state: summary: Error waiting for creating \
             GKE cluster: Try a different location, or try again later: Google Compute Engine does \
             not have enough resources available to fulfill request: europe-west2-b., detail: "
                .to_owned(),
        ),
        "stockout UpdateFailed",
    )
    .await;
    assert_eq!(ready_condition(&failed).expect("Ready")["status"], "False");
    assert_no_cloud_cluster(&sim);

    let update_failed = |w: &Warning| {
        w.reason == "UpdateFailed"
            && w.controller == "containercluster-controller"
            && w.object == "stocked-out"
            && w.note.contains("does not have enough resources")
    };
    assert!(
        warnings(&client, ns).await.iter().any(update_failed),
        "no Warning UpdateFailed event"
    );
    // `kubectl describe` reads core v1 Events: the same Event must be there too.
    assert!(
        core_warnings(&client, ns).await.iter().any(update_failed),
        "no core v1 Warning UpdateFailed event"
    );

    sim.zone_faults().set_stockout("europe-west2-b", false);
    let ready = wait_for(
        &clusters,
        "stocked-out",
        up_to_date(),
        "UpToDate after the stockout",
    )
    .await;
    assert!(ready.data["status"]["endpoint"].is_string());
    assert!(
        sim.inventory()
            .find_live(PROJECT, "europe-west2-b", "stocked-out")
            .is_some()
    );

    delete_and_wait_none_live(&sim, &clusters, "stocked-out").await;
}

#[tokio::test]
async fn quota_shortage_fails_with_the_403_text() {
    let (sim, client) = start(Duration::from_millis(100)).await;
    let ns = "cc-quota";
    create_namespace(&client, ns).await;
    sim.zone_faults().set_cpu_quota("us-central1-a", Some(4.0));
    create(
        &client,
        ns,
        cluster(
            "too-big",
            "us-central1-a",
            json!({"initialNodeCount": 3, "nodeConfig": {"machineType": "n1-standard-4"}}),
        ),
    )
    .await;
    let clusters = api(&client, ns, "container", "ContainerCluster");
    wait_for(
        &clusters,
        "too-big",
        ready_says(
            "UpdateFailed",
            format!(
                "Update call failed: error applying desired state: summary: googleapi: Error 403: \
                 Insufficient regional quota to satisfy request: resource \"CPUS\": request requires \
                 '12.0' and is short '8.0'. project has a quota of '4.0' with '4.0' available. View \
                 and manage quotas at \
                 https://console.cloud.google.com/iam-admin/quotas?usage=USED&project={PROJECT}., \
                 forbidden, detail: "
            ),
        ),
        "quota UpdateFailed",
    )
    .await;
    assert_no_cloud_cluster(&sim);

    sim.zone_faults().set_cpu_quota("us-central1-a", None);
    wait_for(
        &clusters,
        "too-big",
        up_to_date(),
        "UpToDate once quota is raised",
    )
    .await;
    delete_and_wait_none_live(&sim, &clusters, "too-big").await;
}
