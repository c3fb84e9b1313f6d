//! Access to one test cluster (docs/lifecycle.md, "Cluster access").
//!
//! The provisioner reads the cluster's endpoint and CA from its ContainerCluster, reaches it with
//! its own cloud identity (a token from the GCE metadata server, as under Workload Identity), makes
//! sure the test cluster has `testcluster-system/test-runner` bound to `cluster-admin`, and mints a
//! short-lived token for that account with TokenRequest. The kubeconfig built from it reaches that
//! one cluster only: the token means nothing to any other API server.
//!
//! The controller does this once, when the cluster's dependencies are all ready and before it
//! calls the cluster Ready: it writes the kubeconfig to the Secret `<name>-kubeconfig`
//! ([`kubeconfig_secret`]), which the runner mounts into the job's pod. `GetClusterAccess` does it
//! on request, for a person who wants to look into a cluster.
//!
//! Tokens and kubeconfigs are secrets: they are returned, never logged.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use google_cloud_auth::credentials::AccessTokenCredentials;
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use kube::core::DynamicObject;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use testcluster_resources::job_pod;
use testcluster_resources::metadata::LABEL_TEST_CLUSTER;
use testcluster_resources::{Phase, TestClusterGKE};

use crate::Settings;
use crate::controller::FIELD_MANAGER;
use crate::template::CONTAINER_CLUSTER;

/// Namespace of the test runner's account in every test cluster.
pub const RUNNER_NAMESPACE: &str = "testcluster-system";
/// The test runner's ServiceAccount in every test cluster.
pub const RUNNER_SERVICE_ACCOUNT: &str = "test-runner";
/// ClusterRoleBinding giving the runner `cluster-admin` in its test cluster.
pub const RUNNER_BINDING: &str = "testcluster-test-runner";

/// Why access could not be given. The gRPC layer maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("test cluster {0} not found")]
    NotFound(String),
    #[error("no access to test cluster {name}: {reason}")]
    NotReady { name: String, reason: String },
    #[error("cannot get a cloud identity token from the metadata server: {0}")]
    Identity(String),
    #[error("management cluster API: {0}")]
    Kube(#[from] kube::Error),
    #[error("test cluster {cluster} API: {error}")]
    TestCluster { cluster: String, error: String },
    #[error("encoding the kubeconfig: {0}")]
    Encode(#[from] yaml_serde::Error),
}

/// Credentials for one test cluster. Secret: `Debug` leaves the token and kubeconfig out.
pub struct ClusterAccess {
    pub kubeconfig: String,
    /// `https://host:port` of the test cluster's API server.
    pub endpoint: String,
    pub ca_pem: String,
    pub token: String,
    pub expires: Option<Time>,
    pub cluster_name: String,
    pub location: String,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("endpoint", &self.endpoint)
            .field("cluster_name", &self.cluster_name)
            .field("location", &self.location)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Gives out [`ClusterAccess`]. Cheap to share; the identity credentials cache their token.
pub struct AccessIssuer {
    client: kube::Client,
    identity: AccessTokenCredentials,
    expiration: Duration,
}

impl AccessIssuer {
    /// Uses the metadata server at `settings.metadata_host` (`host:port`), or, when unset, where
    /// google-cloud-auth looks by default (`GCE_METADATA_HOST`, else `metadata.google.internal`).
    pub fn new(client: kube::Client, settings: &Settings) -> Result<AccessIssuer, AccessError> {
        let mut builder = google_cloud_auth::credentials::mds::Builder::default();
        if let Some(host) = &settings.metadata_host {
            let endpoint = if host.contains("://") {
                host.trim_end_matches('/').to_owned()
            } else {
                format!("http://{host}")
            };
            builder = builder.with_endpoint(endpoint);
        }
        let identity = builder
            .build_access_token_credentials()
            .map_err(|e| AccessError::Identity(e.to_string()))?;
        Ok(AccessIssuer {
            client,
            identity,
            expiration: settings.token_expiration,
        })
    }

    /// Access to the test cluster of `TestClusterGKE` `namespace/name`, which must be Ready (or
    /// running its job).
    pub async fn cluster_access(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ClusterAccess, AccessError> {
        let qualified = format!("{namespace}/{name}");
        let test_clusters: Api<TestClusterGKE> = Api::namespaced(self.client.clone(), namespace);
        let tc = test_clusters
            .get_opt(name)
            .await?
            .ok_or_else(|| AccessError::NotFound(qualified.clone()))?;
        let status = tc.status.unwrap_or_default();
        let not_ready = |reason: String| AccessError::NotReady {
            name: qualified.clone(),
            reason,
        };
        // A failed run's cluster stays while it is held (expiresAt is then the hold's end).
        let held = status
            .expires_at
            .as_ref()
            .is_some_and(|at| at.0 > k8s_openapi::jiff::Timestamp::now());
        match status.phase {
            Some(Phase::Ready | Phase::Running) => {}
            Some(Phase::Failed) if held => {}
            Some(phase) if phase.is_terminal() => {
                return Err(not_ready(format!(
                    "its run is over (phase {phase:?}) and its cluster is deleted"
                )));
            }
            Some(phase) => return Err(not_ready(format!("it is in phase {phase:?}"))),
            None => return Err(not_ready("it is not provisioned yet".to_owned())),
        }
        let cluster_name = status
            .cluster_name
            .ok_or_else(|| not_ready("it has no cluster name".to_owned()))?;
        let location = status.location.unwrap_or_default();

        let clusters: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            namespace,
            &CONTAINER_CLUSTER.api_resource(),
        );
        let cluster = clusters
            .get_opt(&cluster_name)
            .await?
            .ok_or_else(|| not_ready(format!("its ContainerCluster {cluster_name} is missing")))?;
        self.issue(&qualified, &cluster, location).await
    }

    /// Access to the cloud cluster of `cluster` (a ContainerCluster, which must report its
    /// endpoint and CA) for the test cluster `qualified` (`namespace/name`, for messages).
    pub async fn issue(
        &self,
        qualified: &str,
        cluster: &DynamicObject,
        location: String,
    ) -> Result<ClusterAccess, AccessError> {
        let cluster_name = cluster.metadata.name.clone().unwrap_or_default();
        let (endpoint, ca_pem) =
            endpoint_and_ca(&cluster.data).map_err(|reason| AccessError::NotReady {
                name: qualified.to_owned(),
                reason: reason.to_owned(),
            })?;

        let identity = self
            .identity
            .access_token()
            .await
            .map_err(|e| AccessError::Identity(e.to_string()))?;
        let test_cluster_error = |error: String| AccessError::TestCluster {
            cluster: cluster_name.clone(),
            error,
        };
        let admin = client_for(&kubeconfig(
            &cluster_name,
            "provisioner",
            &endpoint,
            &ca_pem,
            &identity.token,
        ))
        .await
        .map_err(test_cluster_error)?;
        let (token, expires) = self
            .runner_token(admin)
            .await
            .map_err(|e| test_cluster_error(e.to_string()))?
            .ok_or_else(|| test_cluster_error("TokenRequest returned no token".to_owned()))?;
        let config = kubeconfig(
            &cluster_name,
            RUNNER_SERVICE_ACCOUNT,
            &endpoint,
            &ca_pem,
            &token,
        );
        tracing::info!(test_cluster = %qualified, cluster = cluster_name, "issued cluster access");
        Ok(ClusterAccess {
            kubeconfig: yaml_serde::to_string(&config)?,
            endpoint,
            ca_pem,
            token,
            expires,
            cluster_name,
            location,
        })
    }

    /// Makes sure the runner's account exists with `cluster-admin`, then mints a token for it.
    async fn runner_token(
        &self,
        admin: kube::Client,
    ) -> Result<Option<(String, Option<Time>)>, kube::Error> {
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
        namespaces
            .patch(
                RUNNER_NAMESPACE,
                &apply,
                &Patch::Apply(json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": RUNNER_NAMESPACE},
                })),
            )
            .await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), RUNNER_NAMESPACE);
        accounts
            .patch(
                RUNNER_SERVICE_ACCOUNT,
                &apply,
                &Patch::Apply(json!({
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": RUNNER_SERVICE_ACCOUNT, "namespace": RUNNER_NAMESPACE},
                })),
            )
            .await?;
        let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(admin);
        bindings
            .patch(
                RUNNER_BINDING,
                &apply,
                &Patch::Apply(json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": RUNNER_BINDING},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "cluster-admin",
                    },
                    "subjects": [{
                        "kind": "ServiceAccount",
                        "name": RUNNER_SERVICE_ACCOUNT,
                        "namespace": RUNNER_NAMESPACE,
                    }],
                })),
            )
            .await?;
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: i64::try_from(self.expiration.as_secs()).ok(),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let minted = accounts
            .create_token_request(RUNNER_SERVICE_ACCOUNT, &PostParams::default(), &request)
            .await?;
        Ok(minted
            .status
            .filter(|status| !status.token.is_empty())
            .map(|status| (status.token, Some(status.expiration_timestamp))))
    }
}

/// `https://<status.endpoint>` and the PEM CA of a ContainerCluster, or why they are not there.
fn endpoint_and_ca(cluster: &serde_json::Value) -> Result<(String, String), &'static str> {
    let status = &cluster["status"];
    let endpoint = status["endpoint"]
        .as_str()
        .filter(|e| !e.is_empty())
        .ok_or("its ContainerCluster has no endpoint yet")?;
    // Config Connector reports the CA under observedState; older versions kept it in spec.
    let ca = status["observedState"]["masterAuth"]["clusterCaCertificate"]
        .as_str()
        .or_else(|| cluster["spec"]["masterAuth"]["clusterCaCertificate"].as_str())
        .filter(|ca| !ca.is_empty())
        .ok_or("its ContainerCluster has no CA certificate yet")?;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca.trim())
        .ok()
        .and_then(|pem| String::from_utf8(pem).ok())
        .ok_or("its ContainerCluster's CA certificate is not base64 PEM")?;
    let endpoint = if endpoint.starts_with("https://") {
        endpoint.to_owned()
    } else {
        format!("https://{endpoint}")
    };
    Ok((endpoint, ca))
}

/// The Secret that hands `access` to the job of `tc` (docs/lifecycle.md): `<name>-kubeconfig`, key
/// `kubeconfig`, labelled with and owned by the test cluster, so it goes with it.
pub fn kubeconfig_secret(tc: &TestClusterGKE, access: &ClusterAccess) -> Secret {
    let name = tc.name_any();
    Secret {
        metadata: ObjectMeta {
            name: Some(job_pod::kubeconfig_secret(&name)),
            namespace: tc.namespace(),
            labels: Some(BTreeMap::from([(LABEL_TEST_CLUSTER.to_owned(), name)])),
            owner_references: tc.controller_owner_ref(&()).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            job_pod::KUBECONFIG_KEY.to_owned(),
            ByteString(access.kubeconfig.clone().into_bytes()),
        )])),
        ..Secret::default()
    }
}

/// A kubeconfig with one cluster, one bearer-token user and one current context.
pub fn kubeconfig(
    cluster: &str,
    user: &str,
    server: &str,
    ca_pem: &str,
    token: &str,
) -> Kubeconfig {
    Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        clusters: vec![NamedCluster {
            name: cluster.to_owned(),
            cluster: Some(Cluster {
                server: Some(server.to_owned()),
                certificate_authority_data: Some(
                    base64::engine::general_purpose::STANDARD.encode(ca_pem),
                ),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.to_owned(),
            auth_info: Some(AuthInfo {
                token: Some(token.to_owned().into()),
                ..AuthInfo::default()
            }),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: cluster.to_owned(),
            context: Some(Context {
                cluster: cluster.to_owned(),
                user: Some(user.to_owned()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(cluster.to_owned()),
        ..Kubeconfig::default()
    }
}

async fn client_for(kubeconfig: &Kubeconfig) -> Result<kube::Client, String> {
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default())
            .await
            .map_err(|e| e.to_string())?;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_and_ca_come_from_the_container_cluster() {
        let ca = base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE-----\n");
        let cluster = json!({"status": {
            "endpoint": "127.0.0.1:6443",
            "observedState": {"masterAuth": {"clusterCaCertificate": ca}},
        }});
        assert_eq!(
            endpoint_and_ca(&cluster),
            Ok((
                "https://127.0.0.1:6443".to_owned(),
                "-----BEGIN CERTIFICATE-----\n".to_owned()
            ))
        );
        assert_eq!(
            endpoint_and_ca(&json!({"status": {}})),
            Err("its ContainerCluster has no endpoint yet")
        );
        assert_eq!(
            endpoint_and_ca(&json!({"status": {"endpoint": "h:1"}})),
            Err("its ContainerCluster has no CA certificate yet")
        );
        assert_eq!(
            endpoint_and_ca(
                &json!({"status": {"endpoint": "h:1", "observedState": {"masterAuth": {"clusterCaCertificate": "%%%"}}}})
            ),
            Err("its ContainerCluster's CA certificate is not base64 PEM")
        );
    }

    #[test]
    fn kubeconfig_round_trips_through_yaml() {
        let config = kubeconfig("c-abcde", "test-runner", "https://h:1", "PEM", "secret");
        let yaml = yaml_serde::to_string(&config).unwrap_or_default();
        let parsed = Kubeconfig::from_yaml(&yaml).unwrap_or_default();
        assert_eq!(parsed.current_context.as_deref(), Some("c-abcde"));
        assert_eq!(parsed.clusters[0].name, "c-abcde");
        assert!(yaml.contains("token: secret"), "the token is in the file");
        assert!(yaml.contains("kind: Config"));
    }

    #[test]
    fn the_secret_holds_the_kubeconfig_and_goes_with_the_test_cluster() {
        let mut tc = TestClusterGKE::new("t1", Default::default());
        tc.metadata.namespace = Some("ns".into());
        tc.metadata.uid = Some("uid-1".into());
        let access = ClusterAccess {
            kubeconfig: "apiVersion: v1".into(),
            endpoint: String::new(),
            ca_pem: String::new(),
            token: String::new(),
            expires: None,
            cluster_name: "t1-abcde".into(),
            location: "z".into(),
        };
        let secret = kubeconfig_secret(&tc, &access);
        assert_eq!(secret.metadata.name.as_deref(), Some("t1-kubeconfig"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("ns"));
        let owners = secret.metadata.owner_references.unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (owners[0].uid.as_str(), owners[0].controller),
            ("uid-1", Some(true))
        );
        let data = secret.data.unwrap_or_default();
        assert_eq!(
            data.get("kubeconfig").map(|b| b.0.as_slice()),
            Some(&b"apiVersion: v1"[..])
        );
    }

    #[test]
    fn debug_hides_the_secrets() {
        let access = ClusterAccess {
            kubeconfig: "token: secret".into(),
            endpoint: "https://h:1".into(),
            ca_pem: String::new(),
            token: "secret".into(),
            expires: None,
            cluster_name: "c".into(),
            location: "z".into(),
        };
        assert!(!format!("{access:?}").contains("secret"));
    }
}
