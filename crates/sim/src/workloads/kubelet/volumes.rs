//! Pod volumes, materialised as directories on this machine, and the rewriting of container paths
//! onto them (the convention is described in the `workloads` module documentation).

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use super::env::{ConfigError, ConfigSource, KeyedData, field_value};

/// The mode of projected files when the pod does not say. Kubernetes' default is 0644, but here
/// every pod's files are on one machine with every other process of the user: readable by the user
/// only, unless the pod asks for more (its own mode bits then apply, inside its 0700 directory).
const DEFAULT_FILE_MODE: u32 = 0o600;
/// Pod directories and every directory in them: the user's only.
const DIR_MODE: u32 = 0o700;
/// Where, inside the pod directory, the volumes' contents live.
const VOLUMES_DIR: &str = ".volumes";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The kubelet's `FailedMount` event text.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {reason}")]
    SetUp { volume: String, reason: String },
    #[error("preparing the pod directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl VolumeError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
        move |source| VolumeError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Writes every volume of the pod under `<pod_dir>/.volumes/<name>`.
pub async fn materialise(
    pod: &Pod,
    source: &ConfigSource,
    pod_dir: &Path,
) -> Result<(), VolumeError> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    for volume in volumes.into_iter().flatten() {
        let dir = volume_dir(pod_dir, &volume.name);
        private_dir(&dir).await.map_err(VolumeError::io(&dir))?;
        write_volume(pod, source, volume, &dir)
            .await
            .map_err(|e| match e {
                WriteError::Config(reason) => VolumeError::SetUp {
                    volume: volume.name.clone(),
                    reason,
                },
                WriteError::Io(path, source) => VolumeError::Io { path, source },
            })?;
    }
    Ok(())
}

enum WriteError {
    Config(String),
    Io(PathBuf, std::io::Error),
}

impl From<ConfigError> for WriteError {
    fn from(e: ConfigError) -> Self {
        WriteError::Config(e.to_string())
    }
}

async fn write_volume(
    pod: &Pod,
    source: &ConfigSource,
    volume: &Volume,
    dir: &Path,
) -> Result<(), WriteError> {
    if let Some(cm) = &volume.config_map {
        let data = match source.config_map(&cm.name).await? {
            Some(data) => data,
            None if cm.optional == Some(true) => return Ok(()),
            None => return Err(ConfigError::ConfigMapNotFound(cm.name.clone()).into()),
        };
        let mode = cm.default_mode.map_or(DEFAULT_FILE_MODE, mode_bits);
        return write_keys(&data, cm.items.as_deref(), mode, dir, "configmap").await;
    }
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let data = match source.secret(&name).await? {
            Some(data) => data,
            None if secret.optional == Some(true) => return Ok(()),
            None => return Err(ConfigError::SecretNotFound(name).into()),
        };
        let mode = secret.default_mode.map_or(DEFAULT_FILE_MODE, mode_bits);
        return write_keys(&data, secret.items.as_deref(), mode, dir, "secret").await;
    }
    if let Some(downward) = &volume.downward_api {
        let mode = downward.default_mode.map_or(DEFAULT_FILE_MODE, mode_bits);
        for item in downward.items.iter().flatten() {
            let value = item
                .field_ref
                .as_ref()
                .map(|f| field_value(pod, &f.field_path))
                .unwrap_or_default();
            write_file(
                dir,
                &item.path,
                value.as_bytes(),
                item.mode.map_or(mode, mode_bits),
            )
            .await?;
        }
        return Ok(());
    }
    if let Some(projected) = &volume.projected {
        let mode = projected.default_mode.map_or(DEFAULT_FILE_MODE, mode_bits);
        for projection in projected.sources.iter().flatten() {
            if let Some(cm) = &projection.config_map {
                match source.config_map(&cm.name).await? {
                    Some(data) => {
                        write_keys(&data, cm.items.as_deref(), mode, dir, "configmap").await?
                    }
                    None if cm.optional == Some(true) => {}
                    None => return Err(ConfigError::ConfigMapNotFound(cm.name.clone()).into()),
                }
            }
            if let Some(secret) = &projection.secret {
                match source.secret(&secret.name).await? {
                    Some(data) => {
                        write_keys(&data, secret.items.as_deref(), mode, dir, "secret").await?
                    }
                    None if secret.optional == Some(true) => {}
                    None => return Err(ConfigError::SecretNotFound(secret.name.clone()).into()),
                }
            }
        }
    }
    // emptyDir, and any kind the simulator does not model, is an empty directory.
    Ok(())
}

async fn write_keys(
    data: &KeyedData,
    items: Option<&[KeyToPath]>,
    mode: u32,
    dir: &Path,
    kind: &str,
) -> Result<(), WriteError> {
    match items {
        None => {
            for (key, value) in data {
                write_file(dir, key, value, mode).await?;
            }
        }
        Some(items) => {
            for item in items {
                let value = data.get(&item.key).ok_or_else(|| {
                    WriteError::Config(format!(
                        "{kind} references non-existent config key: {}",
                        item.key
                    ))
                })?;
                write_file(dir, &item.path, value, item.mode.map_or(mode, mode_bits)).await?;
            }
        }
    }
    Ok(())
}

async fn write_file(dir: &Path, relative: &str, value: &[u8], mode: u32) -> Result<(), WriteError> {
    let path = dir.join(relative_path(relative));
    if path == dir {
        return Err(WriteError::Config(format!("invalid path {relative:?}")));
    }
    let io = |e| WriteError::Io(path.clone(), e);
    if let Some(parent) = path.parent() {
        private_dir(parent).await.map_err(io)?;
    }
    tokio::fs::write(&path, value).await.map_err(io)?;
    tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(io)
}

/// Where the volume `name` of the pod is materialised.
pub fn volume_dir(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir.join(VOLUMES_DIR).join(safe_name(name))
}

/// Creates `dir` and any missing parent with mode 0700.
pub async fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
    })
    .await
    .map_err(std::io::Error::other)?
}

fn mode_bits(mode: i32) -> u32 {
    u32::try_from(mode).unwrap_or(DEFAULT_FILE_MODE) & 0o777
}

/// `path` made relative and stripped of `..`, so that nothing is written outside the pod directory.
fn relative_path(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect()
}

fn safe_name(name: &str) -> PathBuf {
    let cleaned = relative_path(name);
    if cleaned.as_os_str().is_empty() {
        PathBuf::from("_")
    } else {
        PathBuf::from(cleaned.to_string_lossy().replace('/', "_"))
    }
}

/// A container's view of paths: each of its `volumeMounts` (a `mountPath` like `/credentials`)
/// appears at `<pod_dir>/<mountPath>`, a symlink to the volume's directory.
#[derive(Clone, Debug)]
pub struct MountTable {
    pod_dir: PathBuf,
    /// Longest mount path first, so that the most specific mount wins.
    mounts: Vec<(String, PathBuf)>,
}

impl MountTable {
    /// Links the container's mounts into the pod directory.
    pub async fn link(container: &Container, pod_dir: &Path) -> Result<MountTable, VolumeError> {
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let mount_path = mount.mount_path.trim_end_matches('/').to_owned();
            let relative = relative_path(&mount_path);
            if relative.as_os_str().is_empty() {
                continue; // mounting over "/" has no meaning here
            }
            let mut target = pod_dir.join(VOLUMES_DIR).join(safe_name(&mount.name));
            if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                target = target.join(relative_path(sub));
                private_dir(&target)
                    .await
                    .map_err(VolumeError::io(&target))?;
            }
            let link = pod_dir.join(&relative);
            if let Some(parent) = link.parent() {
                private_dir(parent).await.map_err(VolumeError::io(parent))?;
            }
            if tokio::fs::symlink_metadata(&link).await.is_ok() {
                // Left by an earlier start of this container, or by another container.
                let _ = tokio::fs::remove_file(&link).await;
            }
            tokio::fs::symlink(&target, &link)
                .await
                .map_err(VolumeError::io(&link))?;
            mounts.push((mount_path, link));
        }
        mounts.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.len()));
        Ok(MountTable {
            pod_dir: pod_dir.to_owned(),
            mounts,
        })
    }

    #[cfg(test)]
    fn new(pod_dir: &Path, mounts: &[(&str, &str)]) -> MountTable {
        let mut mounts: Vec<(String, PathBuf)> = mounts
            .iter()
            .map(|(m, h)| (m.to_string(), PathBuf::from(h)))
            .collect();
        mounts.sort_by_key(|(mount, _)| std::cmp::Reverse(mount.len()));
        MountTable {
            pod_dir: pod_dir.to_owned(),
            mounts,
        }
    }

    /// Replaces every mount path that appears in `text` as a whole path (at the start, or after a
    /// space, `=`, `:`, a quote or a bracket; followed by its end, `/` or such a delimiter) with where
    /// the volume is on this machine. So `--kubeconfig=/credentials/config` and
    /// `cat /credentials/token` both reach the materialised file.
    pub fn rewrite(&self, text: &str) -> String {
        const BEFORE: &[char] = &[' ', '\t', '\n', '=', ':', '\'', '"', '(', ',', ';', '`'];
        const AFTER: &[char] = &[
            '/', ' ', '\t', '\n', '\'', '"', ':', ';', ',', ')', '`', '|', '&',
        ];
        let mut out = String::with_capacity(text.len());
        let mut index = 0;
        let mut previous: Option<char> = None;
        while index < text.len() {
            let rest = &text[index..];
            if previous.is_none_or(|c| BEFORE.contains(&c)) {
                let hit = self.mounts.iter().find(|(mount, _)| {
                    rest.starts_with(mount.as_str())
                        && rest[mount.len()..]
                            .chars()
                            .next()
                            .is_none_or(|c| AFTER.contains(&c))
                });
                if let Some((mount, host)) = hit {
                    out.push_str(&host.to_string_lossy());
                    index += mount.len();
                    previous = mount.chars().last();
                    continue;
                }
            }
            let Some(c) = rest.chars().next() else { break };
            out.push(c);
            index += c.len_utf8();
            previous = Some(c);
        }
        out
    }

    /// The directory a container runs in: its `workingDir` rewritten onto its mounts, or placed
    /// inside the pod directory; the pod directory when unset.
    pub fn working_dir(&self, working_dir: Option<&str>) -> PathBuf {
        match working_dir.filter(|w| !w.is_empty()) {
            None => self.pod_dir.clone(),
            Some(dir) => {
                let rewritten = self.rewrite(dir);
                if rewritten != dir {
                    PathBuf::from(rewritten)
                } else {
                    self.pod_dir.join(relative_path(dir))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_whole_mount_paths_only() {
        let table = MountTable::new(
            Path::new("/pods/p"),
            &[
                ("/credentials", "/pods/p/credentials"),
                ("/etc/config", "/pods/p/etc/config"),
            ],
        );
        assert_eq!(table.rewrite("/credentials"), "/pods/p/credentials");
        assert_eq!(
            table.rewrite("/credentials/kubeconfig"),
            "/pods/p/credentials/kubeconfig"
        );
        assert_eq!(
            table.rewrite("--kubeconfig=/credentials/kubeconfig"),
            "--kubeconfig=/pods/p/credentials/kubeconfig"
        );
        assert_eq!(
            table.rewrite("cat /etc/config/a; ls '/credentials'"),
            "cat /pods/p/etc/config/a; ls '/pods/p/credentials'"
        );
        assert_eq!(table.rewrite("/credentials2"), "/credentials2");
        assert_eq!(table.rewrite("/x/credentials"), "/x/credentials");
        assert_eq!(table.rewrite("/etc/configs"), "/etc/configs");
        assert_eq!(
            table.rewrite("ünïcode /credentials"),
            "ünïcode /pods/p/credentials"
        );
    }

    #[test]
    fn working_dir_lands_in_the_pod_dir() {
        let table = MountTable::new(Path::new("/pods/p"), &[("/work", "/pods/p/work")]);
        assert_eq!(table.working_dir(None), PathBuf::from("/pods/p"));
        assert_eq!(
            table.working_dir(Some("/work/src")),
            PathBuf::from("/pods/p/work/src")
        );
        assert_eq!(
            table.working_dir(Some("/app/../app")),
            PathBuf::from("/pods/p/app/app")
        );
    }

    #[test]
    fn paths_cannot_escape() {
        assert_eq!(
            relative_path("../../etc/passwd"),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(relative_path("/abs/x"), PathBuf::from("abs/x"));
        assert_eq!(safe_name(".."), PathBuf::from("_"));
    }
}
