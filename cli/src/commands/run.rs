//! `tcctl run`: create a test cluster with a job, follow it, exit with the job's exit code.
//!
//! Without a job there is nothing to wait for past Ready: `run` then prints how to reach the cluster
//! and that it must be deleted, and exits 0 (non-zero if it ends in Error instead).
//!
//! The cluster is this command's until it returns: Ctrl-C (SIGINT) or a CI cancel (SIGTERM) deletes
//! it and exits with 128 + the signal's number.

use std::time::Duration;

use anyhow::Context as _;
use testcluster_api::v1 as api;
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::args::{CredentialArgs, RunArgs};
use crate::follow::{Outcome, connect, follow, has_job};
use crate::output::describe_status;
use crate::suite::{Suite, SuiteConfig};
use crate::{EXIT_INTERRUPTED, EXIT_TERMINATED, request};
use testcluster_auth::client::Bearer;

/// How long deleting an interrupted run's cluster may take: CI kills a cancelled job soon after its
/// SIGTERM, and an unreachable broker must not hold tcctl up.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(
    args: RunArgs,
    endpoint: &str,
    credentials: &CredentialArgs,
    namespace: Option<&str>,
) -> anyhow::Result<i32> {
    let request = request::build(&args, namespace)?;
    // Before anything is created, so that a signal at any point after it is seen.
    let signals = Signals::listen()?;
    if !args.local {
        let bearer = crate::credentials::bearer(credentials).await?;
        return create_and_follow(endpoint, bearer, request, signals, false).await;
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
    let bearer = Bearer::new(Some(suite.token()))?;
    let result = create_and_follow(&suite.broker_endpoint(), bearer, request, signals, true).await;
    suite.shutdown().await;
    result
}

/// SIGINT and SIGTERM, handled instead of ending the process.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn listen() -> anyhow::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// Waits for either signal; tcctl's exit code for it.
    async fn received(&mut self) -> i32 {
        tokio::select! {
            _ = self.interrupt.recv() => EXIT_INTERRUPTED,
            _ = self.terminate.recv() => EXIT_TERMINATED,
        }
    }
}

async fn create_and_follow(
    endpoint: &str,
    bearer: Bearer,
    request: api::CreateTestClusterRequest,
    mut signals: Signals,
    local: bool,
) -> anyhow::Result<i32> {
    let channel = connect(endpoint, bearer).await?;
    let mut clusters = TestClusterServiceClient::new(channel.clone());
    let created = clusters
        .create_test_cluster(request)
        .await
        .map_err(|status| anyhow::anyhow!("{}", describe_status(&status)))?
        .into_inner()
        .test_cluster
        .context("the broker returned no test cluster")?;
    // The namespace as the broker chose it, when the request left it to its default.
    eprintln!("tcctl: created {}/{}", created.namespace, created.name);
    tokio::select! {
        outcome = follow(channel, &created) => {
            let outcome = outcome?;
            if !has_job(&outcome.test_cluster) {
                left_running(&outcome, local);
            }
            Ok(outcome.exit_code())
        }
        code = signals.received() => {
            // The run is this command's: an interrupted CI job must not leave a cluster behind.
            eprintln!("tcctl: interrupted; deleting {}/{}", created.namespace, created.name);
            let request = api::DeleteTestClusterRequest {
                namespace: created.namespace.clone(),
                name: created.name.clone(),
            };
            match tokio::time::timeout(DELETE_TIMEOUT, clusters.delete_test_cluster(request)).await {
                Ok(Ok(_)) => {}
                Ok(Err(status)) => eprintln!("tcctl: delete failed: {}", describe_status(&status)),
                Err(_) => eprintln!("tcctl: delete did not answer within {DELETE_TIMEOUT:?}"),
            }
            Ok(code)
        }
    }
}

/// For a cluster without a job that is Ready: how to reach it, and that it stays until deleted.
fn left_running(outcome: &Outcome, local: bool) {
    if outcome.phase() != api::Phase::Ready {
        return;
    }
    let cluster = &outcome.test_cluster;
    let status = cluster.status.clone().unwrap_or_default();
    let (namespace, name) = (&cluster.namespace, &cluster.name);
    eprintln!(
        "tcctl: {namespace}/{name} is Ready (cloud cluster {}); it has no job, so it stays until deleted",
        if status.cluster_name.is_empty() {
            "-"
        } else {
            &status.cluster_name
        }
    );
    if local {
        eprintln!(
            "tcctl: --local: the suite stops now and the cluster with it; to keep one, use \
             `tcctl up` and a plain `tcctl run`"
        );
        return;
    }
    eprintln!("tcctl:   show it:   tcctl get -n {namespace} {name}");
    eprintln!("tcctl:   delete it: tcctl delete -n {namespace} {name}");
}
