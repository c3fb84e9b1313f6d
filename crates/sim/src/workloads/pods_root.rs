//! The directory that holds this simulator's pod directories, and the removal of those a killed
//! simulator left behind.
//!
//! Each simulator makes its own root, `<parent>/testcluster-pods-XXXXXX` (mode 0700), holding an `owner` file with its pid and that process's start time. Dropping the
//! root removes it; a simulator killed with SIGKILL cannot, so every new one first removes each
//! sibling root whose owner is no longer running. The start time guards against a recycled pid.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::WorkloadsError;

const ROOT_PREFIX: &str = "testcluster-pods-";
const OWNER_FILE: &str = "owner";

/// This simulator's pods root; removed when dropped.
pub struct PodsRoot {
    dir: tempfile::TempDir,
}

impl PodsRoot {
    /// Removes roots of dead simulators under `parent`, then creates this one's.
    pub fn create(parent: &Path) -> Result<PodsRoot, WorkloadsError> {
        std::fs::create_dir_all(parent).map_err(WorkloadsError::PodsRoot)?;
        remove_abandoned(parent);
        let dir = tempfile::Builder::new()
            .prefix(ROOT_PREFIX)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(WorkloadsError::PodsRoot)?;
        // Without /proc (not Linux) there is no owner to record: such a root is never removed by
        // another simulator, only by its own.
        if let Some(owner) = Owner::current() {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.path().join(OWNER_FILE))
                .map_err(WorkloadsError::PodsRoot)?;
            file.write_all(owner.to_line().as_bytes())
                .map_err(WorkloadsError::PodsRoot)?;
        }
        Ok(PodsRoot { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes every `testcluster-pods-*` directory under `parent` whose owner is not running. A root
/// without a readable owner file is left alone: it may be one being created right now.
fn remove_abandoned(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(ROOT_PREFIX) {
            continue;
        }
        let root: PathBuf = entry.path();
        let Ok(line) = std::fs::read_to_string(root.join(OWNER_FILE)) else {
            continue;
        };
        let Some(owner) = Owner::parse(&line) else {
            continue;
        };
        if owner.is_running() {
            continue;
        }
        match std::fs::remove_dir_all(&root) {
            Ok(()) => {
                tracing::info!(dir = %root.display(), pid = owner.pid, "removed the pods of a simulator that is gone")
            }
            Err(e) => {
                tracing::warn!(dir = %root.display(), error = %e, "could not remove an abandoned pods directory")
            }
        }
    }
}

/// A process, identified by pid and start time (clock ticks since boot, `/proc/<pid>/stat` field 22).
#[derive(Debug, PartialEq, Eq)]
struct Owner {
    pid: u32,
    start: u64,
}

impl Owner {
    fn current() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            start: start_time(pid)?,
        })
    }

    fn to_line(&self) -> String {
        format!("{} {}\n", self.pid, self.start)
    }

    fn parse(line: &str) -> Option<Owner> {
        let mut parts = line.split_whitespace();
        Some(Owner {
            pid: parts.next()?.parse().ok()?,
            start: parts.next()?.parse().ok()?,
        })
    }

    fn is_running(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// The start time of process `pid`, `None` when it does not exist.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after the name; the start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_running_and_a_line_round_trips() {
        let owner = Owner::current().expect("own start time");
        assert!(owner.is_running());
        assert_eq!(Owner::parse(&owner.to_line()), Some(owner));
        assert_eq!(Owner::parse("12"), None);
    }

    #[test]
    fn roots_of_dead_owners_are_removed_and_others_kept() {
        let parent = tempfile::tempdir().expect("tempdir");
        let own = PodsRoot::create(parent.path()).expect("root");
        let dead = parent.path().join(format!("{ROOT_PREFIX}dead"));
        std::fs::create_dir_all(dead.join("ns_pod_uid")).expect("dead root");
        // Our own pid with another start time: a recycled pid, not the owner.
        let owner = Owner {
            pid: std::process::id(),
            start: 1,
        };
        std::fs::write(dead.join(OWNER_FILE), owner.to_line()).expect("owner");
        let unowned = parent.path().join(format!("{ROOT_PREFIX}creating"));
        std::fs::create_dir_all(&unowned).expect("unowned root");

        let second = PodsRoot::create(parent.path()).expect("second root");
        assert!(!dead.exists());
        assert!(unowned.exists());
        assert!(own.path().exists() && second.path().exists());
        let mode = std::fs::metadata(second.path())
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
