//! `tcctl`, the testcluster CLI, as a library (the binary is a thin `main.rs`).
//!
//! - [`args`]: the command line (clap).
//! - [`commands`]: one module per subcommand; `run` builds a request ([`request`]), creates the test
//!   cluster and follows it ([`follow`]): phase changes and the job's log lines as they come, and
//!   the job's exit code as tcctl's.
//! - [`credentials`]: which token tcctl sends (a flag, GitHub Actions' OIDC token, `tcctl up`'s).
//! - [`suite`]: the whole suite on this machine — the simulator and the four services in-process —
//!   for `tcctl up`, `tcctl run --local` and the end-to-end tests.
//! - [`output`]: how test clusters and gRPC errors are printed.

pub mod args;
pub mod commands;
pub mod credentials;
pub mod follow;
pub mod output;
pub mod request;
pub mod suite;

/// tcctl's exit code when the run could not happen or finish for a reason other than the job (the
/// infrastructure gave up, the broker is unreachable, a bad request), as `docker run` uses 125.
pub const EXIT_INFRASTRUCTURE: i32 = 125;
/// tcctl's exit code when interrupted (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;
/// tcctl's exit code when terminated, as CI does on cancel (128 + SIGTERM).
pub const EXIT_TERMINATED: i32 = 143;
