//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Used when a command is given without an image (and none is in the manifest): it has `sh` and
/// `kubectl`, which is what a quick job against a test cluster needs.
pub const DEFAULT_IMAGE: &str = "bitnami/kubectl:latest";
/// The broker `tcctl up` serves and every other command reaches by default.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";

/// Dedicated GKE test clusters for CI: request one, run a job on it, follow its logs.
#[derive(Debug, Parser)]
#[command(name = "tcctl", version, about)]
pub struct Cli {
    /// The broker's gRPC endpoint.
    #[arg(long, global = true, env = "TESTCLUSTER_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,

    /// Namespace of the test clusters [default: for run, the manifest's; else the broker's default
    /// (test-clusters unless configured otherwise)].
    #[arg(long, short = 'n', global = true, env = "TESTCLUSTER_NAMESPACE")]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub credentials: CredentialArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// How tcctl proves who it is to the broker (see `tcctl::credentials`): `--token`, else a GitHub
/// Actions OIDC token when run in Actions, else the token `tcctl up` wrote.
#[derive(Debug, Args)]
pub struct CredentialArgs {
    /// Bearer token for the broker, such as a static token [default: a GitHub Actions OIDC token in
    /// a job with `id-token: write`, else the one in --token-file].
    #[arg(long, global = true, env = "TESTCLUSTER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// File holding the token, used when neither --token nor GitHub Actions gives one; `tcctl up`
    /// writes its token there (mode 0600) and removes it when it stops.
    #[arg(long, global = true, env = "TESTCLUSTER_TOKEN_FILE", default_value_os_t = crate::credentials::default_token_file())]
    pub token_file: PathBuf,

    /// Audience of the GitHub Actions OIDC token tcctl asks for: the broker's --oidc-audience.
    #[arg(
        long,
        global = true,
        env = "TESTCLUSTER_OIDC_AUDIENCE",
        default_value = "testcluster"
    )]
    pub oidc_audience: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a test cluster with a job, follow it, and exit with the job's exit code. Without a job:
    /// create one, wait until it is Ready and leave it (delete it with `tcctl delete`).
    Run(Box<RunArgs>),
    /// Show one test cluster.
    Get(GetArgs),
    /// List test clusters.
    List(ListArgs),
    /// Print a test cluster's phase changes until it finishes.
    Watch(NameArgs),
    /// Print a test cluster's job logs.
    Logs(LogsArgs),
    /// Delete a test cluster (its cloud resources go with it).
    Delete(NameArgs),
    /// Keep a test cluster longer: move the end of its TTL (or, after a failed run with
    /// --hold-on-failure, of its hold) later, up to the operator's maximum.
    Extend(ExtendArgs),
    /// Write a short-lived kubeconfig for the test cluster itself (mode 0600), for a cluster
    /// without a job or a failed run's held one: `KUBECONFIG=NAME.kubeconfig kubectl get nodes`.
    Kubeconfig(KubeconfigArgs),
    /// Run the whole suite on this machine: the simulator and all four services, until Ctrl-C.
    /// Faults can be on from the start (`--stockout europe-west2-b`) or changed while it runs
    /// (`tcctl faults`).
    Up(Box<UpArgs>),
    /// Show or change the simulator's faults while `tcctl up` runs: make a zone run out of
    /// capacity, shrink a quota, slow the cloud down, make the API server fail or drop watches.
    Faults(FaultsArgs),
}

/// `tcctl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Start the suite in-process (as `tcctl up` does), run this one request against it, stop.
    #[arg(long)]
    pub local: bool,

    /// A TestClusterGKE manifest (seed format); flags given as well override its fields.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,

    /// Name of the test cluster.
    #[arg(long, conflicts_with = "name_prefix")]
    pub name: Option<String>,

    /// Prefix of a generated name [default: run-, when neither name nor a manifest gives one].
    #[arg(long)]
    pub name_prefix: Option<String>,

    /// Configuration template [default: basic].
    #[arg(long)]
    pub template: Option<String>,

    /// Number of nodes [default: 2].
    #[arg(long)]
    pub nodes: Option<i32>,

    /// GCE machine type [default: n1-standard-4].
    #[arg(long)]
    pub machine_type: Option<String>,

    /// GCP project [default: the provisioner's].
    #[arg(long)]
    pub project: Option<String>,

    /// GCP zone or region [default: the provisioner's].
    #[arg(long)]
    pub location: Option<String>,

    /// GCP region [default: derived from the location].
    #[arg(long)]
    pub region: Option<String>,

    /// Kubernetes version of the test cluster.
    #[arg(long)]
    pub kubernetes_version: Option<String>,

    /// Longest life of the test cluster, such as 2h [default: the operator's, 3h].
    #[arg(long)]
    pub ttl: Option<String>,

    /// Keep the cluster this long after a failed job, such as 30m, to get in with
    /// `tcctl kubeconfig` [default: no hold].
    #[arg(long)]
    pub hold_on_failure: Option<String>,

    /// How long the job may run before it fails with DeadlineExceeded, such as 45m
    /// [default: the operator's, 1h].
    #[arg(long)]
    pub deadline: Option<String>,

    /// Image of the job's runner container [default with a command: bitnami/kubectl:latest].
    #[arg(long, env = "TESTCLUSTER_IMAGE")]
    pub image: Option<String>,

    /// Image of an init container run before the runner.
    #[arg(long)]
    pub init_image: Option<String>,

    /// Environment variable of the runner, NAME=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,

    /// File whose content becomes the init manifest (ConfigMap key init-manifest).
    #[arg(long)]
    pub init_manifest: Option<PathBuf>,

    /// Label of the test cluster, KEY=VALUE (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,

    /// Free-form description.
    #[arg(long)]
    pub description: Option<String>,

    /// With --local: where to write the simulated management cluster's kubeconfig.
    #[arg(long, requires = "local")]
    pub kubeconfig: Option<PathBuf>,

    /// The job's command and arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A test cluster by name.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Name of the test cluster.
    pub name: String,
}

/// `tcctl extend`.
#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// Name of the test cluster.
    pub name: String,

    /// How much longer, such as 30m or 2h.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub by: std::time::Duration,
}

/// `tcctl kubeconfig`.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Name of the test cluster.
    pub name: String,

    /// Where to write it [default: NAME.kubeconfig in the current directory]; `-` prints it.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// `tcctl get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Name of the test cluster.
    pub name: String,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
}

/// `tcctl list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// All namespaces.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,

    /// Label selector, such as ci.cilium.io/github-commit-hash=abc.
    #[arg(long, short = 'l')]
    pub selector: Option<String>,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `tcctl logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Name of the test cluster.
    pub name: String,

    /// Keep streaming until the job finished.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// Where `tcctl up` serves the simulator's fault settings, and `tcctl faults` reaches them.
pub const DEFAULT_SIM_ADMIN_LISTEN: &str = "127.0.0.1:50060";

/// Where `tcctl up` writes the management cluster's kubeconfig, and `tcctl faults` finds its token.
pub fn default_up_kubeconfig() -> PathBuf {
    std::env::temp_dir().join("testcluster-up.kubeconfig")
}

/// The metrics stack `tcctl up` installs into every test cluster: this checkout's
/// `deploy/k8s/metrics-stack`.
pub fn default_metrics_stack() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/k8s/metrics-stack"
    ))
}

/// `tcctl up`.
#[derive(Debug, Args)]
#[command(
    after_help = "Federation: every Ready test cluster gets the metrics stack (a Prometheus, \
from --metrics-stack); the runner lists the live ones for Prometheus at the printed \
service-discovery URL (http_sd_configs) and proxies each one's /federate. For that Prometheus to \
run, map its image to Debian's binary: \
--image-map quay.io/prometheus/prometheus=/usr/bin/prometheus. deploy/k8s/federation has the \
central Prometheus's scrape configuration."
)]
pub struct UpArgs {
    /// Address of the broker's gRPC server.
    #[arg(long, env = "TESTCLUSTER_UP_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Where to write the simulated management cluster's kubeconfig (mode 0600).
    #[arg(long, env = "TESTCLUSTER_KUBECONFIG", default_value_os_t = default_up_kubeconfig())]
    pub kubeconfig: PathBuf,

    /// Where to serve the simulator's fault settings (`tcctl faults`).
    #[arg(long, default_value = DEFAULT_SIM_ADMIN_LISTEN)]
    pub sim_admin_listen: SocketAddr,

    /// The directory of manifests the runner installs into every Ready test cluster (the
    /// metrics stack); `--metrics-stack ''` installs none.
    #[arg(long, env = "TESTCLUSTER_RUNNER_METRICS_STACK", default_value_os_t = default_metrics_stack())]
    pub metrics_stack: PathBuf,

    /// Where the runner serves Prometheus service discovery (/federation/targets) and each live
    /// test cluster's /federate proxy.
    #[arg(long, env = "TESTCLUSTER_RUNNER_FEDERATION_LISTEN", default_value = testcluster_runner::federation::DEFAULT_LISTEN)]
    pub federation_listen: SocketAddr,

    #[command(flatten)]
    pub sim: testcluster_sim::admin::SimFlags,

    /// GitHub API for commit statuses of runs whose request carries GitHub metadata, such as a
    /// local test server (http://127.0.0.1:8080) or https://api.github.com. Needs --github-token.
    #[arg(long, env = "TESTCLUSTER_GITHUB_API_URL", requires = "github_token")]
    pub github_api_url: Option<String>,

    /// Token for --github-api-url (stored in the Secret testcluster-system/github-token).
    #[arg(
        long,
        env = "TESTCLUSTER_GITHUB_TOKEN",
        hide_env_values = true,
        requires = "github_api_url"
    )]
    pub github_token: Option<String>,

    /// How long finished runs (TestClusterGKE, Job, pods) are kept as records, such as 10m.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub record_retention: std::time::Duration,

    /// TTLs, holds and job deadlines of the suite's test clusters (try --default-ttl 2m).
    #[command(flatten)]
    pub lifetimes: testcluster_service::cli::LifetimeArgs,
}

/// `tcctl faults`.
#[derive(Debug, Args)]
pub struct FaultsArgs {
    /// The simulator's fault endpoint, as `tcctl up` serves it.
    #[arg(long, env = "TESTCLUSTER_SIM_ADMIN", default_value_t = format!("http://{DEFAULT_SIM_ADMIN_LISTEN}"))]
    pub sim_admin: String,

    /// The kubeconfig `tcctl up` wrote: its token is the simulator's admin token.
    #[arg(long, env = "TESTCLUSTER_KUBECONFIG", default_value_os_t = default_up_kubeconfig())]
    pub kubeconfig: PathBuf,

    #[command(subcommand)]
    pub action: FaultsAction,
}

#[derive(Debug, Subcommand)]
pub enum FaultsAction {
    /// Print the fault settings now in force.
    Show,
    /// Replace every fault setting with these (flags not given are off), e.g.
    /// `tcctl faults set --stockout europe-west2-b`.
    Set(testcluster_sim::admin::FaultFlags),
    /// Turn every fault off.
    Clear,
    /// Close every watch open now, as an API server restart would.
    DropWatches,
}

/// How `get` and `list` print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per test cluster.
    Table,
    /// Proto3 JSON.
    Json,
    /// Proto3 JSON as YAML.
    Yaml,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_takes_the_command_after_the_separator() {
        let cli = Cli::try_parse_from([
            "tcctl", "run", "--local", "--nodes", "3", "--env", "A=b=c", "--", "sh", "-c",
            "echo hi",
        ])
        .expect("parses");
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert!(run.local);
        assert_eq!(run.nodes, Some(3));
        assert_eq!(run.env, vec![("A".to_owned(), "b=c".to_owned())]);
        assert_eq!(run.command, vec!["sh", "-c", "echo hi"]);
    }

    #[test]
    fn name_and_prefix_conflict() {
        assert!(
            Cli::try_parse_from(["tcctl", "run", "--name", "a", "--name-prefix", "b"]).is_err()
        );
        assert!(Cli::try_parse_from(["tcctl", "run", "--env", "novalue"]).is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
