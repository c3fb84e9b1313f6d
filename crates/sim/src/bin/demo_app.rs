//! `testcluster-sim-demo-app`: a tiny workload to run as a pod of the simulator, for its tests and
//! for trying images mapped to local binaries (`--image-map`).
//!
//! - `serve --grpc-listen ADDR --http-listen ADDR [--ready-after DURATION]`: serves the gRPC health
//!   checking protocol (NOT_SERVING until `--ready-after` has passed, then SERVING) and HTTP, where
//!   every path answers `hello from <HOSTNAME>`.
//! - `fetch URL`: prints the body of an HTTP GET of URL (HTTP/1.1, no TLS) and exits 0 on a 2xx.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Parser)]
#[command(name = "testcluster-sim-demo-app", about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC health and HTTP.
    Serve {
        #[arg(long)]
        grpc_listen: SocketAddr,
        #[arg(long)]
        http_listen: SocketAddr,
        /// How long the health service reports NOT_SERVING first.
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        ready_after: Duration,
    },
    /// GET a URL and print the body.
    Fetch { url: url::Url },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Serve {
            grpc_listen,
            http_listen,
            ready_after,
        } => serve(grpc_listen, http_listen, ready_after).await,
        Command::Fetch { url } => fetch(&url).await,
    }
}

async fn serve(grpc: SocketAddr, http: SocketAddr, ready_after: Duration) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    tokio::spawn(async move {
        tokio::time::sleep(ready_after).await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
    });
    let greeting = format!(
        "hello from {}\n",
        std::env::var("HOSTNAME").unwrap_or_default()
    );
    let app = axum::Router::new().fallback(move || {
        let greeting = greeting.clone();
        async move { greeting }
    });
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("binding {http}"))?;
    println!("serving gRPC health on {grpc} and HTTP on {http}");
    let grpc_server = tonic::transport::Server::builder()
        .add_service(health)
        .serve(grpc);
    let http_server = axum::serve(listener, app);
    tokio::select! {
        served = grpc_server => served.context("gRPC server")?,
        served = http_server => served.context("HTTP server")?,
    }
    Ok(())
}

async fn fetch(url: &url::Url) -> anyhow::Result<()> {
    let host = url.host_str().context("the URL has no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let mut stream = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        url.path()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.take(1 << 20).read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ok = head
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    print!("{body}");
    anyhow::ensure!(ok, "{}", head.lines().next().unwrap_or_default());
    Ok(())
}
