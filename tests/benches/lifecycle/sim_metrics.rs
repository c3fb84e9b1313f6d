//! What the bench reads from the simulator's `/metrics`: the API server's request counters
//! (`apiserver_request_total{verb,resource,user,code}` summed per verb and resource, requests from
//! the services only) and the number of live cloud clusters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Requests by (verb, resource).
pub type Counts = BTreeMap<(String, String), u64>;

/// Bound on a scrape's answer: the request counters of a few hundred verb/resource pairs take a
/// few tens of KiB.
const MAX_SCRAPE: u64 = 4 * 1024 * 1024;
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait scrapes: fine enough for the teardown times reported, which it rounds up by
/// at most this much.
const WAIT_INTERVAL: Duration = Duration::from_millis(10);

/// The simulator's figures at one moment.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    pub requests: Counts,
    pub live_clusters: u64,
}

impl Scrape {
    /// The requests counted since `earlier`.
    pub fn requests_since(&self, earlier: &Scrape) -> Counts {
        self.requests
            .iter()
            .filter_map(|(key, n)| {
                let before = earlier.requests.get(key).copied().unwrap_or(0);
                (*n > before).then(|| (key.clone(), n - before))
            })
            .collect()
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// The simulator's `/metrics` endpoint.
#[derive(Clone, Debug)]
pub struct SimMetrics {
    address: SocketAddr,
}

impl SimMetrics {
    pub fn new(address: SocketAddr) -> SimMetrics {
        SimMetrics { address }
    }

    pub async fn scrape(&self) -> anyhow::Result<Scrape> {
        let text = tokio::time::timeout(SCRAPE_TIMEOUT, self.get())
            .await
            .context("the simulator's /metrics did not answer in time")??;
        parse(&text)
    }

    /// Scrapes until `done` holds, at most `timeout`; returns that scrape.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Scrape) -> bool,
    ) -> anyhow::Result<Scrape> {
        let deadline = Instant::now() + timeout;
        loop {
            let scrape = self.scrape().await?;
            if done(&scrape) {
                return Ok(scrape);
            }
            if Instant::now() >= deadline {
                bail!("{what}: not within {timeout:?}");
            }
            tokio::time::sleep(WAIT_INTERVAL).await;
        }
    }

    /// Waits until no request has been counted for `quiet` (the services have caught up with
    /// whatever the bench did last); returns that scrape.
    pub async fn wait_quiet(&self, quiet: Duration, timeout: Duration) -> anyhow::Result<Scrape> {
        let deadline = Instant::now() + timeout;
        let mut last = self.scrape().await?;
        loop {
            tokio::time::sleep(quiet).await;
            let scrape = self.scrape().await?;
            if scrape.total_requests() == last.total_requests() {
                return Ok(scrape);
            }
            if Instant::now() >= deadline {
                bail!("the services still sent requests after {timeout:?}");
            }
            last = scrape;
        }
    }

    /// Waits until no cloud cluster is live, then until the services are quiet (a teardown's last
    /// status writes land after its cloud cluster is gone); returns that scrape.
    pub async fn wait_settled(&self, quiet: Duration, timeout: Duration) -> anyhow::Result<Scrape> {
        self.wait_until("every cloud cluster deleted", timeout, |s| {
            s.live_clusters == 0
        })
        .await?;
        self.wait_quiet(quiet, timeout).await
    }

    /// One HTTP/1.1 GET of `/metrics`, read to the end of the connection.
    async fn get(&self) -> anyhow::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(self.address)
            .await
            .with_context(|| {
                format!("connecting to the simulator's metrics at {}", self.address)
            })?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream
            .take(MAX_SCRAPE)
            .read_to_string(&mut response)
            .await?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("no header block in the simulator's /metrics answer")?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!(
                "the simulator's /metrics answered {}",
                head.lines().next().unwrap_or_default()
            );
        }
        Ok(body.to_owned())
    }
}

/// Reads the two metrics from the text format (axum sends the body unchunked, with a length).
fn parse(text: &str) -> anyhow::Result<Scrape> {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Some(labels) = series
            .strip_prefix("apiserver_request_total{")
            .and_then(|rest| rest.strip_suffix('}'))
        {
            let label = |name: &str| {
                labels.split(',').find_map(|pair| {
                    pair.strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix("=\""))
                        .and_then(|rest| rest.strip_suffix('"'))
                })
            };
            let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else {
                bail!("unexpected labels in {line:?}");
            };
            let count: u64 = value
                .parse()
                .with_context(|| format!("count in {line:?}"))?;
            // One series per user and response code: summed per verb and resource.
            *scrape
                .requests
                .entry((verb.to_owned(), resource.to_owned()))
                .or_default() += count;
        } else if series == "sim_cloud_clusters_live" {
            scrape.live_clusters = value.parse().with_context(|| format!("{line:?}"))?;
        }
    }
    Ok(scrape)
}
