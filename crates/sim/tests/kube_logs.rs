//! kube-rs conformance: `pods/log` on the simulator (the kubelet runs containers as local processes):
//! follow streams lines live; tailLines, timestamps, previous and container behave as Kubernetes'.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};
use kube::runtime::wait::Condition;
use serde_json::json;
use testcluster_sim::{SimConfig, Simulator};

fn phase_in(phases: &'static [&'static str]) -> impl Condition<Pod> {
    move |pod: Option<&Pod>| {
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phases.contains(&phase))
    }
}

#[tokio::test]
async fn pod_logs_follow_live_and_honour_their_parameters() {
    init();
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let client = sim.api().client().await.expect("client");
    create_namespace(&client, "logs").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "logs");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "talker"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "app", "image": "busybox:1.36", "command": ["sh", "-c", "echo one; sleep 0.5; echo two"]}],
        },
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    wait_for(&pods, "talker", phase_in(&["Running", "Succeeded"])).await;

    // Follow: lines arrive as the container writes them, and the stream ends when it exits.
    let follow = LogParams {
        follow: true,
        ..LogParams::default()
    };
    let mut lines = pods
        .log_stream("talker", &follow)
        .await
        .expect("log stream")
        .lines();
    let first = within("the first line", lines.try_next())
        .await
        .expect("read")
        .expect("a line");
    let first_at = Instant::now();
    let second = within("the second line", lines.try_next())
        .await
        .expect("read")
        .expect("a line");
    let gap = first_at.elapsed();
    assert_eq!((first.as_str(), second.as_str()), ("one", "two"));
    assert!(
        gap >= Duration::from_millis(200),
        "the second line came {gap:?} after the first: not live"
    );
    assert_eq!(
        within("the stream to end", lines.try_next())
            .await
            .expect("read"),
        None
    );
    wait_for(&pods, "talker", phase_in(&["Succeeded"])).await;

    // The whole log, its tail, and timestamps.
    assert_eq!(
        pods.logs("talker", &LogParams::default())
            .await
            .expect("log"),
        "one\ntwo\n"
    );
    let tail = LogParams {
        tail_lines: Some(1),
        ..LogParams::default()
    };
    assert_eq!(pods.logs("talker", &tail).await.expect("tail"), "two\n");
    let stamped = pods
        .logs(
            "talker",
            &LogParams {
                timestamps: true,
                ..LogParams::default()
            },
        )
        .await
        .expect("timestamps");
    let stamped: Vec<(String, String)> = stamped
        .lines()
        .map(|line| {
            let (stamp, text) = line.split_once(' ').expect("timestamp, space, text");
            (stamp.to_owned(), text.to_owned())
        })
        .collect();
    assert_eq!(
        stamped.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    let times: Vec<chrono::DateTime<chrono::Utc>> = stamped
        .iter()
        .map(|(stamp, _)| {
            assert!(stamp.ends_with('Z'), "{stamp}");
            chrono::DateTime::parse_from_rfc3339(stamp)
                .expect("RFC 3339")
                .to_utc()
        })
        .collect();
    assert!(times[1] - times[0] >= chrono::Duration::milliseconds(400));
    // The named container is the default one.
    assert_eq!(
        pods.logs(
            "talker",
            &LogParams {
                container: Some("app".into()),
                ..LogParams::default()
            }
        )
        .await
        .expect("container log"),
        "one\ntwo\n"
    );

    // Errors, as the kubelet and API server word them.
    assert_status(
        pods.logs(
            "talker",
            &LogParams {
                previous: true,
                ..LogParams::default()
            },
        )
        .await,
        400,
        "BadRequest",
        "previous terminated container \"app\" in pod \"talker\" not found",
    );
    assert_status(
        pods.logs(
            "talker",
            &LogParams {
                container: Some("nope".into()),
                ..LogParams::default()
            },
        )
        .await,
        400,
        "BadRequest",
        "container nope is not valid for pod talker",
    );
    assert_status(
        pods.logs("nobody", &LogParams::default()).await,
        404,
        "NotFound",
        "pods \"nobody\" not found",
    );
    let duo: Pod = serde_json::from_value(json!({
        "metadata": {"name": "duo"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "a", "image": "busybox:1.36", "command": ["echo", "from a"]},
                {"name": "b", "image": "busybox:1.36", "command": ["echo", "from b"]},
            ],
        },
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &duo)
        .await
        .expect("create duo");
    assert_status(
        pods.logs("duo", &LogParams::default()).await,
        400,
        "BadRequest",
        "a container name must be specified for pod duo, choose one of: [a b]",
    );
    wait_for(&pods, "duo", phase_in(&["Succeeded"])).await;
    assert_eq!(
        pods.logs(
            "duo",
            &LogParams {
                container: Some("b".into()),
                ..LogParams::default()
            }
        )
        .await
        .expect("log of b"),
        "from b\n"
    );
}
