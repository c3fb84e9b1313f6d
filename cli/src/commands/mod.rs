//! One module per subcommand; [`execute`] dispatches and turns the outcome into an exit code.

mod faults;
mod inspect;
mod run;
mod up;

use crate::args::CredentialArgs;
use crate::args::{Cli, Command};
use crate::{EXIT_INFRASTRUCTURE, credentials, follow};

/// The broker at `endpoint`, with the token `credentials` find on every call.
async fn connect(
    endpoint: &str,
    credentials: &CredentialArgs,
) -> anyhow::Result<testcluster_auth::client::AuthorizedChannel> {
    let bearer = credentials::bearer(credentials).await?;
    follow::connect(endpoint, bearer).await
}

/// Runs the command and returns tcctl's exit code. Errors are printed here, once.
pub async fn execute(cli: Cli) -> i32 {
    let namespace = cli.namespace.as_deref();
    let result = match cli.command {
        Command::Run(args) => run::run(*args, &cli.endpoint, &cli.credentials, namespace).await,
        Command::Up(args) => up::up(args, &cli.credentials.token_file).await,
        Command::Faults(args) => faults::faults(args).await,
        command => match connect(&cli.endpoint, &cli.credentials).await {
            Ok(channel) => inspect::execute(command, channel, namespace).await,
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tcctl: error: {error:#}");
            EXIT_INFRASTRUCTURE
        }
    }
}
