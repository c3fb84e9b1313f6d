//! One container run as a local process: exec'd directly (no shell), its own process group (so the
//! whole tree can be signalled, as a container's PID namespace would be), stdout and stderr read line
//! by line into the pod log, its memory limit enforced ([`super::memory`]).
//!
//! The process gets SIGKILL when the simulator dies, however it dies (`PR_SET_PDEATHSIG`): a job must
//! not outlive the simulator that ran it. Only the container's main process has that signal; a
//! process it forks and that leaves the process group outlives it, as it would outlive a SIGKILL of
//! the group.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustix::process::{
    Pid, Signal, getpid, getppid, kill_process_group, set_parent_process_death_signal,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::env::Environment;
use super::memory;
use crate::workloads::logs::LogWriter;

/// Lines longer than this are split into parts, as the CRI splits long log lines.
const MAX_LINE_BYTES: u64 = 16 * 1024;
/// How long output may still arrive after the process group was killed (a process that left the
/// group may hold the pipes open; it is not waited for longer).
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// containerd's prefix for an error starting the container's process.
const START_ERROR_PREFIX: &str = "failed to create containerd task: failed to create shim task: \
     OCI runtime create failed: runc create failed: unable to start container process: ";

/// What to execute for one container run.
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Environment,
    pub working_dir: PathBuf,
    /// `resources.limits.memory` in bytes.
    pub memory_limit: Option<u64>,
}

/// A started container process.
pub struct ContainerProcess {
    child: Child,
    group: Option<Pid>,
    output: JoinSet<()>,
    memory_limit: Option<u64>,
}

/// How a container process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, 128 + signal when a signal ended it (as containerd reports).
    pub code: i32,
    /// Killed for going over its memory limit.
    pub oom_killed: bool,
}

impl Launch {
    /// Starts the process, its output going to `log` (or nowhere); on failure, the message
    /// containerd would give (the container ends with reason `StartError` and exit code 128).
    pub fn start(&self, log: Option<LogWriter>) -> Result<ContainerProcess, String> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(format!(
                "{START_ERROR_PREFIX}exec: no command specified: unknown"
            ));
        };
        let private = {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.working_dir)
        };
        if let Err(e) = private {
            return Err(format!(
                "{START_ERROR_PREFIX}chdir to cwd (\"{}\") set in config.json failed: {e}: unknown",
                self.working_dir.display()
            ));
        }
        let mut command = Command::new(program);
        command
            .args(args)
            // Only the container's own environment: nothing of the simulator's leaks in.
            .env_clear()
            .envs(self.env.iter())
            .current_dir(&self.working_dir)
            .stdin(Stdio::null())
            .stdout(if log.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if log.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .process_group(0)
            .kill_on_drop(true);
        die_with_the_simulator(&mut command);
        let mut child = command.spawn().map_err(|e| start_error(program, &e))?;
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        let mut output = JoinSet::new();
        if let Some(log) = log {
            let log = Arc::new(log);
            if let Some(stdout) = child.stdout.take() {
                output.spawn(copy_lines(stdout, log.clone()));
            }
            if let Some(stderr) = child.stderr.take() {
                output.spawn(copy_lines(stderr, log));
            }
        }
        Ok(ContainerProcess {
            child,
            group,
            output,
            memory_limit: self.memory_limit,
        })
    }
}

/// Makes the kernel SIGKILL the child when the simulator dies. The death signal is tied to the thread
/// that forked; the kubelet spawns from the runtime's worker threads, which live as long as it does.
#[allow(unsafe_code)]
fn die_with_the_simulator(command: &mut Command) {
    let simulator = getpid();
    // SAFETY: the closure runs in the forked child before exec. It allocates nothing and only makes
    // the prctl and getppid system calls, which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL)).map_err(std::io::Error::from)?;
            // The simulator died between fork and prctl: the signal was never going to come.
            if getppid() != Some(simulator) {
                return Err(std::io::Error::other("the simulator exited"));
            }
            Ok(())
        });
    }
}

/// The message for a failed exec, in runc's words.
fn start_error(program: &str, error: &std::io::Error) -> String {
    let reason = match error.kind() {
        std::io::ErrorKind::NotFound if program.contains('/') => {
            format!("exec: \"{program}\": stat {program}: no such file or directory")
        }
        std::io::ErrorKind::NotFound => {
            format!("exec: \"{program}\": executable file not found in $PATH")
        }
        std::io::ErrorKind::PermissionDenied => format!("exec: \"{program}\": permission denied"),
        _ => format!("exec: \"{program}\": {error}"),
    };
    format!("{START_ERROR_PREFIX}{reason}: unknown")
}

async fn copy_lines(stream: impl AsyncRead + Unpin, log: Arc<LogWriter>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Vec::new();
        match (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => log.append(Bytes::from(line)),
        }
    }
}

impl ContainerProcess {
    /// Waits for the process to exit. When `stop` fires first, the process group gets SIGTERM, and
    /// SIGKILL after `grace()` (asked when the stop comes, since a later request may shorten it).
    /// Over its memory limit, the group gets SIGKILL at once.
    pub async fn wait(
        mut self,
        stop: &CancellationToken,
        grace: impl FnOnce() -> Duration,
    ) -> Exit {
        let mut oom_killed = false;
        let status = tokio::select! {
            status = self.child.wait() => status,
            () = stop.cancelled() => {
                self.signal(Signal::TERM);
                match tokio::time::timeout(grace(), self.child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        self.signal(Signal::KILL);
                        self.child.wait().await
                    }
                }
            }
            () = over_memory_limit(self.group, self.memory_limit) => {
                oom_killed = true;
                self.signal(Signal::KILL);
                self.child.wait().await
            }
        };
        // The container's main process is gone: like a PID namespace, the rest of its tree goes too.
        self.signal(Signal::KILL);
        let drained = tokio::time::timeout(OUTPUT_DRAIN, async {
            while self.output.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.output.abort_all();
        }
        let code = match status {
            Ok(status) => exit_code(status),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for a container process failed");
                137
            }
        };
        Exit { code, oom_killed }
    }

    fn signal(&self, signal: Signal) {
        if let Some(group) = self.group {
            // ESRCH (the group is already gone) is the expected outcome after a clean exit.
            let _ = kill_process_group(group, signal);
        }
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        // A run abandoned mid-way (the kubelet shutting down) leaves nothing behind.
        self.signal(Signal::KILL);
    }
}

/// Returns once the group's resident set exceeds `limit`; never without a limit.
async fn over_memory_limit(group: Option<Pid>, limit: Option<u64>) {
    let (Some(group), Some(limit)) = (group, limit) else {
        return std::future::pending().await;
    };
    let Ok(group) = u32::try_from(group.as_raw_nonzero().get()) else {
        return std::future::pending().await;
    };
    let mut interval = tokio::time::interval(memory::SAMPLE_INTERVAL);
    loop {
        interval.tick().await;
        let rss = tokio::task::spawn_blocking(move || memory::group_rss(group))
            .await
            .unwrap_or(0);
        if rss > limit {
            return;
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::PodLogs;
    use futures::StreamExt;

    fn launch(argv: &[&str]) -> Launch {
        let mut env = Environment::default();
        env.set("PATH", "/usr/local/bin:/usr/bin:/bin".into());
        env.set("GREETING", "hello".into());
        Launch {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env,
            working_dir: std::env::temp_dir(),
            memory_limit: None,
        }
    }

    async fn log_of(logs: &PodLogs) -> String {
        let stream = logs
            .stream(crate::workloads::LogQuery {
                namespace: "ns".into(),
                pod: "p".into(),
                container: "c".into(),
                ..Default::default()
            })
            .expect("log");
        String::from_utf8(stream.collect::<Vec<_>>().await.concat()).expect("utf8")
    }

    #[tokio::test]
    async fn exit_code_and_output() {
        let logs = PodLogs::default();
        let process = launch(&["sh", "-c", "echo $GREETING; echo oops >&2; exit 3"])
            .start(Some(logs.start_run("ns", "p", "c")))
            .expect("start");
        let exit = process
            .wait(&CancellationToken::new(), || Duration::from_secs(1))
            .await;
        assert_eq!(exit.code, 3);
        let text = log_of(&logs).await;
        assert!(
            text.contains("hello\n") && text.contains("oops\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn missing_executable_is_a_start_error() {
        let logs = PodLogs::default();
        let err = launch(&["no-such-binary-here"])
            .start(Some(logs.start_run("ns", "p", "c")))
            .err()
            .expect("error");
        assert_eq!(
            err,
            "failed to create containerd task: failed to create shim task: OCI runtime create \
             failed: runc create failed: unable to start container process: exec: \
             \"no-such-binary-here\": executable file not found in $PATH: unknown"
        );
    }

    #[tokio::test]
    async fn stop_terminates_the_whole_group() {
        let logs = PodLogs::default();
        let process = launch(&["sh", "-c", "sleep 30 & sleep 30; echo never"])
            .start(Some(logs.start_run("ns", "p", "c")))
            .expect("start");
        let stop = CancellationToken::new();
        stop.cancel();
        let exit = tokio::time::timeout(
            Duration::from_secs(10),
            process.wait(&stop, || Duration::from_secs(1)),
        )
        .await
        .expect("stopped in time");
        assert_eq!(exit.code, 128 + 15);
    }

    #[tokio::test]
    async fn a_process_over_its_memory_limit_is_killed() {
        let logs = PodLogs::default();
        let mut launch = launch(&[
            "sh",
            "-c",
            "x=$(head -c 67108864 /dev/zero | tr '\\0' a); sleep 30",
        ]);
        launch.memory_limit = Some(16 * 1024 * 1024);
        let process = launch
            .start(Some(logs.start_run("ns", "p", "c")))
            .expect("start");
        let exit = tokio::time::timeout(
            Duration::from_secs(20),
            process.wait(&CancellationToken::new(), || Duration::from_secs(1)),
        )
        .await
        .expect("killed in time");
        assert_eq!(
            exit,
            Exit {
                code: 137,
                oom_killed: true
            }
        );
    }
}
