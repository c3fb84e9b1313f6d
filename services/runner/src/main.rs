//! `testcluster-runner`: runs the test job of every ready test cluster.

use std::time::Duration;

use clap::Parser;
use service::cli::{CommonArgs, CommonEnv, Started};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Runs the test job of every ready TestClusterGKE and records its outcome"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// URL of the provisioner's internal gRPC server.
    #[arg(
        long,
        env = "TESTCLUSTER_RUNNER_PROVISIONER",
        default_value = "http://127.0.0.1:50052"
    )]
    provisioner: String,
    /// How long a test job may run, such as 3600, 90m or 2h.
    #[arg(long, env = "TESTCLUSTER_RUNNER_JOB_DEADLINE", default_value = "1h", value_parser = parse_duration)]
    job_deadline: Duration,
    /// How long a job's container may fail to start (image pull errors, a missing ConfigMap)
    /// before the run is failed, such as 300, 5m or 1h.
    #[arg(long, env = "TESTCLUSTER_RUNNER_START_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    start_timeout: Duration,
    /// Only run jobs of test clusters in this namespace (default: all namespaces).
    #[arg(long, env = "TESTCLUSTER_RUNNER_NAMESPACE")]
    namespace: Option<String>,
}

const ENV: CommonEnv = CommonEnv {
    kubeconfig: "TESTCLUSTER_RUNNER_KUBECONFIG",
    log_format: "TESTCLUSTER_RUNNER_LOG_FORMAT",
};

/// Seconds, or a number with one of the suffixes s, m, h.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?}"))?;
    let seconds = match unit {
        's' => number,
        'm' => number.saturating_mul(60),
        'h' => number.saturating_mul(3600),
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (use s, m or h)")),
    };
    Ok(Duration::from_secs(seconds))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Args = service::cli::parse(ENV);
    let Started { client, shutdown } = args.common.start().await?;
    let settings = runner::Settings {
        provisioner: args.provisioner,
        job_deadline: args.job_deadline,
        namespace: args.namespace,
        start_timeout: args.start_timeout,
    };
    runner::run(client, settings, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
