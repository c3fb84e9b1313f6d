//! The ServiceAccount token a pod gets, as the ServiceAccount admission plugin and the kubelet give
//! it: unless the pod or its ServiceAccount turn `automountServiceAccountToken` off, every container
//! has `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}`, the token minted
//! through the ServiceAccount's `token` subresource (TokenRequest) for this pod.
//!
//! The volume is added to the kubelet's copy of the pod (the API object does not show it) and, like
//! every mount, reached through path rewriting. kube-rs' in-cluster configuration reads those paths
//! literally, which a local process cannot; it tries `$HOME/.kube/config` first, so the same server,
//! CA and token are also written there as a kubeconfig (`HOME` is the pod directory).

use std::path::Path;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod, ServiceAccount, Volume, VolumeMount};
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};

use super::volumes;
use crate::workloads::ApiServerAccess;

pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The volume's name (the admission plugin's is `kube-api-access-<random>`).
pub const VOLUME: &str = "kube-api-access";
/// The admission plugin's token lifetime.
const EXPIRATION_SECONDS: i64 = 3607;

fn account_name(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// Whether the pod gets a token: its own `automountServiceAccountToken` decides, else its
/// ServiceAccount's; a ServiceAccount that does not exist gives none.
pub async fn wanted(client: &Client, pod: &Pod) -> bool {
    let own = pod
        .spec
        .as_ref()
        .and_then(|s| s.automount_service_account_token);
    if own == Some(false) {
        return false;
    }
    let api: Api<ServiceAccount> =
        Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    match api.get_opt(&account_name(pod)).await {
        Ok(Some(account)) => own.or(account.automount_service_account_token) != Some(false),
        _ => false,
    }
}

/// Adds the token volume, and a mount of it to every container that has none at [`MOUNT_PATH`].
pub fn add_volume(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: VOLUME.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    });
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for container in containers {
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        if mounts
            .iter()
            .all(|m| m.mount_path.trim_end_matches('/') != MOUNT_PATH)
        {
            mounts.push(VolumeMount {
                name: VOLUME.to_owned(),
                mount_path: MOUNT_PATH.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
}

/// Mints the pod's token and writes `token`, `ca.crt`, `namespace` into the volume, and the
/// kubeconfig into `<pod dir>/.kube/config`. The error is the `FailedMount` reason.
pub async fn project(
    client: &Client,
    pod: &Pod,
    pod_dir: &Path,
    volume_dir: &Path,
    access: &ApiServerAccess,
) -> Result<(), String> {
    let namespace = pod.namespace().unwrap_or_default();
    let account = account_name(pod);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(EXPIRATION_SECONDS),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some(pod.name_any()),
                uid: pod.uid(),
            }),
        },
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    let token = api
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("failed to fetch token: {e}"))?
        .status
        .map(|s| s.token)
        .ok_or("failed to fetch token: no token in the answer")?;
    let server = format!("https://{}", access.address);
    let kubeconfig =
        crate::apiserver::kubeconfig_for("in-cluster", &server, &access.ca_pem, &token);
    let kubeconfig = yaml_serde::to_string(&kubeconfig).map_err(|e| e.to_string())?;
    let kube_dir = pod_dir.join(".kube");
    let written = async {
        volumes::private_dir(volume_dir).await?;
        crate::private_file::write(&volume_dir.join("token"), token.as_bytes())?;
        crate::private_file::write(&volume_dir.join("ca.crt"), access.ca_pem.as_bytes())?;
        crate::private_file::write(&volume_dir.join("namespace"), namespace.as_bytes())?;
        volumes::private_dir(&kube_dir).await?;
        crate::private_file::write(&kube_dir.join("config"), kubeconfig.as_bytes())
    };
    written.await.map_err(|e: std::io::Error| e.to_string())
}
