//! The `tcctl` binary as a user runs it: `run --local` (issue #3's README example and a failing job)
//! and `tcctl up` serving within 10 seconds, reached by a second `tcctl run`.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TCCTL: &str = env!("CARGO_BIN_EXE_tcctl");
const HELLO: &str = "echo hello-from-job; kubectl get nodes -o name";

fn tcctl(args: &[&str]) -> Output {
    Command::new(TCCTL)
        .args(args)
        // Tests run in parallel: never the shared default endpoint.
        .env_remove("TESTCLUSTER_ENDPOINT")
        .output()
        .expect("tcctl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_local_prints_the_jobs_output_and_exits_0() {
    let output = tcctl(&["run", "--local", "--nodes", "3", "--", "sh", "-c", HELLO]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("[runner] hello-from-job"), "{stdout}");
    let nodes = stdout
        .lines()
        .filter(|l| l.starts_with("[runner] node/"))
        .count();
    assert_eq!(nodes, 3, "{stdout}");
    for phase in ["Pending", "Provisioning", "Ready", "Running", "Succeeded"] {
        assert!(
            stderr.contains(&format!("phase {phase}")),
            "{phase}: {stderr}"
        );
    }
}

#[test]
fn run_local_exits_with_the_jobs_exit_code() {
    let output = tcctl(&["run", "--local", "--", "sh", "-c", "exit 3"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("phase Failed (exit code 3"));
}

#[test]
fn run_local_refuses_an_invalid_request_naming_the_field() {
    let output = tcctl(&["run", "--local", "--nodes", "0", "--", "true"]);
    assert_eq!(output.status.code(), Some(tcctl::EXIT_INFRASTRUCTURE));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("spec.nodes"),
        "{stderr}"
    );
}

/// Kills the child on drop, so a failing assertion leaves no suite running.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// `tcctl up` as a child process on free ports, once it printed its endpoint (within 10 s).
/// Its services' metrics ports are the fixed defaults, so these tests run one at a time (the
/// `tcctl-up` group in `.config/nextest.toml`).
struct Up {
    child: Child,
    endpoint: String,
    /// The runner's service-discovery URL, as printed.
    federation: String,
    kubeconfig: std::path::PathBuf,
    /// Where `tcctl up` writes its token, and the other tcctl commands read it.
    token_file: std::path::PathBuf,
    sim_admin: String,
    _dir: tempfile::TempDir,
}

impl Up {
    fn start(extra: &[&str]) -> Up {
        let port = free_port();
        let admin_port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        let token_file = dir.path().join("token");
        let started = Instant::now();
        let mut child = Child(
            Command::new(TCCTL)
                .args(["up", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--sim-admin-listen", &format!("127.0.0.1:{admin_port}")])
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .env("TESTCLUSTER_TOKEN_FILE", &token_file)
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("tcctl up starts"),
        );
        let stdout = child.0.stdout.take().expect("stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let endpoint = loop {
            let left = Duration::from_secs(10).saturating_sub(started.elapsed());
            let line = received
                .recv_timeout(left)
                .expect("tcctl up printed its endpoint within 10 s");
            if let Some(endpoint) = line.strip_prefix("gRPC endpoint:") {
                break endpoint.trim().to_owned();
            }
        };
        assert_eq!(endpoint, format!("http://127.0.0.1:{port}"));
        let federation = loop {
            let line = received
                .recv_timeout(Duration::from_secs(10))
                .expect("tcctl up printed the federation line");
            if let Some(rest) = line.strip_prefix("federation:") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        };
        Up {
            child,
            endpoint,
            federation,
            kubeconfig,
            token_file,
            sim_admin: format!("http://127.0.0.1:{admin_port}"),
            _dir: dir,
        }
    }

    /// Runs another tcctl command against this suite.
    fn tcctl(&self, args: &[&str]) -> Output {
        Command::new(TCCTL)
            .args(args)
            .env("TESTCLUSTER_ENDPOINT", &self.endpoint)
            .env("TESTCLUSTER_SIM_ADMIN", &self.sim_admin)
            .env("TESTCLUSTER_KUBECONFIG", &self.kubeconfig)
            .env("TESTCLUSTER_TOKEN_FILE", &self.token_file)
            .output()
            .expect("tcctl runs")
    }
}

#[test]
fn up_serves_within_10_seconds_and_a_second_tcctl_reaches_it() {
    let up = Up::start(&[]);
    let (endpoint, kubeconfig, token_file, mut child) = (
        up.endpoint.clone(),
        up.kubeconfig.clone(),
        up.token_file.clone(),
        up.child,
    );

    assert!(kubeconfig.exists());
    assert_eq!(up.federation, "http://127.0.0.1:9105/federation/targets");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&token_file)
        .expect("token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is its owner's only");

    // Without the token the broker refuses, and says how to send one.
    let output = Command::new(TCCTL)
        .args(["list"])
        .env("TESTCLUSTER_ENDPOINT", &endpoint)
        .env(
            "TESTCLUSTER_TOKEN_FILE",
            token_file.with_file_name("absent"),
        )
        .output()
        .expect("tcctl list");
    assert_eq!(output.status.code(), Some(tcctl::EXIT_INFRASTRUCTURE));
    assert!(
        text(&output.stderr).contains("no credentials: send `authorization: Bearer TOKEN`"),
        "{}",
        text(&output.stderr)
    );

    let output = Command::new(TCCTL)
        .args([
            "run",
            "--name",
            "second",
            "--",
            "sh",
            "-c",
            "echo second-terminal",
        ])
        .env("TESTCLUSTER_ENDPOINT", &endpoint)
        .env("TESTCLUSTER_TOKEN_FILE", &token_file)
        .output()
        .expect("tcctl run");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("second-terminal"));

    // Logs afterwards, through the broker, in its default namespace.
    let output = Command::new(TCCTL)
        .args(["logs", "second"])
        .env("TESTCLUSTER_ENDPOINT", &endpoint)
        .env("TESTCLUSTER_TOKEN_FILE", &token_file)
        .output()
        .expect("tcctl logs");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("[runner] second-terminal"));

    let output = Command::new(TCCTL)
        .args(["list", "-o", "table"])
        .env("TESTCLUSTER_ENDPOINT", &endpoint)
        .env("TESTCLUSTER_TOKEN_FILE", &token_file)
        .output()
        .expect("tcctl list");
    assert!(
        text(&output.stdout).contains("Succeeded"),
        "{}",
        text(&output.stdout)
    );

    // The printed service discovery answers; the run has ended, so it lists no target.
    assert_eq!(http_get_body(&up.federation), "[]");

    // Ctrl-C stops it cleanly.
    let pid = child.0.id().to_string();
    let signalled = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let status = child.0.wait().expect("tcctl up exits");
    assert_eq!(status.code(), Some(0));
    assert!(!token_file.exists(), "the token goes with the suite");
}

#[test]
fn run_local_without_a_job_returns_once_ready() {
    let output = tcctl(&["run", "--local", "--name", "idle", "--nodes", "1"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("created test-clusters/idle"), "{stderr}");
    assert!(stderr.contains("phase Ready"), "{stderr}");
    assert!(
        stderr.contains("it has no job, so it stays until deleted"),
        "{stderr}"
    );
}

#[test]
fn sigterm_deletes_the_run_and_exits_143() {
    let mut child = Child(
        Command::new(TCCTL)
            .args(["run", "--local", "--name", "cancelled", "--", "sleep", "60"])
            .env_remove("TESTCLUSTER_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcctl run starts"),
    );
    let stderr = child.0.stderr.take().expect("stderr");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen
        .iter()
        .any(|line: &String| line.contains("phase Running"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("the job never ran: {seen:#?}"),
        }
    }
    // What CI sends when a job is cancelled.
    let signalled = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "tcctl still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The rest of its stderr (the reader ends at its end).
    while let Ok(line) = received.recv_timeout(Duration::from_secs(5)) {
        seen.push(line);
    }
    assert_eq!(status.code(), Some(tcctl::EXIT_TERMINATED), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|line| line.contains("interrupted; deleting test-clusters/cancelled")),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|line| line.contains("delete failed")),
        "{seen:#?}"
    );
}

#[test]
fn up_with_a_stockout_ends_a_run_in_that_zone_in_error_and_faults_change_at_runtime() {
    let up = Up::start(&["--stockout", "europe-west2-b"]);
    let output = up.tcctl(&[
        "run",
        "--name",
        "scarce",
        "--location",
        "europe-west2-b",
        "--",
        "true",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(tcctl::EXIT_INFRASTRUCTURE),
        "{stderr}"
    );
    assert!(stderr.contains("phase Error"), "{stderr}");
    assert!(stderr.contains("ZoneStockout"), "{stderr}");
    assert!(
        stderr.contains(
            "Google Compute Engine does not have enough resources available to fulfill request: \
             europe-west2-b."
        ),
        "{stderr}"
    );

    // The settings as the simulator holds them, then changed while it runs: the stockout moves.
    let shown = up.tcctl(&["faults", "show"]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let settings: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(settings["zones"]["europe-west2-b"]["stockout"], true);
    let set = up.tcctl(&["faults", "set", "--stockout", "europe-west2-a"]);
    assert_eq!(set.status.code(), Some(0), "{}", text(&set.stderr));
    let settings: serde_json::Value = serde_json::from_slice(&set.stdout).expect("JSON");
    assert_eq!(settings["zones"]["europe-west2-a"]["stockout"], true);
    assert!(
        settings["zones"].get("europe-west2-b").is_none(),
        "{settings}"
    );
    let output = up.tcctl(&[
        "run",
        "--name",
        "plenty",
        "--location",
        "europe-west2-b",
        "--",
        "echo",
        "ran",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("ran"));

    // Without the admin token, nothing changes.
    let wrong = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(wrong.path(), "users: [{name: x, user: {token: guess}}]\n").expect("write");
    let refused = Command::new(TCCTL)
        .args(["faults", "--kubeconfig"])
        .arg(wrong.path())
        .arg("clear")
        .env("TESTCLUSTER_SIM_ADMIN", &up.sim_admin)
        .output()
        .expect("tcctl runs");
    assert_eq!(refused.status.code(), Some(tcctl::EXIT_INFRASTRUCTURE));
    assert!(
        text(&refused.stderr).contains("401 Unauthorized"),
        "{}",
        text(&refused.stderr)
    );
}

/// The body of a plain HTTP/1.1 GET of `url` (`http://HOST:PORT/PATH`).
fn http_get_body(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (address, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}
