//! A run from request to teardown: the happy path and a failing job.

use testcluster_api::v1 as api;

use crate::support::{HELLO, job_request, start};

#[tokio::test]
async fn basic_three_nodes_runs_the_job_and_leaves_nothing() {
    let env = start().await;
    let created = env.create(job_request("hello", 3, HELLO)).await;
    let run = env.follow(&created.name, &created.resource_version).await;

    assert_eq!(
        run.phases(),
        [
            api::Phase::Pending,
            api::Phase::Provisioning,
            api::Phase::Ready,
            api::Phase::Running,
            api::Phase::Succeeded,
        ]
    );
    let text = run.text();
    assert!(text.contains(&"hello-from-job"), "logs: {text:?}");
    let nodes: Vec<&&str> = text
        .iter()
        .filter(|line| line.starts_with("node/"))
        .collect();
    assert_eq!(nodes.len(), 3, "logs: {text:?}");
    assert!(
        run.lines
            .iter()
            .all(|line| line.container() == api::Container::Runner)
    );
    assert_eq!(run.exit_code(), Some(0));
    let final_status = run.final_status.clone().expect("logview's final status");
    assert_eq!(final_status.exit_code, Some(0));

    let cluster_name = run.status().cluster_name;
    assert!(cluster_name.starts_with("hello-"), "{cluster_name}");
    env.wait_cloud_cluster_deleted(&cluster_name).await;
    env.wait_no_config_connector_objects().await;
}

#[tokio::test]
async fn a_job_exiting_3_fails_with_exit_code_3() {
    let env = start().await;
    let created = env
        .create(job_request(
            "exit-three",
            1,
            &["sh", "-c", "echo about to fail; exit 3"],
        ))
        .await;
    let run = env.follow(&created.name, &created.resource_version).await;
    assert_eq!(
        run.phases().last(),
        Some(&api::Phase::Failed),
        "{:?}",
        run.phases()
    );
    assert_eq!(run.exit_code(), Some(3));
    assert!(run.text().contains(&"about to fail"), "{:?}", run.text());
    assert_eq!(
        run.final_status.as_ref().expect("final status").exit_code,
        Some(3)
    );
    env.wait_cloud_cluster_deleted(&run.status().cluster_name)
        .await;
}
