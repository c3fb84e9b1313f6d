//! The command line every service binary shares: its common flags and the start-up they drive.
//!
//! Each binary flattens [`CommonArgs`] into its own `clap::Parser`, parses with [`parse`] and then
//! calls [`CommonArgs::start`], so its `main.rs` declares only the flags that are its own.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::telemetry::{self, LogFormat};

/// Flags every service has. Their environment fallbacks differ per service (see [`CommonEnv`]), so
/// they are attached by [`parse`] rather than declared here.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Kubeconfig of the management cluster; default: KUBECONFIG, ~/.kube/config or in-cluster.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Log format on stderr: text for terminals, json in a cluster.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,

    /// Address of the HTTP server for Prometheus `/metrics` and the `/healthz` liveness probe.
    #[arg(long)]
    pub metrics_listen: SocketAddr,
}

/// The environment variables a service reads for [`CommonArgs`]' flags when they are not given.
#[derive(Clone, Copy, Debug)]
pub struct CommonEnv {
    /// Fallback for `--kubeconfig`.
    pub kubeconfig: &'static str,
    /// Fallback for `--log-format`.
    pub log_format: &'static str,
    /// Fallback for `--metrics-listen`.
    pub metrics_listen: &'static str,
    /// Default of `--metrics-listen`: each service has its own port, so that `tcctl up` and a
    /// machine running several services need no flags.
    pub default_metrics_listen: &'static str,
}

/// Parses the process's arguments into `A`, which flattens [`CommonArgs`], with `env` as the
/// environment fallbacks of the common flags. Exits with clap's message on bad arguments and
/// `--help`, as `A::parse()` would.
pub fn parse<A: Parser>(env: CommonEnv) -> A {
    let mut command = command_with_env::<A>(env);
    let mut matches = command.clone().get_matches();
    A::from_arg_matches_mut(&mut matches).unwrap_or_else(|error| error.format(&mut command).exit())
}

/// Parses `args` as [`parse`] parses the process's arguments; for tests of a binary's flags.
pub fn try_parse_from<A: Parser>(
    env: CommonEnv,
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<A, clap::Error> {
    let mut matches = command_with_env::<A>(env).try_get_matches_from(args)?;
    A::from_arg_matches_mut(&mut matches)
}

/// `A`'s command, with `env` attached to the common flags.
fn command_with_env<A: CommandFactory>(env: CommonEnv) -> clap::Command {
    A::command()
        .mut_arg("kubeconfig", |arg| arg.env(env.kubeconfig))
        .mut_arg("log_format", |arg| arg.env(env.log_format))
        // The field has no default of its own (it differs per service): not required once it has one.
        .mut_arg("metrics_listen", |arg| {
            arg.env(env.metrics_listen)
                .default_value(env.default_metrics_listen)
                .required(false)
        })
}

/// The lifetimes of test clusters (`testcluster_resources::lifetime`): the broker extends with
/// them, the provisioner enforces them, the runner bounds its Jobs with them. The same environment
/// variables serve all three, so one setting configures the suite.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct LifetimeArgs {
    /// TTL of a test cluster whose spec has none, such as 3h: at its end the cloud resources go.
    #[arg(long, env = "TESTCLUSTER_DEFAULT_TTL", default_value = "3h", value_parser = humantime::parse_duration)]
    pub default_ttl: std::time::Duration,
    /// The longest TTL, extensions included, counted from creation; longer requests are cut.
    #[arg(long, env = "TESTCLUSTER_MAX_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_ttl: std::time::Duration,
    /// The longest hold of a failed run's cluster (spec.holdOnFailure), extensions included.
    #[arg(long, env = "TESTCLUSTER_MAX_HOLD", default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_hold: std::time::Duration,
    /// Deadline of a test job whose spec has none (the Job's activeDeadlineSeconds).
    #[arg(long, alias = "job-deadline", env = "TESTCLUSTER_DEFAULT_JOB_DEADLINE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub default_job_deadline: std::time::Duration,
    /// The longest job deadline (spec.jobSpec.deadline); longer requests are cut.
    #[arg(long, env = "TESTCLUSTER_MAX_JOB_DEADLINE", default_value = "6h", value_parser = humantime::parse_duration)]
    pub max_job_deadline: std::time::Duration,
}

impl Default for LifetimeArgs {
    fn default() -> Self {
        testcluster_resources::lifetime::Lifetimes::default().into()
    }
}

impl From<testcluster_resources::lifetime::Lifetimes> for LifetimeArgs {
    fn from(lifetimes: testcluster_resources::lifetime::Lifetimes) -> Self {
        LifetimeArgs {
            default_ttl: lifetimes.default_ttl,
            max_ttl: lifetimes.max_ttl,
            max_hold: lifetimes.max_hold,
            default_job_deadline: lifetimes.default_job_deadline,
            max_job_deadline: lifetimes.max_job_deadline,
        }
    }
}

impl LifetimeArgs {
    pub fn lifetimes(&self) -> testcluster_resources::lifetime::Lifetimes {
        testcluster_resources::lifetime::Lifetimes {
            default_ttl: self.default_ttl,
            max_ttl: self.max_ttl,
            max_hold: self.max_hold,
            default_job_deadline: self.default_job_deadline,
            max_job_deadline: self.max_job_deadline,
        }
    }
}

/// What a started service runs with.
pub struct Started {
    /// Client of the management cluster.
    pub client: kube::Client,
    /// Cancelled on SIGINT or SIGTERM.
    pub shutdown: CancellationToken,
    /// The service's metrics, served on `--metrics-listen` until shutdown.
    pub metrics: Metrics,
}

impl CommonArgs {
    /// Sets up the process (logging, rustls' crypto provider, shutdown on a signal), starts serving
    /// `/metrics` and `/healthz`, and connects to the management cluster.
    pub async fn start(&self) -> anyhow::Result<Started> {
        telemetry::init(self.log_format);
        crate::install_crypto();
        let shutdown = crate::shutdown::on_signal();
        let metrics = Metrics::new();
        let listener = crate::grpc::bind(self.metrics_listen).await?;
        tokio::spawn(serve_metrics(listener, metrics.clone(), shutdown.clone()));
        let client = crate::kube_client(self.kubeconfig.as_deref())
            .await
            .context("connecting to the management cluster")?;
        Ok(Started {
            client,
            shutdown,
            metrics,
        })
    }
}

/// Serves the metrics until shutdown. A failure of the metrics server is logged rather than
/// fatal: the service itself still works.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    if let Err(error) = crate::metrics::http::serve(listener, metrics, shutdown).await {
        tracing::error!(%error, "the metrics server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        common: CommonArgs,
    }

    const ENV: CommonEnv = CommonEnv {
        kubeconfig: "TESTCLUSTER_TEST_KUBECONFIG",
        log_format: "TESTCLUSTER_TEST_LOG_FORMAT",
        metrics_listen: "TESTCLUSTER_TEST_METRICS_LISTEN",
        default_metrics_listen: "127.0.0.1:9199",
    };

    fn parse_from(args: &[&str]) -> Args {
        try_parse_from(ENV, args).expect("parse")
    }

    #[test]
    fn the_common_flags_fall_back_to_the_services_environment() {
        let command = command_with_env::<Args>(ENV);
        let envs: Vec<_> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .collect();
        assert_eq!(envs, [ENV.kubeconfig, ENV.log_format, ENV.metrics_listen]);
        command.debug_assert();
    }

    #[test]
    fn the_common_flags_parse() {
        let args = parse_from(&[
            "test",
            "--kubeconfig",
            "/k",
            "--log-format",
            "json",
            "--metrics-listen",
            "0.0.0.0:9000",
        ]);
        assert_eq!(args.common.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(args.common.log_format, LogFormat::Json);
        assert_eq!(
            args.common.metrics_listen,
            SocketAddr::from(([0, 0, 0, 0], 9000))
        );
        let args = parse_from(&["test"]);
        assert_eq!(args.common.log_format, LogFormat::Text);
        assert_eq!(
            args.common.metrics_listen,
            SocketAddr::from(([127, 0, 0, 1], 9199))
        );
    }
}
