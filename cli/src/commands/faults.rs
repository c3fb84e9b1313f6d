//! `tcctl faults`: shows and changes the simulator's fault settings while `tcctl up` runs, through
//! its admin endpoint, with the admin token of the kubeconfig `tcctl up` wrote.

use anyhow::Context as _;
use testcluster_sim::admin::FaultSettings;

use crate::args::{FaultsAction, FaultsArgs};

pub async fn faults(args: FaultsArgs) -> anyhow::Result<i32> {
    let token = admin_token(&args.kubeconfig)?;
    let base = args.sim_admin.trim_end_matches('/');
    let client = reqwest::Client::new();
    let request = match &args.action {
        FaultsAction::Show => client.get(format!("{base}/faults")),
        FaultsAction::Set(flags) => client.put(format!("{base}/faults")).json(&flags.settings()),
        FaultsAction::Clear => client.delete(format!("{base}/faults")),
        FaultsAction::DropWatches => client.post(format!("{base}/faults/drop-watches")),
    };
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reaching the simulator at {base} (is tcctl up running?)"))?;
    let status = response.status();
    let body = response.text().await.context("reading the answer")?;
    if !status.is_success() {
        anyhow::bail!("the simulator refused: {status}: {body}");
    }
    if let FaultsAction::DropWatches = args.action {
        println!("dropped every open watch");
        return Ok(0);
    }
    let settings: FaultSettings =
        serde_json::from_str(&body).context("reading the fault settings")?;
    println!("{}", serde_json::to_string_pretty(&settings)?);
    Ok(0)
}

/// The token of the kubeconfig's first user: the simulator's admin token.
fn admin_token(kubeconfig: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(kubeconfig)
        .with_context(|| format!("reading {} (written by tcctl up)", kubeconfig.display()))?;
    let config: serde_json::Value = yaml_serde::from_str(&text)
        .with_context(|| format!("{} is not a kubeconfig", kubeconfig.display()))?;
    config["users"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|user| user["user"]["token"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("{} holds no token", kubeconfig.display()))
}
