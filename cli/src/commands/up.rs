//! `tcctl up`: the whole suite on this machine until Ctrl-C.

use anyhow::Context as _;

use crate::args::UpArgs;
use crate::suite::{Component, Suite, SuiteConfig};

pub async fn up(args: UpArgs) -> anyhow::Result<i32> {
    let shutdown = testcluster_service::shutdown::on_signal();
    let mut metrics_listen = std::collections::BTreeMap::new();
    for component in Component::ALL {
        let address = component.default_metrics_listen();
        let address = address
            .parse()
            .with_context(|| format!("metrics address {address}"))?;
        metrics_listen.insert(component, address);
    }
    let suite = Suite::start(SuiteConfig {
        broker_listen: args.listen,
        kubeconfig: args.kubeconfig,
        metrics_listen,
        ..SuiteConfig::default()
    })
    .await
    .context("starting the suite")?;
    let kubeconfig = suite.kubeconfig_path().display().to_string();
    println!("gRPC endpoint: {}", suite.broker_endpoint());
    println!("kubeconfig:    {kubeconfig}");
    for component in Component::ALL {
        let name = format!("{component:?}").to_lowercase();
        println!("metrics:       {name:<12} {}", suite.metrics_url(component));
    }
    println!(
        "try:           tcctl run --nodes 3 -- sh -c 'echo hello-from-job; kubectl get nodes -o name'"
    );
    println!("               KUBECONFIG={kubeconfig} kubectl get tcg -A");
    println!("stop with Ctrl-C");
    shutdown.cancelled().await;
    suite.shutdown().await;
    Ok(0)
}
