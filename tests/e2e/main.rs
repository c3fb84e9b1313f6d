//! End-to-end: the simulator and all four services (through `tcctl`'s suite), driven through the
//! broker's public gRPC API as a CI job would, asserting what a user sees: phases, logs, exit codes,
//! errors naming fields, and nothing left behind. Issue #3's "Done when" 1–6; 2 and 7's command-line
//! halves are in `cli/tests/`.

mod support;

mod access;
mod clients;
mod deploy_configs;
mod deployed;
mod federation;
mod github;
mod infra_failure;
mod lifecycle;
mod lifetimes;
mod metrics;
mod restarts;
mod secrets;
mod seed;
mod tcctl_run;
mod validation;
