//! `tcctl run`'s following against the whole suite: a cluster without a job is left Ready (and
//! `run` returns then), and a broker restarted mid-run does not end the run for the CI job.

use std::time::Duration;

use clap::Parser as _;
use tcctl::args::Cli;
use tcctl::suite::Component;
use testcluster_api::v1 as api;

use crate::support::{
    NAMESPACE, TIMEOUT, job_request, phase_of, start, start_with_cluster_create, until_phase,
};

#[tokio::test]
async fn run_without_a_job_returns_once_ready_and_leaves_the_cluster() {
    let env = start().await;
    let endpoint = env.suite.broker_endpoint();
    // No --namespace: the broker's default, as for every other command.
    let cli = Cli::try_parse_from([
        "tcctl",
        "--endpoint",
        &endpoint,
        "--token",
        env.suite.token(),
        "run",
        "--name",
        "idle",
        "--nodes",
        "1",
    ])
    .expect("arguments");
    let code = tokio::time::timeout(TIMEOUT, tcctl::commands::execute(cli))
        .await
        .expect("run returns once the cluster is Ready");
    assert_eq!(code, 0);

    let cluster = env
        .broker()
        .get_test_cluster(api::GetTestClusterRequest {
            namespace: String::new(),
            name: "idle".to_owned(),
        })
        .await
        .expect("still there")
        .into_inner()
        .test_cluster
        .expect("test cluster");
    assert_eq!(cluster.namespace, NAMESPACE);
    assert_eq!(phase_of(&cluster), api::Phase::Ready);
}

#[tokio::test]
async fn following_survives_a_broker_restart() {
    // A slow cloud, so that the broker restarts while the cluster is being created.
    let mut env = start_with_cluster_create(Duration::from_secs(2)).await;
    let created = env
        .create(job_request("resumed", 1, &["sh", "-c", "echo survived"]))
        .await;
    let bearer = testcluster_auth::client::Bearer::new(Some(env.suite.token())).expect("token");
    let channel = tcctl::follow::connect(&env.suite.broker_endpoint(), bearer)
        .await
        .expect("connect");
    let mut watch = env.watch(&created.name, &created.resource_version).await;
    let followed = tokio::spawn(async move { tcctl::follow::follow(channel, &created).await });

    // The broker goes away while the cluster is being created.
    until_phase(&mut watch, api::Phase::Provisioning).await;
    drop(watch);
    // A graceful stop (as a rolling update does) ends the watch with UNAVAILABLE at once; tcctl
    // resumes it from the last version it saw once the broker is back.
    env.suite.stop(Component::Broker).await;
    // Not a wait for anything: the broker stays down for a while, as during a rollout, so that
    // tcctl's first attempt to resume finds it gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.suite
        .start_component(Component::Broker)
        .await
        .expect("broker restarts");

    let outcome = tokio::time::timeout(TIMEOUT, followed)
        .await
        .expect("the run finishes")
        .expect("task")
        .expect("followed to the end");
    assert_eq!(outcome.phase(), api::Phase::Succeeded);
    assert_eq!(outcome.exit_code(), 0);
}
