//! `tcctl up`: the whole suite on this machine until Ctrl-C, with the simulator's fault settings
//! served for `tcctl faults`.

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::args::UpArgs;
use crate::suite::{Component, GitHubConfig, Suite, SuiteConfig};

pub async fn up(args: Box<UpArgs>) -> anyhow::Result<i32> {
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
        kubeconfig: Some(args.kubeconfig.clone()),
        metrics_listen,
        sim: args.sim.delays.config(SuiteConfig::default().sim),
        lifetimes: args.lifetimes.lifetimes(),
        record_retention: args.record_retention,
        github: args
            .github_api_url
            .clone()
            .zip(args.github_token.clone())
            .map(|(api_url, token)| GitHubConfig { api_url, token }),
    })
    .await
    .context("starting the suite")?;
    let switches = suite.simulator().fault_switches();
    switches
        .apply(&args.sim.faults.settings())
        .map_err(anyhow::Error::msg)
        .context("the fault flags")?;
    let admin_stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(args.sim_admin_listen)
        .await
        .with_context(|| format!("binding --sim-admin-listen {}", args.sim_admin_listen))?;
    let admin = tokio::spawn(
        axum::serve(listener, testcluster_sim::admin::router(switches.clone()))
            .with_graceful_shutdown(admin_stop.clone().cancelled_owned())
            .into_future(),
    );

    let kubeconfig = suite.kubeconfig_path().display().to_string();
    println!("gRPC endpoint: {}", suite.broker_endpoint());
    println!("kubeconfig:    {kubeconfig}");
    for component in Component::ALL {
        let name = format!("{component:?}").to_lowercase();
        println!("metrics:       {name:<12} {}", suite.metrics_url(component));
    }
    println!(
        "faults:        http://{} (tcctl faults --help)",
        args.sim_admin_listen
    );
    let on = switches.settings();
    for (zone, fault) in &on.zones {
        println!("               {zone}: {}", serde_json::to_string(fault)?);
    }
    if let Some(api_url) = &args.github_api_url {
        println!("github:        commit statuses to {api_url}");
    }
    println!(
        "try:           tcctl run --nodes 3 -- sh -c 'echo hello-from-job; kubectl get nodes -o name'"
    );
    println!("               KUBECONFIG={kubeconfig} kubectl get tcg -A");
    println!("stop with Ctrl-C");
    shutdown.cancelled().await;
    admin_stop.cancel();
    let _ = admin.await;
    suite.shutdown().await;
    Ok(0)
}
