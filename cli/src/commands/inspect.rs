//! `get`, `list`, `watch`, `logs` and `delete`: one call each, printed.

use testcluster_api::v1 as api;
use testcluster_api::v1::log_service_client::LogServiceClient;
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;
use testcluster_auth::client::AuthorizedChannel;

use crate::args::Command;
use crate::follow::container_name;
use crate::output::{describe_status, phase_name, render};

fn grpc_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", describe_status(&status))
}

/// The message of a call's answer, or its status as an error to print.
fn answer<T>(result: Result<tonic::Response<T>, tonic::Status>) -> anyhow::Result<T> {
    result.map(tonic::Response::into_inner).map_err(grpc_error)
}

pub async fn execute(
    command: Command,
    channel: AuthorizedChannel,
    namespace: Option<&str>,
) -> anyhow::Result<i32> {
    let mut clusters = TestClusterServiceClient::new(channel.clone());
    // Empty: the broker's default namespace.
    let namespace = namespace.unwrap_or_default().to_owned();
    match command {
        Command::Get(args) => {
            let request = api::GetTestClusterRequest {
                namespace,
                name: args.name,
            };
            let cluster = answer(clusters.get_test_cluster(request).await)?
                .test_cluster
                .unwrap_or_default();
            print!("{}", render(&[cluster], args.output, true)?);
        }
        Command::List(args) => {
            let mut request = api::ListTestClustersRequest {
                namespace: if args.all_namespaces {
                    String::new()
                } else {
                    namespace
                },
                label_selector: args.selector.unwrap_or_default(),
                ..Default::default()
            };
            let mut all = Vec::new();
            loop {
                let page = answer(clusters.list_test_clusters(request.clone()).await)?;
                all.extend(page.test_clusters);
                if page.next_page_token.is_empty() {
                    break;
                }
                request.page_token = page.next_page_token;
            }
            print!("{}", render(&all, args.output, false)?);
        }
        Command::Watch(args) => {
            let request = api::WatchTestClusterRequest {
                namespace,
                name: args.name,
                resource_version: String::new(),
            };
            let mut stream = answer(clusters.watch_test_cluster(request).await)?;
            while let Some(message) = stream.message().await.map_err(grpc_error)? {
                let cluster = message.test_cluster.unwrap_or_default();
                let status = cluster.status.unwrap_or_default();
                let suffix = if message.deleted { " (deleted)" } else { "" };
                println!(
                    "{}/{}: {}{suffix}",
                    cluster.namespace,
                    cluster.name,
                    phase_name(status.phase)
                );
            }
        }
        Command::Logs(args) => {
            let request = api::StreamLogsRequest {
                namespace,
                name: args.name,
                follow: args.follow,
            };
            let mut stream = answer(LogServiceClient::new(channel).stream_logs(request).await)?;
            while let Some(message) = stream.message().await.map_err(grpc_error)? {
                match message.event {
                    Some(api::stream_logs_response::Event::Line(line)) => {
                        println!("[{}] {}", container_name(line.container), line.text);
                    }
                    Some(api::stream_logs_response::Event::FinalStatus(status)) => {
                        let code = status
                            .exit_code
                            .map_or_else(|| "none".to_owned(), |code| code.to_string());
                        eprintln!(
                            "tcctl: {} (exit code {code}) {}",
                            phase_name(status.phase),
                            status.message
                        );
                    }
                    None => {}
                }
            }
        }
        Command::Delete(args) => {
            let request = api::DeleteTestClusterRequest {
                namespace,
                name: args.name,
            };
            let cluster = answer(clusters.delete_test_cluster(request).await)?
                .test_cluster
                .unwrap_or_default();
            println!("deleting {}/{}", cluster.namespace, cluster.name);
        }
        Command::Run(_) | Command::Up(_) | Command::Faults(_) => unreachable_command()?,
    }
    Ok(0)
}

/// `run` and `up` are dispatched before a channel exists.
fn unreachable_command() -> anyhow::Result<()> {
    anyhow::bail!("internal error: command dispatched to the wrong module")
}
