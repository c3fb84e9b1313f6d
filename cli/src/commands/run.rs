//! `tcctl run`: create a test cluster with a job, follow it, exit with the job's exit code.

use anyhow::Context as _;
use testcluster_api::v1 as api;
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;

use crate::args::RunArgs;
use crate::follow::{connect, follow};
use crate::output::describe_status;
use crate::suite::{Suite, SuiteConfig};
use crate::{EXIT_INTERRUPTED, request};

pub async fn run(args: RunArgs, endpoint: &str, namespace: Option<&str>) -> anyhow::Result<i32> {
    let request = request::build(&args, namespace)?;
    if !args.local {
        return create_and_follow(endpoint, request).await;
    }
    let suite = Suite::start(SuiteConfig {
        kubeconfig: args.kubeconfig.clone(),
        ..SuiteConfig::default()
    })
    .await
    .context("starting the local suite")?;
    eprintln!(
        "tcctl: local suite serving at {} (kubeconfig {})",
        suite.broker_endpoint(),
        suite.kubeconfig_path().display()
    );
    let result = create_and_follow(&suite.broker_endpoint(), request).await;
    suite.shutdown().await;
    result
}

async fn create_and_follow(
    endpoint: &str,
    request: api::CreateTestClusterRequest,
) -> anyhow::Result<i32> {
    let channel = connect(endpoint).await?;
    let mut clusters = TestClusterServiceClient::new(channel.clone());
    let created = clusters
        .create_test_cluster(request)
        .await
        .map_err(|status| anyhow::anyhow!("{}", describe_status(&status)))?
        .into_inner()
        .test_cluster
        .context("the broker returned no test cluster")?;
    eprintln!("tcctl: created {}/{}", created.namespace, created.name);
    tokio::select! {
        outcome = follow(channel, &created) => Ok(outcome?.exit_code()),
        _ = tokio::signal::ctrl_c() => {
            // The run is this command's: an interrupted CI job must not leave a cluster behind.
            eprintln!("tcctl: interrupted; deleting {}/{}", created.namespace, created.name);
            let request = api::DeleteTestClusterRequest {
                namespace: created.namespace.clone(),
                name: created.name.clone(),
            };
            if let Err(status) = clusters.delete_test_cluster(request).await {
                eprintln!("tcctl: delete failed: {}", describe_status(&status));
            }
            Ok(EXIT_INTERRUPTED)
        }
    }
}
