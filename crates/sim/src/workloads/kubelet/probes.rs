//! Container probes as the kubelet's prober runs them: `httpGet` (HTTP/1.1, `kube-probe` user agent,
//! 2xx and 3xx succeed), `tcpSocket`, `grpc` (the gRPC health checking protocol) and `exec`, each
//! within `timeoutSeconds`; the thresholds that turn results into a container's state; and the
//! failure texts the `Unhealthy` events carry.
//!
//! `httpGet` with `scheme: HTTPS` is not supported: such a probe fails, saying so.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::process::Launch;
use super::volumes::MountTable;
use crate::workloads::services::ServiceNames;

/// The kubelet's `User-Agent` for HTTP probes (`kube-probe/<major>.<minor>`).
const USER_AGENT: &str = "kube-probe/1.33";
/// Most of an HTTP probe's response read (the status line is all that decides).
const MAX_RESPONSE_BYTES: u64 = 10 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// As the kubelet names it in event texts.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// A probe's timing and thresholds, with the API server's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(probe: &Probe) -> Timing {
        let seconds = |value: Option<i32>, default: u64| {
            Duration::from_secs(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
        };
        let count = |value: Option<i32>, default: u32| {
            value
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Timing {
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// Consecutive results turned into a verdict, as the prober's worker does: the result flips only
/// after `success_threshold` successes or `failure_threshold` failures in a row.
#[derive(Debug)]
pub struct Verdict {
    timing: Timing,
    successes: u32,
    failures: u32,
}

impl Verdict {
    pub fn new(timing: Timing) -> Verdict {
        Verdict {
            timing,
            successes: 0,
            failures: 0,
        }
    }

    /// Records one result; `Some(passing)` when the verdict is (re)established by it.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        if success {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            (self.successes == self.timing.success_threshold).then_some(true)
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            (self.failures == self.timing.failure_threshold).then_some(false)
        }
    }
}

/// Where a container's probes go, and how its `exec` probes run.
pub struct ProbeTarget {
    pub pod_ip: Ipv4Addr,
    pub ports: Vec<ContainerPort>,
    /// The container's process settings; an `exec` probe replaces the argv.
    pub exec: Launch,
    /// An `exec` probe's command is rewritten as the container's is.
    pub mounts: MountTable,
    pub services: ServiceNames,
}

impl ProbeTarget {
    /// Runs the probe once; `Err` carries the failure text of the `Unhealthy` event.
    pub async fn check(&self, probe: &Probe, timeout: Duration) -> Result<(), String> {
        if let Some(exec) = &probe.exec {
            return self
                .exec(exec.command.clone().unwrap_or_default(), timeout)
                .await;
        }
        let attempt = async {
            if let Some(http) = &probe.http_get {
                let host = self.host(http.host.as_deref());
                let port = self.port(&http.port)?;
                if http.scheme.as_deref() == Some("HTTPS") {
                    return Err(
                        "HTTPS probes are not supported by the simulated kubelet".to_owned()
                    );
                }
                let headers: Vec<(String, String)> = http
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect();
                let path = http.path.as_deref().unwrap_or("/");
                return http_get(host, port, path, &headers).await;
            }
            if let Some(tcp) = &probe.tcp_socket {
                let host = self.host(tcp.host.as_deref());
                let port = self.port(&tcp.port)?;
                return TcpStream::connect((host, port))
                    .await
                    .map(drop)
                    .map_err(|e| dial_error(host, port, &e));
            }
            if let Some(grpc) = &probe.grpc {
                let port =
                    u16::try_from(grpc.port).map_err(|_| format!("invalid port {}", grpc.port))?;
                return grpc_check(
                    self.pod_ip,
                    port,
                    grpc.service.clone().unwrap_or_default(),
                    timeout,
                )
                .await;
            }
            Err("probe has no handler".to_owned())
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "probe timed out: no answer within {}s",
                timeout.as_secs()
            )),
        }
    }

    fn host(&self, host: Option<&str>) -> IpAddr {
        host.filter(|h| !h.is_empty())
            .and_then(|h| h.parse().ok())
            .unwrap_or(IpAddr::V4(self.pod_ip))
    }

    /// A probe's port: a number, or the name of one of the container's ports.
    fn port(&self, port: &IntOrString) -> Result<u16, String> {
        match port {
            IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
            IntOrString::String(name) => match name.parse::<u16>() {
                Ok(n) => Ok(n),
                Err(_) => self
                    .ports
                    .iter()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| u16::try_from(p.container_port).ok())
                    .ok_or_else(|| format!("couldn't find port: {name}")),
            },
        }
    }

    async fn exec(&self, command: Vec<String>, timeout: Duration) -> Result<(), String> {
        let launch = Launch {
            argv: command
                .iter()
                .map(|arg| self.mounts.rewrite(&self.services.rewrite(arg)))
                .collect(),
            env: self.exec.env.clone(),
            working_dir: self.exec.working_dir.clone(),
            memory_limit: None,
        };
        let process = launch.start(None)?;
        // The command's own timeout: stopped (SIGTERM, then SIGKILL) when it runs too long.
        let deadline = CancellationToken::new();
        let timer = deadline.clone();
        let watchdog = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            timer.cancel();
        });
        let exit = process.wait(&deadline, || Duration::ZERO).await;
        watchdog.abort();
        if deadline.is_cancelled() {
            return Err(format!(
                "command {command:?} timed out after {}s",
                timeout.as_secs()
            ));
        }
        match exit.code {
            0 => Ok(()),
            code => Err(format!("command {command:?} exited with {code}")),
        }
    }
}

fn dial_error(host: IpAddr, port: u16, error: &std::io::Error) -> String {
    let reason = match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_owned(),
        _ => error.to_string(),
    };
    format!("dial tcp {host}:{port}: {reason}")
}

/// One HTTP/1.1 GET, as the kubelet's prober sends it; 2xx and 3xx succeed (redirects are not
/// followed; the real prober follows them only to the same host).
async fn http_get(
    host: IpAddr,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let url = format!("http://{host}:{port}{path}");
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("Get \"{url}\": {}", dial_error(host, port, &e)))?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut response = Vec::new();
    let _ = (&mut stream)
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut response)
        .await;
    let head = String::from_utf8_lossy(&response);
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// The gRPC health checking protocol's `Check`, as the kubelet's gRPC prober calls it.
async fn grpc_check(
    ip: Ipv4Addr,
    port: u16,
    service: String,
    timeout: Duration,
) -> Result<(), String> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let address = format!("{ip}:{port}");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .map_err(|_| {
            format!(
                "timeout: failed to connect service \"{address}\" within {}s",
                timeout.as_secs()
            )
        })?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service })
        .await
        .map_err(|status| {
            format!(
                "error: health rpc failed: rpc error: code = {:?} desc = {}",
                status.code(),
                status.message()
            )
        })?;
    let status = response.into_inner().status();
    if status == ServingStatus::Serving {
        Ok(())
    } else {
        Err(format!(
            "service unhealthy (responded with \"{}\")",
            status.as_str_name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn defaults_follow_the_api_server() {
        let t = Timing::of(&Probe::default());
        assert_eq!(
            t,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    #[test]
    fn the_verdict_flips_on_thresholds() {
        let mut v = Verdict::new(timing(2, 3));
        assert_eq!(v.record(true), None);
        assert_eq!(v.record(true), Some(true));
        assert_eq!(v.record(true), None);
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(false), None);
        assert_eq!(v.record(false), Some(false));
        assert_eq!(v.record(false), None);
    }

    #[tokio::test]
    async fn http_and_tcp_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let answer = if request.starts_with("GET /ok ") && request.contains("kube-probe/") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                } else {
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                };
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(http_get(ip, port, "/ok", &[]).await, Ok(()));
        assert_eq!(
            http_get(ip, port, "/bad", &[]).await,
            Err("HTTP probe failed with statuscode: 503".to_owned())
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        assert_eq!(
            http_get(ip, closed, "/ok", &[]).await,
            Err(format!(
                "Get \"http://127.0.0.1:{closed}/ok\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ))
        );
    }
}
