//! The suite's moving parts: the kubeconfig, what the management cluster needs before the services
//! start, each service's configuration, and the readiness check.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use testcluster_resources::TestClusterGKE;
use testcluster_sim::Simulator;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{Component, GITHUB_TOKEN_SECRET, NAMESPACE, SYSTEM_NAMESPACE, Suite};

/// Writes the kubeconfig to a temporary name, then renames it into place, so whoever waits for the
/// file finds a complete one.
pub fn write_kubeconfig(sim: &Simulator, path: &Path) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = Path::new(&temporary);
    sim.write_kubeconfig(temporary)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(temporary, path).with_context(|| format!("writing {}", path.display()))
}

/// Installs the TestClusterGKE CRD and the test clusters' namespace, and waits until the API server
/// establishes and serves the new resource (the services check for it when they start).
pub async fn install(client: &kube::Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = testcluster_resources::crd::crd();
    create_if_missing(&crds, &crd).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(NAMESPACE.to_owned());
    create_if_missing(&namespaces, &namespace).await?;

    let name = crd.metadata.name.clone().unwrap_or_default();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .with_context(|| format!("CRD {name} was not established in time"))?
    .with_context(|| format!("watching CRD {name}"))?;
    let clusters: Api<TestClusterGKE> = Api::all(client.clone());
    clusters
        .list(&ListParams::default().limit(1))
        .await
        .context("the TestClusterGKE CRD is not served")?;
    Ok(())
}

/// The Secret of static tokens' digests.
pub const TOKENS_SECRET: &str = "testcluster-tokens";
/// The ConfigMap of the tenancy policy.
pub const POLICY_CONFIG_MAP: &str = "testcluster-policy";
/// The name of the token the suite makes for its user.
pub const LOCAL_TOKEN_NAME: &str = "tcctl-up";

/// The suite's policy: one tenant, the suite's own token, which may do anything. Edit the ConfigMap
/// (`kubectl edit cm -n testcluster-system testcluster-policy`) to try others; it applies at once.
const LOCAL_POLICY: &str = "\
tenants:
- name: local
  match:
  - {staticToken: tcctl-up}
  namespaces: [\"*\"]
  credentials: true
  seesUntenanted: true
";

/// Creates the static tokens' Secret, holding the digest of `token` as [`LOCAL_TOKEN_NAME`], and the
/// policy, unless they exist.
pub async fn install_auth(client: &kube::Client, token: &str) -> anyhow::Result<()> {
    create_system_namespace(client).await?;
    let mut secret = Secret {
        string_data: Some(BTreeMap::from([(
            LOCAL_TOKEN_NAME.to_owned(),
            testcluster_auth::static_tokens::digest_entry(token),
        )])),
        ..Secret::default()
    };
    secret.metadata.name = Some(TOKENS_SECRET.to_owned());
    create_if_missing(&Api::namespaced(client.clone(), SYSTEM_NAMESPACE), &secret).await?;
    let mut policy = ConfigMap {
        data: Some(BTreeMap::from([(
            testcluster_auth::policy::POLICY_KEY.to_owned(),
            LOCAL_POLICY.to_owned(),
        )])),
        ..ConfigMap::default()
    };
    policy.metadata.name = Some(POLICY_CONFIG_MAP.to_owned());
    create_if_missing(&Api::namespaced(client.clone(), SYSTEM_NAMESPACE), &policy).await
}

/// Stores the runner's GitHub token in [`GITHUB_TOKEN_SECRET`] (key `token`), in the suite's own
/// namespace.
pub async fn store_github_token(client: &kube::Client, token: &str) -> anyhow::Result<()> {
    create_system_namespace(client).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let mut secret = Secret::default();
    secret.metadata.name = Some(GITHUB_TOKEN_SECRET.to_owned());
    secret.string_data = Some([("token".to_owned(), token.to_owned())].into());
    create_if_missing(&secrets, &secret).await
}

async fn create_system_namespace(client: &kube::Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(SYSTEM_NAMESPACE.to_owned());
    create_if_missing(&namespaces, &namespace).await
}

/// How the suite's broker authenticates: the static tokens and ServiceAccount tokens, under the
/// suite's policy.
fn broker_auth() -> testcluster_auth::AuthArgs {
    testcluster_auth::AuthArgs {
        static_tokens_secret: Some(format!("{SYSTEM_NAMESPACE}/{TOKENS_SECRET}")),
        token_review: true,
        policy_config_map: Some(format!("{SYSTEM_NAMESPACE}/{POLICY_CONFIG_MAP}")),
        ..testcluster_auth::AuthArgs::default()
    }
}

async fn create_if_missing<K>(api: &Api<K>, object: &K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(response)) if response.is_already_exists() => Ok(()),
        Err(error) => Err(error).context(format!(
            "creating {}",
            object.meta().name.clone().unwrap_or_default()
        )),
    }
}

/// The future that runs `component` until `stop` is cancelled.
pub fn service_future(
    suite: &Suite,
    component: Component,
    client: kube::Client,
    listener: Option<TcpListener>,
    stop: CancellationToken,
) -> anyhow::Result<BoxFuture<'static, anyhow::Result<()>>> {
    let provisioner = suite.endpoint_or_empty(Component::Provisioner);
    let logview = suite.endpoint_or_empty(Component::Logview);
    let needs_listener = move || listener.context("no address for the service");
    let metrics = suite.metrics(component);
    Ok(match component {
        Component::Provisioner => {
            let settings = testcluster_provisioner::Settings {
                metadata_host: Some(suite.simulator().gke().metadata_host()),
                tls: Some(suite.certs().server_files()),
                lifetimes: suite.lifetimes,
                record_retention: suite.record_retention,
                ..testcluster_provisioner::Settings::default()
            };
            Box::pin(testcluster_provisioner::run(
                client,
                needs_listener()?,
                settings,
                metrics,
                stop,
            ))
        }
        Component::Runner => Box::pin(testcluster_runner::run(
            client,
            Some(needs_listener()?),
            testcluster_runner::Settings {
                lifetimes: suite.lifetimes,
                github: suite.github_settings(),
                ..suite.runner_settings.clone()
            },
            metrics,
            stop,
        )),
        Component::Logview => {
            let settings = testcluster_logview::Settings {
                tls: Some(suite.certs().server_files()),
                ..testcluster_logview::Settings::default()
            };
            Box::pin(testcluster_logview::run(
                client,
                needs_listener()?,
                settings,
                metrics,
                stop,
            ))
        }
        Component::Broker => {
            let settings = testcluster_broker::Settings {
                provisioner_endpoint: provisioner,
                logview_endpoint: logview,
                default_namespace: NAMESPACE.to_owned(),
                auth: broker_auth(),
                internal_tls: suite.certs().broker_client(),
                lifetimes: suite.lifetimes.into(),
                ..testcluster_broker::Settings::default()
            };
            Box::pin(testcluster_broker::run(
                client,
                needs_listener()?,
                settings,
                metrics,
                stop,
            ))
        }
    })
}

/// Waits until the gRPC server at `endpoint` reports SERVING, watching its health rather than
/// polling it. The listener is bound before the server task runs, so the connection succeeds at
/// once and the watch answers as soon as the server accepts; a server that fails to start drops
/// its listener, which ends the wait with an error.
pub async fn wait_serving(endpoint: &str, timeout: Duration) -> anyhow::Result<()> {
    let watch = async {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())?
            .connect()
            .await?;
        let mut statuses = HealthClient::new(channel)
            .watch(tonic_health::pb::HealthCheckRequest::default())
            .await?
            .into_inner();
        while let Some(response) = statuses.message().await? {
            if response.status() == ServingStatus::Serving {
                return Ok(());
            }
        }
        bail!("the health watch ended before SERVING")
    };
    tokio::time::timeout(timeout, watch)
        .await
        .with_context(|| format!("{endpoint} not serving after {timeout:?}"))?
        .with_context(|| format!("{endpoint} not serving"))
}
