//! Files that hold a credential (a kubeconfig): readable by their owner only.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

/// Writes `contents` to `path` with mode 0600, replacing what was there (and its mode: a file that
/// existed with a wider one is narrowed before anything is written to it).
pub fn write(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {} to its owner", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))
}
