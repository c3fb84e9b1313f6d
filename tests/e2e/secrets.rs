//! Issue 12's "Done when" 4: a whole lifecycle, then every log line of every service (and of the
//! simulator: they share this process), every Event and every test cluster's status are searched
//! for each credential the run used; none may appear.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::Api;
use kube::api::ListParams;
use kube::runtime::wait::await_condition;
use testcluster_api::v1 as api;
use testcluster_resources::TestClusterGKE;
use tracing_subscriber::fmt::MakeWriter;

use crate::support::{HELLO, NAMESPACE, TIMEOUT, job_request, start};

/// Everything the process logs, kept for the search.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The bearer token of a kubeconfig's first user.
fn kubeconfig_token(yaml: &[u8]) -> String {
    let config: serde_json::Value = yaml_serde::from_slice(yaml).expect("a kubeconfig");
    config["users"][0]["user"]["token"]
        .as_str()
        .expect("a token")
        .to_owned()
}

#[tokio::test]
async fn no_credential_appears_in_logs_events_or_statuses() {
    let captured = Captured::default();
    // Debug level: what an operator turning logging up would see.
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();
    let env = start().await;
    let client = env.suite.client().await.expect("client");
    let admin = kubeconfig_token(
        &std::fs::read(env.suite.kubeconfig_path()).expect("the suite's kubeconfig"),
    );

    // The job's credentials exist from Ready until the run ends: catch them on a watch set up
    // before the run starts.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let job_secret = tokio::spawn(await_condition(
        secrets,
        "secrets-kubeconfig",
        |secret: Option<&Secret>| secret.is_some(),
    ));
    let created = env.create(job_request("secrets", 1, HELLO)).await;
    let run = env.follow(&created.name, &created.resource_version).await;
    assert_eq!(run.exit_code(), Some(0), "{:?}", run.text());
    let secret = tokio::time::timeout(TIMEOUT, job_secret)
        .await
        .expect("the kubeconfig Secret")
        .expect("task")
        .expect("watch")
        .expect("the Secret");
    let job_token = kubeconfig_token(&secret.data.expect("data")["kubeconfig"].0);
    env.broker()
        .delete_test_cluster(api::DeleteTestClusterRequest {
            namespace: NAMESPACE.to_owned(),
            name: created.name.clone(),
        })
        .await
        .expect("deleted");
    env.wait_cloud_cluster_deleted(&run.status().cluster_name)
        .await;

    let credentials = [
        ("the user's static token", env.suite.token().to_owned()),
        ("the management cluster's admin token", admin),
        ("the job's test-cluster token", job_token),
    ];
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(PoisonError::into_inner))
        .into_owned();
    assert!(
        logs.contains("testcluster::audit") && logs.contains("who=token:tcctl-up"),
        "the capture holds the services' logs (the audit line of the create)"
    );
    let events = Api::<Event>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(!events.items.is_empty(), "the run recorded Events");
    let events = serde_json::to_string(&events.items).expect("json");
    let statuses = Api::<TestClusterGKE>::all(client)
        .list(&ListParams::default())
        .await
        .expect("test clusters");
    let statuses = serde_json::to_string(
        &statuses
            .items
            .iter()
            .map(|object| &object.status)
            .collect::<Vec<_>>(),
    )
    .expect("json");
    for (what, credential) in &credentials {
        assert!(credential.len() >= 16, "{what} is a real credential");
        for (place, text) in [
            ("a log line", &logs),
            ("an Event", &events),
            ("a status", &statuses),
        ] {
            assert!(
                !text.contains(credential.as_str()),
                "{what} appears in {place}"
            );
        }
    }
}
