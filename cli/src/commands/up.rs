//! `tcctl up`: the whole suite on this machine until Ctrl-C.

use anyhow::Context as _;

use crate::args::UpArgs;
use crate::suite::{Suite, SuiteConfig};

pub async fn up(args: UpArgs) -> anyhow::Result<i32> {
    let shutdown = service::shutdown::on_signal();
    let suite = Suite::start(SuiteConfig {
        broker_listen: args.listen,
        kubeconfig: args.kubeconfig,
        ..SuiteConfig::default()
    })
    .await
    .context("starting the suite")?;
    let kubeconfig = suite.kubeconfig_path().display().to_string();
    println!("gRPC endpoint: {}", suite.broker_endpoint());
    println!("kubeconfig:    {kubeconfig}");
    println!(
        "try:           tcctl run --nodes 3 -- sh -c 'echo hello-from-job; kubectl get nodes -o name'"
    );
    println!("               KUBECONFIG={kubeconfig} kubectl get tcg -A");
    println!("stop with Ctrl-C");
    shutdown.cancelled().await;
    suite.shutdown().await;
    Ok(0)
}
