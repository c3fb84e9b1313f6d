//! A container's environment: `envFrom`, `env` (literal values, `$(VAR)` references, ConfigMap and
//! Secret keys, the downward API), resolved as the kubelet does before it creates a container.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret};
use kube::{Api, Client};

/// Why a container's configuration cannot be generated: the kubelet's `CreateContainerConfigError`
/// (or, for volumes, a `FailedMount`). The Display text is the message a user sees.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// Reads the ConfigMaps and Secrets of one pod's namespace, with their data as bytes.
pub struct ConfigSource {
    client: Client,
    namespace: String,
}

impl ConfigSource {
    pub fn new(client: Client, namespace: &str) -> ConfigSource {
        ConfigSource {
            client,
            namespace: namespace.to_owned(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A ConfigMap's `data` and `binaryData`, or `None` when it does not exist.
    pub async fn config_map(&self, name: &str) -> Result<Option<KeyedData>, ConfigError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(api.get_opt(name).await?.map(|cm| {
            let mut data: KeyedData = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                data.insert(k, v.0);
            }
            data
        }))
    }

    /// A Secret's decoded `data` (and any `stringData` a store kept), or `None` when it does not exist.
    pub async fn secret(&self, name: &str) -> Result<Option<KeyedData>, ConfigError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(api.get_opt(name).await?.map(|secret| {
            let mut data: KeyedData = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in secret.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            data
        }))
    }
}

pub type KeyedData = BTreeMap<String, Vec<u8>>;

/// Environment variables in definition order; a later definition of a name replaces the earlier.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Environment {
    vars: Vec<(String, String)>,
}

impl Environment {
    pub fn set(&mut self, name: &str, value: String) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.vars.push((name.to_owned(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Expands `$(NAME)` references as Kubernetes does for `env` values, `command` and `args`:
    /// defined names are replaced, undefined references stay as written, `$$` escapes a `$`.
    pub fn expand(&self, input: &str) -> String {
        let mut out = String::with_capacity(input.len());
        let mut rest = input;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(stripped) = after.strip_prefix('$') {
                out.push('$');
                rest = stripped;
            } else if let Some(inner) = after.strip_prefix('(')
                && let Some(close) = inner.find(')')
            {
                let name = &inner[..close];
                match self.get(name) {
                    Some(value) => out.push_str(value),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &inner[close + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        out
    }
}

/// The container's environment from its `envFrom` then its `env`, in that order (as the kubelet).
pub async fn resolve(
    pod: &Pod,
    container: &Container,
    source: &ConfigSource,
) -> Result<Environment, ConfigError> {
    let mut env = Environment::default();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let data = if let Some(cm) = &from.config_map_ref {
            match source.config_map(&cm.name).await? {
                Some(data) => data,
                None if cm.optional == Some(true) => continue,
                None => return Err(ConfigError::ConfigMapNotFound(cm.name.clone())),
            }
        } else if let Some(secret) = &from.secret_ref {
            match source.secret(&secret.name).await? {
                Some(data) => data,
                None if secret.optional == Some(true) => continue,
                None => return Err(ConfigError::SecretNotFound(secret.name.clone())),
            }
        } else {
            continue;
        };
        for (key, value) in data {
            env.set(
                &format!("{prefix}{key}"),
                String::from_utf8_lossy(&value).into_owned(),
            );
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = value_of(pod, container, var, &env, source).await? {
            env.set(&var.name, value);
        }
    }
    Ok(env)
}

async fn value_of(
    pod: &Pod,
    container: &Container,
    var: &EnvVar,
    env: &Environment,
    source: &ConfigSource,
) -> Result<Option<String>, ConfigError> {
    let Some(from) = &var.value_from else {
        return Ok(Some(env.expand(var.value.as_deref().unwrap_or(""))));
    };
    if let Some(selector) = &from.config_map_key_ref {
        let optional = selector.optional == Some(true);
        let data = match source.config_map(&selector.name).await? {
            Some(data) => data,
            None if optional => return Ok(None),
            None => return Err(ConfigError::ConfigMapNotFound(selector.name.clone())),
        };
        return match data.get(&selector.key) {
            Some(value) => Ok(Some(String::from_utf8_lossy(value).into_owned())),
            None if optional => Ok(None),
            None => Err(ConfigError::ConfigMapKeyNotFound {
                key: selector.key.clone(),
                namespace: source.namespace().to_owned(),
                name: selector.name.clone(),
            }),
        };
    }
    if let Some(selector) = &from.secret_key_ref {
        let optional = selector.optional == Some(true);
        let data = match source.secret(&selector.name).await? {
            Some(data) => data,
            None if optional => return Ok(None),
            None => return Err(ConfigError::SecretNotFound(selector.name.clone())),
        };
        return match data.get(&selector.key) {
            Some(value) => Ok(Some(String::from_utf8_lossy(value).into_owned())),
            None if optional => Ok(None),
            None => Err(ConfigError::SecretKeyNotFound {
                key: selector.key.clone(),
                namespace: source.namespace().to_owned(),
                name: selector.name.clone(),
            }),
        };
    }
    if let Some(field) = &from.field_ref {
        return Ok(Some(field_value(pod, &field.field_path)));
    }
    if let Some(resource) = &from.resource_field_ref {
        let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
        let value = limits
            .and_then(|l| l.get(resource.resource.trim_start_matches("limits.")))
            .map(|q| q.0.clone())
            .unwrap_or_else(|| "0".to_owned());
        return Ok(Some(value));
    }
    Ok(Some(String::new()))
}

/// The downward API's `fieldRef` paths.
pub fn field_value(pod: &Pod, path: &str) -> String {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let from_map = |map: Option<&BTreeMap<String, String>>, key: &str| {
        map.and_then(|m| m.get(key)).cloned().unwrap_or_default()
    };
    let bracketed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .map(str::to_owned)
    };
    if let Some(key) = bracketed("metadata.labels['") {
        return from_map(meta.labels.as_ref(), &key);
    }
    if let Some(key) = bracketed("metadata.annotations['") {
        return from_map(meta.annotations.as_ref(), &key);
    }
    match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_owned()),
        "status.podIP" | "status.podIPs" => pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_else(|| super::status::LOCAL_IP.to_owned()),
        "status.hostIP" | "status.hostIPs" => super::status::LOCAL_IP.to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes() {
        let mut env = Environment::default();
        env.set("A", "x".into());
        env.set("B", "y".into());
        assert_eq!(env.expand("$(A)-$(B)"), "x-y");
        assert_eq!(env.expand("$(MISSING)"), "$(MISSING)");
        assert_eq!(env.expand("$$(A)"), "$(A)");
        assert_eq!(env.expand("cost $5 $(A"), "cost $5 $(A");
        env.set("A", "z".into());
        assert_eq!(env.iter().collect::<Vec<_>>(), vec![("A", "z"), ("B", "y")]);
    }

    #[test]
    fn downward_api_fields() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"containers": [], "nodeName": "n1"},
            "status": {"podIP": "127.4.5.6"}
        }))
        .expect("pod");
        assert_eq!(field_value(&pod, "metadata.name"), "p");
        assert_eq!(field_value(&pod, "metadata.namespace"), "ns");
        assert_eq!(field_value(&pod, "metadata.labels['app']"), "web");
        assert_eq!(field_value(&pod, "spec.nodeName"), "n1");
        assert_eq!(field_value(&pod, "status.podIP"), "127.4.5.6");
        assert_eq!(field_value(&pod, "status.hostIP"), "127.0.0.1");
    }
}
