//! `tcctl`: see the library for how it works.

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let cli = tcctl::args::Cli::parse();
    // The services' own logs matter to an operator of `tcctl up`; for `run` they would bury the job's
    // output, so only warnings show unless RUST_LOG says otherwise.
    let default = match cli.command {
        tcctl::args::Command::Up(_) => "info",
        _ => "warn",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .ok();
    testcluster_service::install_crypto();
    let code = tcctl::commands::execute(cli).await;
    std::process::exit(code);
}
