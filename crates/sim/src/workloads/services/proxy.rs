//! The node's kube-proxy: a TCP listener per Service port on the Service's cluster IP, forwarding
//! each connection to one of the port's ready endpoints (round robin). With no ready endpoint the
//! connection is closed at once, as kube-proxy's REJECT rule refuses it. At most
//! [`MAX_CONNECTIONS`] connections per Service port are forwarded at a time; more are closed.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{ServedPort, ServiceEntry};

/// Concurrent connections one Service port forwards.
pub const MAX_CONNECTIONS: usize = 1024;

/// A Service port to serve: name, port, protocol.
pub type PortSpec = (Option<String>, u16, String);

/// Opens the listeners of a Service and returns its entry (listeners stop when it is dropped).
pub fn open(cluster_ip: Ipv4Addr, ports: &[PortSpec]) -> Arc<ServiceEntry> {
    let stop = CancellationToken::new();
    let mut served = Vec::with_capacity(ports.len());
    let mut listeners = Vec::with_capacity(ports.len());
    for (name, port, protocol) in ports {
        let listener = if protocol == "TCP" {
            bind(cluster_ip, *port)
        } else {
            // Only TCP is forwarded; UDP and SCTP ports are listed but not served.
            None
        };
        let bound = listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(*port, |a| a.port());
        served.push(ServedPort {
            name: name.clone(),
            port: *port,
            bound,
            protocol: protocol.clone(),
        });
        listeners.push(listener);
    }
    let entry = Arc::new(ServiceEntry {
        cluster_ip,
        backends: RwLock::new(vec![Vec::new(); served.len()]),
        ports: served,
        _listeners: stop.clone().drop_guard(),
    });
    for (index, listener) in listeners.into_iter().enumerate() {
        if let Some(listener) = listener {
            tokio::spawn(serve(listener, Arc::downgrade(&entry), index, stop.clone()));
        }
    }
    entry
}

/// Binds the port, or a free port on the same address when the port needs privileges.
fn bind(ip: Ipv4Addr, port: u16) -> Option<TcpListener> {
    let attempt = |port: u16| -> std::io::Result<TcpListener> {
        let listener = std::net::TcpListener::bind((ip, port))?;
        listener.set_nonblocking(true)?;
        TcpListener::from_std(listener)
    };
    match attempt(port) {
        Ok(listener) => Some(listener),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => attempt(0)
            .inspect_err(|e| tracing::warn!(%ip, error = %e, "cannot serve a service port"))
            .ok(),
        Err(e) => {
            tracing::warn!(%ip, port, error = %e, "cannot serve a service port");
            None
        }
    }
}

async fn serve(
    listener: TcpListener,
    entry: Weak<ServiceEntry>,
    index: usize,
    stop: CancellationToken,
) {
    let next = AtomicUsize::new(0);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else { continue };
        let Some(entry) = entry.upgrade() else { return };
        let backends = entry.backends(index);
        drop(entry);
        if backends.is_empty() {
            continue; // dropping the connection refuses it
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // over the limit: refused like an unready port
        };
        let backend = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
        tokio::spawn(forward(client, backend, stop.clone(), slot));
    }
}

/// Copies both ways until either side closes; `_slot` is held as long.
async fn forward(
    mut client: TcpStream,
    backend: SocketAddr,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let Ok(mut upstream) = TcpStream::connect(backend).await else {
        return;
    };
    tokio::select! {
        () = stop.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_to_a_ready_endpoint_and_refuses_without_one() {
        let backend = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let backend_address = backend.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = backend.accept().await {
                let _ = socket.write_all(b"hello").await;
            }
        });
        let ip = Ipv4Addr::new(127, 200, 1, 2);
        let entry = open(ip, &[(Some("http".into()), 0, "TCP".into())]);
        let bound = entry.ports[0].bound;
        let mut refused = TcpStream::connect((ip, bound)).await.expect("connect");
        let mut buf = Vec::new();
        assert_eq!(refused.read_to_end(&mut buf).await.unwrap_or(0), 0);
        entry.set_backends(vec![vec![backend_address]]);
        let mut client = TcpStream::connect((ip, bound)).await.expect("connect");
        let mut text = String::new();
        client.read_to_string(&mut text).await.expect("read");
        assert_eq!(text, "hello");
        drop(entry);
    }
}
