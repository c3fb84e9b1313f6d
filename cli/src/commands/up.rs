//! `tcctl up`: the whole suite on this machine until Ctrl-C, with the simulator's fault settings
//! served for `tcctl faults`.

use std::path::Path;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::args::UpArgs;
use crate::suite::{Component, GitHubConfig, Suite, SuiteConfig};

pub async fn up(args: Box<UpArgs>, token_file: &Path) -> anyhow::Result<i32> {
    let shutdown = testcluster_service::shutdown::on_signal();
    let mut metrics_listen = std::collections::BTreeMap::new();
    for component in Component::ALL {
        let address = component.default_metrics_listen();
        let address = address
            .parse()
            .with_context(|| format!("metrics address {address}"))?;
        metrics_listen.insert(component, address);
    }
    let defaults = SuiteConfig::default();
    let metrics_stack = Some(args.metrics_stack.clone()).filter(|dir| !dir.as_os_str().is_empty());
    let suite = Suite::start(SuiteConfig {
        broker_listen: args.listen,
        kubeconfig: Some(args.kubeconfig.clone()),
        metrics_listen,
        sim: (args.sim.workloads).config(args.sim.delays.config(defaults.sim)),
        runner: testcluster_runner::Settings {
            metrics_stack: metrics_stack.clone(),
            ..defaults.runner
        },
        federation_listen: args.federation_listen,
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

    // The token goes to a file only its owner reads, never to the terminal: tcctl finds it there,
    // and other clients read it from there.
    testcluster_sim::private_file::write(token_file, suite.token().as_bytes())
        .with_context(|| format!("writing the token to {}", token_file.display()))?;
    let kubeconfig = suite.kubeconfig_path().display().to_string();
    println!("gRPC endpoint: {}", suite.broker_endpoint());
    println!(
        "token:         {} (static token tcctl-up, mode 0600; tcctl reads it from there)",
        token_file.display()
    );
    println!("kubeconfig:    {kubeconfig}");
    let certs = suite.certs();
    println!(
        "internal APIs: provisioner {}, logview {}: mutual TLS with the suite's CA {} (a client \
         presents a certificate it signed, such as the broker's {} with key {})",
        suite.endpoint(Component::Provisioner).unwrap_or_default(),
        suite.endpoint(Component::Logview).unwrap_or_default(),
        certs.ca.display(),
        certs.broker.0.display(),
        certs.broker.1.display()
    );
    for component in Component::ALL {
        let name = format!("{component:?}").to_lowercase();
        println!("metrics:       {name:<12} {}", suite.metrics_url(component));
    }
    println!(
        "federation:    {} (Prometheus http_sd_configs; deploy/k8s/federation)",
        suite.federation_targets_url()
    );
    match &metrics_stack {
        Some(dir) => println!("metrics stack: {}", dir.display()),
        None => println!("metrics stack: none"),
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
    println!(
        "               buf curl --protocol grpc --http2-prior-knowledge -H \"authorization: Bearer $(cat {})\" --list-methods {}",
        token_file.display(),
        suite.broker_endpoint()
    );
    println!("stop with Ctrl-C");
    shutdown.cancelled().await;
    admin_stop.cancel();
    let _ = admin.await;
    suite.shutdown().await;
    // The token dies with the suite; a stale file would only confuse the next one.
    let _ = std::fs::remove_file(token_file);
    Ok(0)
}
