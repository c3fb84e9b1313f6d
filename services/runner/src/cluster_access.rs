//! Kubernetes clients for test clusters, made from the kubeconfig Secret the provisioner wrote for
//! each (`<name>-kubeconfig`, docs/lifecycle.md "Cluster access"). The runner installs the metrics
//! stack with them and proxies `/federate` through them; clients are kept per test cluster so a
//! scrape reuses its connection, and dropped when the cluster is no longer live or its credentials
//! stop working.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use parking_lot::Mutex;

use crate::names;

/// Why no client could be made. Never carries the kubeconfig itself.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("Secret {0} not found (the test cluster is not ready, or already torn down)")]
    SecretMissing(String),
    #[error("Secret {secret} has no key {key}")]
    KeyMissing { secret: String, key: &'static str },
    #[error("Secret {secret}: invalid kubeconfig: {message}")]
    Invalid { secret: String, message: String },
    #[error("reading Secret {secret}: {source}")]
    Kube {
        secret: String,
        #[source]
        source: kube::Error,
    },
}

/// Clients per test cluster (`namespace/name`), made on first use.
pub struct ClusterClients {
    management: Client,
    clients: Mutex<HashMap<String, Client>>,
}

impl ClusterClients {
    pub fn new(management: Client) -> ClusterClients {
        ClusterClients {
            management,
            clients: Mutex::default(),
        }
    }

    /// A client for the test cluster of the `TestClusterGKE` `namespace/name`.
    pub async fn client(&self, namespace: &str, name: &str) -> Result<Client, AccessError> {
        let key = format!("{namespace}/{name}");
        if let Some(client) = self.clients.lock().get(&key) {
            return Ok(client.clone());
        }
        let client = self.make(namespace, name).await?;
        self.clients.lock().insert(key, client.clone());
        Ok(client)
    }

    /// Drops the client of `namespace/name` (its credentials were refused, or the run ended).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.clients.lock().remove(&format!("{namespace}/{name}"));
    }

    /// Keeps only the clients whose `namespace/name` key `live` accepts.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.clients.lock().retain(|key, _| live(key));
    }

    async fn make(&self, namespace: &str, name: &str) -> Result<Client, AccessError> {
        let secret_name = names::kubeconfig_secret(name);
        let secret = format!("{namespace}/{secret_name}");
        let secrets: Api<Secret> = Api::namespaced(self.management.clone(), namespace);
        let found = secrets
            .get_opt(&secret_name)
            .await
            .map_err(|source| AccessError::Kube {
                secret: secret.clone(),
                source,
            })?
            .ok_or_else(|| AccessError::SecretMissing(secret.clone()))?;
        let bytes = found
            .data
            .as_ref()
            .and_then(|data| data.get(names::KUBECONFIG_KEY))
            .ok_or_else(|| AccessError::KeyMissing {
                secret: secret.clone(),
                key: names::KUBECONFIG_KEY,
            })?;
        let invalid = |message: String| AccessError::Invalid {
            secret: secret.clone(),
            message,
        };
        let text = std::str::from_utf8(&bytes.0).map_err(|e| invalid(e.to_string()))?;
        // The parser's error could quote a value of the file (a token): say only that it failed.
        let kubeconfig = Kubeconfig::from_yaml(text)
            .map_err(|_| invalid("not a kubeconfig document".to_owned()))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| invalid(e.to_string()))?;
        Client::try_from(config).map_err(|e| invalid(e.to_string()))
    }
}
