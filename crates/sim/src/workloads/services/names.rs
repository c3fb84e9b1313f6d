//! Service names as a container's process can use them: rewritten to cluster IPs in its `env`,
//! `command` and `args`, and the service environment variables the kubelet sets.

use std::net::{Ipv4Addr, SocketAddr};

use super::{ServedPort, ServiceEntry};

/// Characters after which a host name may start.
const BEFORE: &[char] = &[
    ' ', '\t', '\n', '=', '/', '@', '"', '\'', ',', '(', ';', '[',
];
/// Characters that may end a host name.
const AFTER: &[char] = &[
    ':', '/', ' ', '\t', '\n', '"', '\'', ',', ')', '?', '#', ';', ']',
];

/// One name of a Service, and where it leads.
#[derive(Clone, Debug)]
struct HostName {
    host: String,
    /// The bare `<svc>`: rewritten only as a URL's host or before a port.
    bare: bool,
    ip: Ipv4Addr,
    ports: Vec<ServedPort>,
}

/// The Services as a container in one namespace sees them.
#[derive(Clone, Debug, Default)]
pub struct ServiceNames {
    /// Longest first, so that `web.shop.svc` wins over `web.shop`.
    hosts: Vec<HostName>,
    env: Vec<(String, String)>,
}

impl ServiceNames {
    pub(super) fn new<'a>(
        namespace: &str,
        services: impl Iterator<Item = (&'a str, &'a str, &'a ServiceEntry)>,
        api_server: Option<SocketAddr>,
    ) -> ServiceNames {
        let mut hosts = Vec::new();
        let mut env = Vec::new();
        if let Some(api) = api_server {
            let port = ServedPort {
                name: Some("https".to_owned()),
                port: api.port(),
                bound: api.port(),
                protocol: "TCP".to_owned(),
            };
            let ip = match api.ip() {
                std::net::IpAddr::V4(ip) => ip,
                std::net::IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
            };
            service_env(&mut env, "kubernetes", ip, &[port]);
        }
        for (ns, name, entry) in services {
            let qualified = [
                format!("{name}.{ns}.svc.cluster.local"),
                format!("{name}.{ns}.svc"),
                format!("{name}.{ns}"),
            ];
            for host in qualified {
                hosts.push(HostName {
                    host,
                    bare: false,
                    ip: entry.cluster_ip,
                    ports: entry.ports.clone(),
                });
            }
            if ns == namespace {
                hosts.push(HostName {
                    host: name.to_owned(),
                    bare: true,
                    ip: entry.cluster_ip,
                    ports: entry.ports.clone(),
                });
                service_env(&mut env, name, entry.cluster_ip, &entry.ports);
            }
        }
        hosts.sort_by_key(|h| std::cmp::Reverse(h.host.len()));
        ServiceNames { hosts, env }
    }

    /// The variables the kubelet sets for the Services of the pod's namespace (and the API server).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Replaces each Service name in `text` by its cluster IP, and a port after it by the port the
    /// proxy serves: `http://web.shop.svc:80/x` becomes `http://127.130.4.5:80/x` (or the free port
    /// the proxy had to take instead of 80).
    pub fn rewrite(&self, text: &str) -> String {
        if self.hosts.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut index = 0;
        while index < text.len() {
            let rest = &text[index..];
            let at_boundary = text[..index]
                .chars()
                .last()
                .is_none_or(|c| BEFORE.contains(&c));
            if at_boundary && let Some((host, port)) = self.match_at(&text[..index], rest) {
                out.push_str(&host.ip.to_string());
                index += host.host.len();
                if let Some((port, digits)) = port {
                    let bound = host
                        .ports
                        .iter()
                        .find(|p| p.port == port)
                        .map_or(port, |p| p.bound);
                    out.push(':');
                    out.push_str(&bound.to_string());
                    index += 1 + digits;
                }
                continue;
            }
            let Some(c) = rest.chars().next() else { break };
            out.push(c);
            index += c.len_utf8();
        }
        out
    }

    /// The host name starting `rest` (with its `:<port>`, as the port and the digits' length).
    fn match_at(&self, before: &str, rest: &str) -> Option<(&HostName, Option<(u16, usize)>)> {
        self.hosts.iter().find_map(|host| {
            let after = rest.strip_prefix(host.host.as_str())?;
            if !after.chars().next().is_none_or(|c| AFTER.contains(&c)) {
                return None;
            }
            let digits = after
                .strip_prefix(':')
                .map(|p| p.chars().take_while(char::is_ascii_digit).count())
                .unwrap_or(0);
            let port = (digits > 0)
                .then(|| after[1..=digits].parse::<u16>().ok())
                .flatten()
                .map(|p| (p, digits));
            if host.bare && port.is_none() && !before.ends_with("://") {
                return None;
            }
            Some((host, port))
        })
    }
}

/// `{SVC}_SERVICE_HOST`, `{SVC}_SERVICE_PORT`, `{SVC}_SERVICE_PORT_{NAME}` and the Docker-link
/// variables (`{SVC}_PORT`, `{SVC}_PORT_{port}_{PROTO}...`), as the kubelet's `getServiceEnvVarMap`.
fn service_env(env: &mut Vec<(String, String)>, name: &str, ip: Ipv4Addr, ports: &[ServedPort]) {
    let Some(first) = ports.first() else { return };
    let prefix = name.to_uppercase().replace('-', "_");
    env.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
    env.push((format!("{prefix}_SERVICE_PORT"), first.bound.to_string()));
    for port in ports {
        if let Some(port_name) = &port.name {
            let port_name = port_name.to_uppercase().replace('-', "_");
            env.push((
                format!("{prefix}_SERVICE_PORT_{port_name}"),
                port.bound.to_string(),
            ));
        }
    }
    let protocol = first.protocol.to_lowercase();
    env.push((
        format!("{prefix}_PORT"),
        format!("{protocol}://{ip}:{}", first.bound),
    ));
    for port in ports {
        let proto_upper = port.protocol.to_uppercase();
        let proto_lower = port.protocol.to_lowercase();
        let key = format!("{prefix}_PORT_{}_{proto_upper}", port.port);
        env.push((key.clone(), format!("{proto_lower}://{ip}:{}", port.bound)));
        env.push((format!("{key}_PROTO"), proto_lower));
        env.push((format!("{key}_PORT"), port.bound.to_string()));
        env.push((format!("{key}_ADDR"), ip.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ServiceNames {
        let web = HostName {
            host: String::new(),
            bare: false,
            ip: Ipv4Addr::new(127, 130, 0, 5),
            ports: vec![ServedPort {
                name: Some("http".into()),
                port: 80,
                bound: 41000,
                protocol: "TCP".into(),
            }],
        };
        let mut hosts = Vec::new();
        for (host, bare) in [
            ("web.shop.svc.cluster.local", false),
            ("web.shop.svc", false),
            ("web.shop", false),
            ("web", true),
        ] {
            hosts.push(HostName {
                host: host.into(),
                bare,
                ..web.clone()
            });
        }
        let mut env = Vec::new();
        service_env(&mut env, "web", web.ip, &web.ports);
        ServiceNames { hosts, env }
    }

    #[test]
    fn names_become_cluster_ips_and_served_ports() {
        let n = names();
        assert_eq!(
            n.rewrite("http://web.shop.svc:80/x"),
            "http://127.130.0.5:41000/x"
        );
        assert_eq!(
            n.rewrite("--upstream=web.shop.svc.cluster.local:8080"),
            "--upstream=127.130.0.5:8080"
        );
        assert_eq!(n.rewrite("http://web/"), "http://127.130.0.5/");
        assert_eq!(n.rewrite("web:80"), "127.130.0.5:41000");
        assert_eq!(n.rewrite("--name=web"), "--name=web");
        assert_eq!(n.rewrite("webhook.shop.svc"), "webhook.shop.svc");
        assert_eq!(n.rewrite("my-web.shop.svc"), "my-web.shop.svc");
        assert_eq!(n.rewrite("cobweb:80"), "cobweb:80");
    }

    #[test]
    fn service_variables() {
        let n = names();
        let get = |key: &str| {
            n.env()
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("WEB_SERVICE_HOST"), Some("127.130.0.5"));
        assert_eq!(get("WEB_SERVICE_PORT"), Some("41000"));
        assert_eq!(get("WEB_SERVICE_PORT_HTTP"), Some("41000"));
        assert_eq!(get("WEB_PORT"), Some("tcp://127.130.0.5:41000"));
        assert_eq!(get("WEB_PORT_80_TCP_ADDR"), Some("127.130.0.5"));
    }
}
