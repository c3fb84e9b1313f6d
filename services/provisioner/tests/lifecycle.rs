//! The provisioner against a simulated management cluster over real HTTPS: a `TestClusterGKE`
//! created with a plain Kubernetes client, as kubectl would, goes through its whole lifecycle.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Node, SecretKeySelector};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, ResourceExt as _};
use serde_json::json;
use testcluster_api::internal::v1::GetClusterAccessRequest;
use testcluster_api::internal::v1::provisioner_service_client::ProvisionerServiceClient;
use testcluster_resources::Phase;

const KIND_KEYS: [&str; 6] = [
    "ComputeNetwork",
    "ComputeSubnetwork",
    "ContainerCluster",
    "ContainerNodePool",
    "IAMPolicyMember",
    "IAMServiceAccount",
];

fn is_cluster_name(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|suffix| {
            suffix.len() == 5
                && suffix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

#[tokio::test]
async fn seed_example_goes_pending_provisioning_ready() {
    let ns = "test-clusters";
    let (env, api) = Env::in_namespace(Duration::from_millis(300), ns).await;
    let provisioner = env.provisioner().await;

    // Record every phase the object goes through, from a watch started before it exists.
    let (phases_tx, mut phases_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watch_api = api.clone();
    tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        let stream = watcher(
            watch_api,
            watcher::Config::default().fields("metadata.name=testme-1"),
        );
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Apply(tc) | watcher::Event::InitApply(tc)) => {
                    if let Some(phase) = tc.status.and_then(|s| s.phase) {
                        let _ = phases_tx.send(phase);
                    }
                }
                _ => {}
            }
        }
    });
    within("phase watch ready", ready_rx)
        .await
        .expect("watch started");

    create(&api, &seed_example(ns, "testme-1", 2)).await;
    let ready = wait_for(&api, "testme-1", "phase Ready", phase_is(Phase::Ready)).await;

    let mut seen: Vec<Phase> = Vec::new();
    while let Ok(phase) = phases_rx.try_recv() {
        if seen.last() != Some(&phase) {
            seen.push(phase);
        }
    }
    assert_eq!(seen, [Phase::Pending, Phase::Provisioning, Phase::Ready]);

    let status = ready.status.clone().expect("status");
    let cluster_name = status.cluster_name.clone().expect("clusterName");
    assert!(is_cluster_name(&cluster_name, "testme-1"), "{cluster_name}");
    assert_eq!(status.location.as_deref(), Some("europe-west2-b"));
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert!(
        ready
            .finalizers()
            .iter()
            .any(|f| f == "clusters.ci.cilium.io/provisioner")
    );

    let mut expected_keys: Vec<String> = KIND_KEYS
        .iter()
        .map(|kind| format!("{kind}:{ns}/{cluster_name}"))
        .collect();
    expected_keys.sort();
    let keys: Vec<String> = status.dependency_conditions.keys().cloned().collect();
    assert_eq!(keys, expected_keys);
    for (key, conditions) in &status.dependency_conditions {
        let ready = ready_in(conditions).unwrap_or_else(|| panic!("{key} has no Ready condition"));
        assert_eq!(
            says(ready),
            ("True", "UpToDate", "The resource is up to date"),
            "{key}"
        );
    }
    let condition = ready_condition(&status);
    assert_eq!(
        says(condition),
        (
            "True",
            "AllDependenciesReady",
            "All 6 dependencies are ready"
        )
    );
    assert!(condition.last_transition_time.is_some());
    let times = status.phase_timestamps.expect("phaseTimestamps");
    assert!(
        times.pending_time.is_some()
            && times.provisioning_time.is_some()
            && times.ready_time.is_some()
    );

    // The objects are the CR's, named after the cluster, and exactly one cloud cluster exists.
    let objects = env.config_connector_objects(ns).await;
    assert_eq!(objects.len(), 6);
    for (kind, object) in &objects {
        assert_eq!(name_of(object), cluster_name, "{kind}");
        let owner = &object.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("TestClusterGKE", "testme-1")
        );
        assert_eq!(owner.controller, Some(true));
    }
    let live = env.sim.inventory().live();
    assert_eq!(live.len(), 1);
    assert_eq!(
        (
            live[0].project.as_str(),
            live[0].location.as_str(),
            live[0].name.as_str(),
            live[0].nodes
        ),
        ("cilium-ci", "europe-west2-b", cluster_name.as_str(), 2)
    );
    wait_for_event(&env.client, ns, "testme-1", "Ready").await;
    provisioner.stop().await;

    // The load is bounded: each object applied once, a handful of status writes, no write loop.
    let counters = env.sim.api().counters();
    for kind in testcluster_provisioner::template::OWNED_KINDS {
        assert_eq!(counters.get("apply", kind.plural), 1, "{}", kind.kind);
    }
    let status_writes = counters.get("apply", "testclustersgke/status");
    assert!(
        (3..=12).contains(&status_writes),
        "{status_writes} status writes"
    );
}

async fn kube_client_from(kubeconfig_yaml: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig_yaml).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn cluster_access_reaches_that_cluster_only() {
    let ns = "access";
    let (env, api) = Env::in_namespace(Duration::from_millis(200), ns).await;
    let provisioner = env.provisioner().await;
    create(&api, &seed_example(ns, "three", 3)).await;
    create(&api, &seed_example(ns, "other", 1)).await;
    let mut grpc = ProvisionerServiceClient::connect(provisioner.grpc_endpoint())
        .await
        .expect("gRPC connects");

    // Not there, then not ready: refused with the codes a caller can act on.
    let missing = grpc
        .get_cluster_access(GetClusterAccessRequest {
            namespace: ns.into(),
            name: "nope".into(),
        })
        .await
        .expect_err("no such cluster");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let invalid = grpc
        .get_cluster_access(GetClusterAccessRequest::default())
        .await
        .expect_err("empty request");
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
    let fields: Vec<String> = testcluster_api::errors::field_violations(&invalid)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["namespace", "name"]);

    wait_for(&api, "three", "three Ready", phase_is(Phase::Ready)).await;
    wait_for(&api, "other", "other Ready", phase_is(Phase::Ready)).await;
    let access = grpc
        .get_cluster_access(GetClusterAccessRequest {
            namespace: ns.into(),
            name: "three".into(),
        })
        .await
        .expect("access to three")
        .into_inner();
    assert!(
        is_cluster_name(&access.cluster_name, "three"),
        "{}",
        access.cluster_name
    );
    assert_eq!(access.location, "europe-west2-b");
    assert!(access.expire_time.is_some());
    assert!(access.endpoint.starts_with("https://"));

    let nodes: Api<Node> = Api::all(kube_client_from(&access.kubeconfig).await);
    let listed = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes of three");
    assert_eq!(listed.items.len(), 3);

    // The same token against the other test cluster is refused.
    let other = grpc
        .get_cluster_access(GetClusterAccessRequest {
            namespace: ns.into(),
            name: "other".into(),
        })
        .await
        .expect("access to other")
        .into_inner();
    let other_nodes: Api<Node> = Api::all(kube_client_from(&other.kubeconfig).await);
    assert_eq!(
        other_nodes
            .list(&ListParams::default())
            .await
            .expect("nodes of other")
            .items
            .len(),
        1
    );
    let crossed = other.kubeconfig.replace(&other.token, &access.token);
    assert_ne!(crossed, other.kubeconfig);
    let crossed: Api<Node> = Api::all(kube_client_from(&crossed).await);
    match crossed.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("three's token must not open other: {other:?}"),
    }
    provisioner.stop().await;
}

#[tokio::test]
async fn terminal_phase_tears_the_cloud_cluster_down_and_keeps_the_record() {
    let ns = "terminal";
    let (env, api) = Env::in_namespace(Duration::from_millis(200), ns).await;
    let provisioner = env.provisioner().await;
    let cluster_name = create_ready(&api, ns, "done", 2).await;

    // The runner reports the end of the run with its own field manager.
    report_runner_status(
        &api,
        "done",
        json!({"phase": "Succeeded", "job": {"exitCode": 0}}),
        "runner's status",
    )
    .await;

    env.wait_torn_down(ns, &cluster_name).await;
    let status = wait_status(&api, "done", "teardown recorded", |s| {
        s.dependency_conditions.is_empty()
            && s.conditions
                .iter()
                .any(|c| c.reason == "DependenciesDeleted")
    })
    .await;
    assert_eq!(
        status.phase,
        Some(Phase::Succeeded),
        "the runner's phase stays"
    );
    assert_eq!(status.job.and_then(|j| j.exit_code), Some(0));
    assert_eq!(status.cluster_name.as_deref(), Some(cluster_name.as_str()));
    assert!(env.config_connector_objects(ns).await.is_empty());
    provisioner.stop().await;
}

#[tokio::test]
async fn deleting_the_object_removes_everything_then_the_object() {
    let ns = "deletion";
    let (env, api) = Env::in_namespace(Duration::from_millis(200), ns).await;
    let provisioner = env.provisioner().await;
    let cluster_name = create_ready(&api, ns, "gone", 1).await;

    delete_and_wait_gone(&api, "gone", "the object is gone").await;
    // The finalizer went last: nothing was left behind.
    assert!(env.config_connector_objects(ns).await.is_empty());
    assert_eq!(env.sim.inventory().live(), []);
    let all = env.sim.inventory().all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, cluster_name);
    provisioner.stop().await;
}

#[tokio::test]
async fn an_invalid_spec_applied_with_kubectl_is_refused_without_creating_anything() {
    let ns = "invalid";
    let (env, api) = Env::in_namespace(Duration::from_millis(200), ns).await;
    let provisioner = env.provisioner().await;
    let mut tc = seed_example(ns, "bad", 0);
    runner_of(&mut tc).image = None;
    create(&api, &tc).await;

    let message = "spec.nodes: must be at least 1, got 0; spec.jobSpec.runner.image: a command needs an image to run in";
    let status = wait_refused(&api, "bad", message).await;
    assert_eq!(
        status.cluster_name, None,
        "no cluster name, nothing to create"
    );
    let event = wait_for_warning(&env.client, ns, "bad", "InvalidSpec").await;
    assert_eq!(event.note.as_deref(), Some(message));
    env.assert_nothing_created(ns).await;

    // It can still be deleted: the finalizer does not hold an object that never had a cluster.
    delete_and_wait_gone(&api, "bad", "the refused object is gone").await;
    provisioner.stop().await;
}

/// A job may not read another run's cluster credentials: an object created with kubectl whose
/// env reads a Secret (here another run's kubeconfig) is refused, naming the field in the
/// object's own camelCase path.
#[tokio::test]
async fn a_kubectl_object_reading_a_secret_is_refused() {
    let ns = "secret-ref";
    let (env, api) = Env::in_namespace(Duration::from_millis(200), ns).await;
    let provisioner = env.provisioner().await;
    let mut tc = seed_example(ns, "thief", 1);
    runner_of(&mut tc).env = vec![EnvVar {
        name: "STOLEN".into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: "victim-kubeconfig".into(),
                key: "kubeconfig".into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
    }];
    create(&api, &tc).await;

    let message = "spec.jobSpec.runner.env[0].valueFrom.secretKeyRef: a job may not read Secrets: \
                   the namespace's Secrets include every run's cluster credentials. The job's \
                   own test cluster is reachable through $KUBECONFIG; pass other values with \
                   value, or in the run's ConfigMap";
    let status = wait_refused(&api, "thief", message).await;
    assert_eq!(status.cluster_name, None, "refused before anything exists");
    wait_for_warning(&env.client, ns, "thief", "InvalidSpec").await;
    env.assert_nothing_created(ns).await;
    provisioner.stop().await;
}

#[tokio::test]
async fn a_killed_provisioner_restarts_without_a_second_cloud_cluster() {
    // A slow cluster create leaves time to kill the provisioner while it waits for the cluster.
    let ns = "restart";
    let (env, api) = Env::in_namespace(Duration::from_secs(2), ns).await;
    let first = env.provisioner().await;
    create(&api, &seed_example(ns, "phoenix", 2)).await;
    let cluster_name = cluster_name_of(
        wait_for(
            &api,
            "phoenix",
            "Provisioning",
            phase_is(Phase::Provisioning),
        )
        .await,
    );
    first.kill().await;

    let second = env.provisioner().await;
    let ready = wait_for(
        &api,
        "phoenix",
        "Ready after restart",
        phase_is(Phase::Ready),
    )
    .await;
    assert_eq!(
        cluster_name_of(ready),
        cluster_name,
        "the restarted provisioner kept the name"
    );
    let all = env.sim.inventory().all();
    assert_eq!(all.len(), 1, "exactly one cloud cluster: {all:?}");
    assert_eq!(all[0].name, cluster_name);
    assert_eq!(env.config_connector_objects(ns).await.len(), 6);

    // And the run completes: the end of the run tears it down.
    report_runner_status(
        &api,
        "phoenix",
        json!({"phase": "Failed"}),
        "runner's status",
    )
    .await;
    env.wait_no_live_cloud_cluster().await;
    second.stop().await;
}

#[tokio::test]
async fn a_stale_running_phase_after_the_run_never_recreates_cloud_resources() {
    let ns = "stale";
    let (env, api) = Env::in_namespace(Duration::from_millis(100), ns).await;
    let provisioner = env.provisioner().await;
    let cluster_name = create_ready(&api, ns, "over", 1).await;
    let runner_status = |phase: &str| {
        json!({
            "phase": phase,
            "job": {"name": "over-runner"},
            "phaseTimestamps": {"runningTime": "2025-01-01T00:00:00Z"},
        })
    };
    report_runner_status(&api, "over", runner_status("Running"), "Running").await;
    report_runner_status(&api, "over", runner_status("Succeeded"), "Succeeded").await;
    env.wait_config_connector_gone(ns, &cluster_name).await;
    wait_status(&api, "over", "teardown recorded", |s| {
        s.conditions
            .iter()
            .any(|c| c.reason == "DependenciesDeleted")
    })
    .await;

    // A runner acting on an old read moves the phase back to Running: the run has started (and
    // ended), so nothing is created again.
    report_runner_status(&api, "over", runner_status("Running"), "stale Running").await;
    // The provisioner's reconcile of that write shows in the Ready condition (nothing is ready);
    // objects it created would exist before that status write.
    wait_status(&api, "over", "the provisioner saw the stale phase", |s| {
        s.phase == Some(Phase::Running)
            && s.conditions
                .iter()
                .any(|c| c.reason == "DependenciesNotReady")
    })
    .await;
    assert!(env.config_connector_objects(ns).await.is_empty());
    assert_eq!(env.sim.inventory().live(), []);
    assert_eq!(env.sim.inventory().all().len(), 1);
    provisioner.stop().await;
}
