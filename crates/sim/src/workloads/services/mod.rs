//! Services: how one pod reaches another by a Service's name.
//!
//! - The API server gives every Service a cluster IP that is a loopback address (127.128.0.0 and
//!   up), as it gives every pod one of its own (127.1.0.0 - 127.127.255.255).
//! - The **endpoints controller** ([`endpoints`]) keeps each selector Service's `Endpoints` and
//!   `discovery.k8s.io/v1` `EndpointSlice` from the pods it selects (ready, serving, terminating).
//! - The **proxy** ([`proxy`]) is the node's kube-proxy: for each Service port it listens on
//!   `<cluster IP>:<port>` and forwards each connection to a ready endpoint, round robin. A port
//!   below 1024 usually cannot be bound without privileges; it is then served on a free port, and
//!   the rewriting below says so.
//! - **Names** ([`names`]): a process cannot ask the cluster's DNS, so in a container's `env`,
//!   `command` and `args` the kubelet replaces `<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`,
//!   `<svc>.<ns>` and, within the pod's namespace, `<svc>` (only as a URL's host or before a port)
//!   with the Service's cluster IP, and `:<port>` after it with the port actually served. It also
//!   sets the `<SVC>_SERVICE_HOST` / `_PORT` variables the real kubelet sets, and `KUBERNETES_*`
//!   for the API server. As with real environment variables, a container sees the Services that
//!   exist when it starts.
//!
//! [`ServiceTable`] is what the proxy serves, shared with the kubelet for the rewriting.

mod endpoints;
pub mod names;
mod proxy;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use kube::Client;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

pub use names::ServiceNames;

/// One port of a Service as the proxy serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedPort {
    pub name: Option<String>,
    /// The Service's `port`.
    pub port: u16,
    /// Where the proxy listens: `port`, or a free one when `port` cannot be bound.
    pub bound: u16,
    pub protocol: String,
}

/// One Service in the proxy: its address, its ports and their ready endpoints.
#[derive(Debug)]
pub struct ServiceEntry {
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<ServedPort>,
    /// Ready endpoints per port (same order as `ports`).
    backends: RwLock<Vec<Vec<SocketAddr>>>,
    /// Stops the entry's listeners when the entry is dropped.
    _listeners: tokio_util::sync::DropGuard,
}

/// Service entries by namespace and name.
type Entries = BTreeMap<(String, String), Arc<ServiceEntry>>;

/// The Services the proxy serves, by namespace and name.
#[derive(Clone, Debug, Default)]
pub struct ServiceTable {
    entries: Arc<RwLock<Entries>>,
    /// The API server, for `KUBERNETES_SERVICE_HOST` / `_PORT`.
    api_server: Option<SocketAddr>,
}

impl ServiceTable {
    pub fn new(api_server: Option<SocketAddr>) -> ServiceTable {
        ServiceTable {
            entries: Arc::default(),
            api_server,
        }
    }

    /// What a container in `namespace` sees of the Services: names to rewrite, variables to set.
    pub fn names_for(&self, namespace: &str) -> ServiceNames {
        let entries = self.entries.read();
        ServiceNames::new(
            namespace,
            entries
                .iter()
                .map(|((ns, name), entry)| (ns.as_str(), name.as_str(), entry.as_ref())),
            self.api_server,
        )
    }

    /// A ready endpoint of the Service's port named or numbered `port` (its first port when
    /// `None`), for the API server's service proxy; the first one, as endpoints come in order.
    pub fn ready_endpoint(
        &self,
        namespace: &str,
        name: &str,
        port: Option<&str>,
    ) -> Option<SocketAddr> {
        let entry = self.get(namespace, name)?;
        let index = match port {
            None => 0,
            Some(port) => entry.ports.iter().position(|served| {
                served.name.as_deref() == Some(port) || served.port.to_string() == port
            })?,
        };
        entry.backends(index).first().copied()
    }

    fn get(&self, namespace: &str, name: &str) -> Option<Arc<ServiceEntry>> {
        self.entries
            .read()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn insert(&self, namespace: &str, name: &str, entry: Arc<ServiceEntry>) {
        self.entries
            .write()
            .insert((namespace.to_owned(), name.to_owned()), entry);
    }

    fn remove(&self, namespace: &str, name: &str) {
        self.entries
            .write()
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

impl ServiceEntry {
    fn backends(&self, index: usize) -> Vec<SocketAddr> {
        self.backends.read().get(index).cloned().unwrap_or_default()
    }

    fn set_backends(&self, backends: Vec<Vec<SocketAddr>>) {
        *self.backends.write() = backends;
    }
}

/// Runs the endpoints controller and the proxy until `shutdown`.
pub(super) async fn run(client: Client, table: ServiceTable, shutdown: CancellationToken) {
    endpoints::run(client, table, shutdown).await;
}
