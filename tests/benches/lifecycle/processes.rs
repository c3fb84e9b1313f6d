//! The simulator and the four services, each as its own child process, wired together by flags as
//! `tcctl up` wires them in one process: one kubeconfig for the management cluster, the
//! provisioner's and logview's gRPC endpoints for the broker, the simulator's metadata server for
//! the provisioner. Every child is killed when [`Processes`] is dropped, on error too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tcctl::suite::NAMESPACE;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::sim_metrics::SimMetrics;

/// How long a child may take to start serving (debug binaries start slowly on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Log filter for the children: warnings and errors only, so that a long run's logs stay small.
const CHILD_LOG: &str = "warn";

/// One of the four services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    Broker,
    Provisioner,
    Runner,
    Logview,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Broker,
        Service::Provisioner,
        Service::Runner,
        Service::Logview,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Broker => "broker",
            Service::Provisioner => "provisioner",
            Service::Runner => "runner",
            Service::Logview => "logview",
        }
    }

    fn binary(self) -> String {
        format!("testcluster-{}", self.name())
    }
}

/// The simulated cloud's delays, passed to the simulator's flags.
#[derive(Clone, Copy, Debug)]
pub struct CloudDelays {
    pub cluster_create: Duration,
    pub node_pool_create: Duration,
    pub other_create: Duration,
    pub delete: Duration,
}

impl CloudDelays {
    /// The least time a `basic` cluster takes to become ready: its objects are created in
    /// dependency order, network, subnetwork, ContainerCluster, node pool (the IAM objects the pool
    /// also waits for are made alongside the network).
    pub fn create_path(&self) -> Duration {
        2 * self.other_create + self.cluster_create + self.node_pool_create
    }
}

/// The running children. Field order is drop order: the services go before the simulator.
pub struct Processes {
    services: BTreeMap<Service, Child>,
    sim: Child,
    /// The broker's gRPC endpoint, such as `http://127.0.0.1:40123`.
    pub broker_endpoint: String,
    /// The simulator's `/metrics`.
    pub sim_metrics: SimMetrics,
    /// Where the binaries were found.
    pub binaries: PathBuf,
    /// Children's stderr logs and the kubeconfig; removed with the processes.
    dir: tempfile::TempDir,
}

impl Processes {
    /// Starts the simulator, installs the CRD and the namespace, then the services, and returns
    /// once each serves. `max_open_streams` is the broker's `--max-open-streams`.
    pub async fn start(delays: CloudDelays, max_open_streams: usize) -> anyhow::Result<Processes> {
        let binaries = binary_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("testcluster-bench-")
            .tempdir()
            .context("creating a temporary directory")?;
        let kubeconfig = dir.path().join("kubeconfig");

        let mut sim = command(&binaries, "testcluster-sim", dir.path())?;
        sim.arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--log", CHILD_LOG])
            .stdout(Stdio::piped());
        for (flag, delay) in [
            ("--cluster-create-delay", delays.cluster_create),
            ("--node-pool-create-delay", delays.node_pool_create),
            ("--other-create-delay", delays.other_create),
            ("--delete-delay", delays.delete),
        ] {
            sim.arg(flag)
                .arg(humantime::format_duration(delay).to_string());
        }
        let mut sim = sim.spawn().context("starting testcluster-sim")?;
        let stdout = sim.stdout.take().context("the simulator's stdout")?;
        let printed = tokio::time::timeout(START_TIMEOUT, sim_addresses(stdout)).await;
        let (metadata_host, sim_metrics) = match printed {
            Ok(Ok(addresses)) => addresses,
            Ok(Err(error)) => return Err(exited(&mut sim, "testcluster-sim", dir.path(), error)),
            Err(_) => bail!("testcluster-sim printed no addresses within {START_TIMEOUT:?}"),
        };
        let client = testcluster_service::kube_client(Some(&kubeconfig)).await?;
        tcctl::suite::install(&client).await?;

        let [provisioner, logview, broker, metrics @ ..] = free_ports::<7>()?;
        let mut services = BTreeMap::new();
        for (service, metrics) in Service::ALL.into_iter().zip(metrics) {
            let mut command = command(&binaries, &service.binary(), dir.path())?;
            command
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--metrics-listen")
                .arg(metrics.to_string());
            match service {
                // Plaintext on loopback: the bench measures the lifecycle, not TLS.
                Service::Provisioner => command
                    .arg("--plaintext")
                    .arg("--listen")
                    .arg(provisioner.to_string())
                    .args(["--metadata-host", metadata_host.as_str()]),
                Service::Logview => command
                    .arg("--plaintext")
                    .arg("--listen")
                    .arg(logview.to_string()),
                // Port 0: the bench reads no federation, and must not collide with a `tcctl up`.
                Service::Runner => command.args(["--federation-listen", "127.0.0.1:0"]),
                Service::Broker => command
                    .arg("--listen")
                    .arg(broker.to_string())
                    .arg("--provisioner-endpoint")
                    .arg(format!("http://{provisioner}"))
                    .arg("--logview-endpoint")
                    .arg(format!("http://{logview}"))
                    .args(["--default-namespace", NAMESPACE])
                    // The bench measures the lifecycle, not authentication: its broker is on
                    // loopback and lets its one client in without a token.
                    .arg("--allow-unauthenticated")
                    // Nor per-caller rates: its one client stands for many CI jobs.
                    .args(["--rate-per-caller", "0"])
                    .arg("--max-open-streams")
                    .arg(max_open_streams.to_string()),
            };
            let child = command
                .spawn()
                .with_context(|| format!("starting {}", service.binary()))?;
            services.insert(service, child);
        }
        let mut processes = Processes {
            services,
            sim,
            broker_endpoint: format!("http://{broker}"),
            sim_metrics: SimMetrics::new(sim_metrics),
            binaries,
            dir,
        };
        // The runner serves no gRPC; the first lifecycle (a warm-up) shows it works.
        for address in [provisioner, logview, broker] {
            if let Err(error) = processes.wait_serving(address).await {
                return Err(processes.explain(error));
            }
        }
        Ok(processes)
    }

    /// Waits until a child listens on `address` (it binds only once connected to the management
    /// cluster), then until its gRPC health says SERVING; fails early when a child exits.
    async fn wait_serving(&mut self, address: SocketAddr) -> anyhow::Result<()> {
        /// How often to try to connect: start-up takes a few hundred milliseconds.
        const RETRY: Duration = Duration::from_millis(20);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(address).await.is_err() {
            if tokio::time::Instant::now() >= deadline {
                bail!("nothing listens on {address} after {START_TIMEOUT:?}");
            }
            if self.any_exited() {
                bail!("a child exited before listening on {address}");
            }
            tokio::time::sleep(RETRY).await;
        }
        tcctl::suite::wait_serving(&format!("http://{address}"), START_TIMEOUT).await
    }

    fn any_exited(&mut self) -> bool {
        self.services
            .values_mut()
            .chain([&mut self.sim])
            .any(|child| matches!(child.try_wait(), Ok(Some(_))))
    }

    /// A service's resident set (VmRSS) in MiB.
    pub fn rss_mib(&self, service: Service) -> anyhow::Result<f64> {
        let pid = self
            .services
            .get(&service)
            .and_then(Child::id)
            .with_context(|| format!("{} is not running", service.binary()))?;
        rss_mib(pid)
    }

    /// The simulator's VmRSS in MiB (no target: it plays the whole cloud, test clusters included).
    pub fn sim_rss_mib(&self) -> anyhow::Result<f64> {
        rss_mib(self.sim.id().context("testcluster-sim is not running")?)
    }

    /// Every service's VmRSS in MiB.
    pub fn all_rss_mib(&self) -> anyhow::Result<BTreeMap<Service, f64>> {
        Service::ALL
            .into_iter()
            .map(|service| Ok((service, self.rss_mib(service)?)))
            .collect()
    }

    /// CPU time (user and system) each process has used so far, in seconds, by binary name.
    pub fn cpu_seconds(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let mut used = BTreeMap::new();
        for (name, child) in self
            .services
            .iter()
            .map(|(service, child)| (service.binary(), child))
            .chain([("testcluster-sim".to_owned(), &self.sim)])
        {
            let pid = child
                .id()
                .with_context(|| format!("{name} is not running"))?;
            used.insert(name, cpu_seconds(pid)?);
        }
        Ok(used)
    }

    /// `error`, or which child exited (with the end of its log) when one did: the likelier cause.
    pub fn explain(&mut self, error: anyhow::Error) -> anyhow::Error {
        for (service, child) in &mut self.services {
            if let Ok(Some(_)) = child.try_wait() {
                return exited(child, &service.binary(), self.dir.path(), error);
            }
        }
        if let Ok(Some(_)) = self.sim.try_wait() {
            return exited(&mut self.sim, "testcluster-sim", self.dir.path(), error);
        }
        error
    }
}

/// The directory of the binaries built with this bench's profile: the bench runs from
/// `<target dir>/<profile>/deps/`, and cargo puts the binaries one level up.
fn binary_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .with_context(|| format!("no target directory above {}", exe.display()))
}

/// A command for `binary` in `dir`, its stderr into `<logs>/<binary>.log`, killed when dropped.
fn command(dir: &Path, binary: &str, logs: &Path) -> anyhow::Result<Command> {
    let path = dir.join(binary);
    if !path.is_file() {
        let release = if dir.ends_with("release") {
            " --release"
        } else {
            ""
        };
        bail!(
            "{} is missing; build the binaries first: cargo build{release} --bins -p \
             testcluster-sim -p testcluster-broker -p testcluster-provisioner -p \
             testcluster-runner -p testcluster-logview",
            path.display()
        );
    }
    let log = std::fs::File::create(logs.join(format!("{binary}.log")))
        .with_context(|| format!("creating {binary}'s log"))?;
    let mut command = Command::new(path);
    command
        .env("RUST_LOG", CHILD_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    Ok(command)
}

/// Reads what the simulator prints when it has started: the metadata server's `host:port` and
/// the `/metrics` address. The rest of its stdout is drained, so that it never blocks on a full
/// pipe.
async fn sim_addresses(stdout: ChildStdout) -> anyhow::Result<(String, SocketAddr)> {
    let mut lines = BufReader::new(stdout).lines();
    let mut metadata_host = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(host) = line.strip_prefix("metadata host:") {
            metadata_host = Some(host.trim().to_owned());
        } else if let Some(url) = line.strip_prefix("metrics:") {
            let address = url
                .trim()
                .trim_start_matches("http://")
                .trim_end_matches("/metrics");
            let address = address
                .parse()
                .with_context(|| format!("the simulator's metrics address {address:?}"))?;
            let metadata_host = metadata_host.context("no metadata host printed")?;
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((metadata_host, address));
        }
    }
    bail!("the simulator's output ended before its metrics address")
}

/// `N` distinct loopback addresses with ports free now (all held until all are chosen). Another
/// process could take one before the child binds it; the child would then fail loudly.
fn free_ports<const N: usize>() -> anyhow::Result<[SocketAddr; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let addresses = listeners
        .iter()
        .map(|listener| listener.local_addr())
        .collect::<std::io::Result<Vec<_>>>()?;
    addresses
        .try_into()
        .map_err(|_| anyhow::anyhow!("{N} ports expected"))
}

/// `error` with the child's exit status and the end of its log.
fn exited(child: &mut Child, binary: &str, logs: &Path, error: anyhow::Error) -> anyhow::Error {
    /// Enough of a log to show why a child stopped.
    const TAIL: usize = 4096;
    let status = child
        .try_wait()
        .ok()
        .flatten()
        .map_or("is still running".to_owned(), |s| format!("exited ({s})"));
    let log = std::fs::read_to_string(logs.join(format!("{binary}.log"))).unwrap_or_default();
    let tail = &log[log.floor_char_boundary(log.len().saturating_sub(TAIL))..];
    error.context(format!("{binary} {status}; the end of its log:\n{tail}"))
}

/// Clock ticks per second of `/proc/<pid>/stat` times: USER_HZ, 100 on Linux.
const USER_HZ: f64 = 100.0;

/// User and system CPU time of process `pid` in seconds, from `/proc/<pid>/stat` (fields 14 and
/// 15, counted after the command name, which may contain spaces).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        let field = fields
            .get(index)
            .with_context(|| format!("{path}: too few fields"))?;
        Ok(field.parse::<f64>()?)
    };
    // After the command name: state is field 3, so utime (14) and stime (15) are 11 and 12.
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

/// VmRSS of process `pid` in MiB, from `/proc/<pid>/status`.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kib / 1024.0)
}
