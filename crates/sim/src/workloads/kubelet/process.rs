//! One container run as a local process: exec'd directly (no shell), its own process group (so the
//! whole tree can be signalled, as a container's PID namespace would be), stdout and stderr read line
//! by line into the pod log.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::env::Environment;
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
}

/// A started container process.
pub struct ContainerProcess {
    child: Child,
    group: Option<Pid>,
    output: JoinSet<()>,
}

impl Launch {
    /// Starts the process; on failure, the message containerd would give (the container ends with
    /// reason `StartError` and exit code 128).
    pub fn start(&self, log: LogWriter) -> Result<ContainerProcess, String> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(format!(
                "{START_ERROR_PREFIX}exec: no command specified: unknown"
            ));
        };
        if let Err(e) = std::fs::create_dir_all(&self.working_dir) {
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
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| start_error(program, &e))?;
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        let log = Arc::new(log);
        let mut output = JoinSet::new();
        if let Some(stdout) = child.stdout.take() {
            output.spawn(copy_lines(stdout, log.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            output.spawn(copy_lines(stderr, log));
        }
        Ok(ContainerProcess {
            child,
            group,
            output,
        })
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
    /// Waits for the process to exit and returns its exit code (128 + signal when killed by one, as
    /// containerd reports). When `stop` fires first, the process group gets SIGTERM, and SIGKILL
    /// after `grace`.
    pub async fn wait(mut self, stop: &CancellationToken, grace: Duration) -> i32 {
        let status = tokio::select! {
            status = self.child.wait() => status,
            () = stop.cancelled() => {
                self.signal(Signal::TERM);
                match tokio::time::timeout(grace, self.child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        self.signal(Signal::KILL);
                        self.child.wait().await
                    }
                }
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
        match status {
            Ok(status) => exit_code(status),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for a container process failed");
                137
            }
        }
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
            .start(logs.start_run("ns", "p", "c"))
            .expect("start");
        let code = process
            .wait(&CancellationToken::new(), Duration::from_secs(1))
            .await;
        assert_eq!(code, 3);
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
            .start(logs.start_run("ns", "p", "c"))
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
            .start(logs.start_run("ns", "p", "c"))
            .expect("start");
        let stop = CancellationToken::new();
        stop.cancel();
        let code = tokio::time::timeout(
            Duration::from_secs(10),
            process.wait(&stop, Duration::from_secs(1)),
        )
        .await
        .expect("stopped in time");
        assert_eq!(code, 128 + 15);
    }
}
