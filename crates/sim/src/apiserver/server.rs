//! The handle to one running API server: its listeners, its CA and token, and ready-made clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::auth::Identity;
use super::auth::rbac::Rbac;
use super::auth::tokens::Tokens;
use super::faults::{ApiFaults, RequestCounters};
use super::handlers;
use super::proxy::ServiceBackends;
use super::resources::Resources;
use super::store::Store;
use super::tls::ServerTls;
use crate::workloads::PodLogs;

/// Marks a request from the simulator's own controllers, which reach the server in-process: such
/// requests are neither counted nor subjected to injected faults, so that counters measure only what
/// the services under test do. It is a request extension, which nothing on the network can set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Internal;

/// What to start an API server with.
#[derive(Clone, Debug, Default)]
pub struct ApiServerConfig {
    /// A name for logs and the kubeconfig's cluster/context entries.
    pub name: String,
    /// The bearer token the HTTPS listener accepts for its admin; generated when `None`.
    pub admin_token: Option<String>,
    /// Objects created before the server starts listening (for example a test cluster's Nodes).
    pub preload: Vec<Value>,
    /// Also serve plain HTTP, without authentication, on loopback. Off unless asked for: anything
    /// on the machine (a job, too) could use it.
    pub plain_http: bool,
    /// How long Events are kept (kube-apiserver's `--event-ttl`); one hour when `None`.
    pub event_ttl: Option<Duration>,
}

/// Everything request handlers share.
pub(crate) struct ServerState {
    pub name: String,
    pub store: Store,
    pub resources: Resources,
    pub pod_logs: PodLogs,
    pub tokens: Tokens,
    pub rbac: Rbac,
    pub faults: Arc<ApiFaults>,
    pub counters: RequestCounters,
    pub services: ServiceBackends,
    pub shutdown: CancellationToken,
    /// Wakes the garbage collector after a write that may give it work.
    pub gc_wake: tokio::sync::Notify,
}

/// A running API server. Dropping it (or calling [`ApiServer::shutdown`]) closes its listeners and
/// every open watch and log stream.
pub struct ApiServer {
    state: Arc<ServerState>,
    http_addr: Option<SocketAddr>,
    https_addr: SocketAddr,
    ca_pem: String,
    admin_token: String,
}

impl ApiServer {
    /// Starts a server on two free loopback ports (HTTP and HTTPS).
    pub async fn start(config: ApiServerConfig) -> anyhow::Result<ApiServer> {
        let admin_token = config
            .admin_token
            .unwrap_or_else(|| format!("admin-{}", uuid::Uuid::new_v4().simple()));
        let tls = ServerTls::generate()?;
        let resources = Resources::with_builtins();
        let store = Store::new();
        let state = Arc::new(ServerState {
            name: config.name.clone(),
            store,
            resources,
            pod_logs: PodLogs::default(),
            tokens: Tokens::default(),
            rbac: Rbac::default(),
            faults: Arc::default(),
            counters: RequestCounters::default(),
            services: ServiceBackends::default(),
            shutdown: CancellationToken::new(),
            gc_wake: tokio::sync::Notify::new(),
        });
        state.tokens.add(admin_token.clone(), Identity::admin());
        handlers::bootstrap(&state)?;
        for object in config.preload {
            handlers::create_internal(&state, object)?;
        }
        super::gc::spawn(state.clone());
        super::event_ttl::spawn(
            state.clone(),
            config
                .event_ttl
                .unwrap_or(super::event_ttl::DEFAULT_EVENT_TTL),
        );

        let https = TcpListener::bind("127.0.0.1:0").await?;
        let https_addr = https.local_addr()?;
        let router = handlers::router(state.clone());
        let http_addr = if config.plain_http {
            let http = TcpListener::bind("127.0.0.1:0").await?;
            let address = http.local_addr()?;
            super::tls::serve(http, None, router.clone(), state.shutdown.clone());
            Some(address)
        } else {
            None
        };
        super::tls::serve(https, Some(tls.acceptor()?), router, state.shutdown.clone());
        tracing::debug!(name = %config.name, ?http_addr, %https_addr, "API server listening");
        Ok(ApiServer {
            state,
            http_addr,
            https_addr,
            ca_pem: tls.ca_pem,
            admin_token,
        })
    }

    /// `http://127.0.0.1:PORT` — no authentication; only when started with `plain_http`.
    pub fn http_url(&self) -> Option<String> {
        self.http_addr.map(|address| format!("http://{address}"))
    }

    /// `https://127.0.0.1:PORT` — needs the CA and a bearer token.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.https_addr)
    }

    /// The CA certificate (PEM) that signed the HTTPS listener's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The admin bearer token for the HTTPS listener.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Accepts one more bearer token, with the admin's rights (`system:admin` in
    /// `system:masters`), as GKE gives a cloud identity with `container.admin`.
    pub fn add_token(&self, token: impl Into<String>) {
        self.state.tokens.add(token.into(), Identity::admin());
    }

    /// A kubeconfig for the HTTPS listener with the admin token.
    pub fn kubeconfig(&self) -> Kubeconfig {
        kubeconfig_for(
            &self.state.name,
            &self.https_url(),
            &self.ca_pem,
            &self.admin_token,
        )
    }

    /// [`ApiServer::kubeconfig`] as YAML, ready to be written to a file.
    pub fn kubeconfig_yaml(&self) -> String {
        yaml_serde::to_string(&self.kubeconfig()).unwrap_or_default()
    }

    /// A kube-rs client over HTTPS with the admin token, as a service would connect.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let config =
            kube::Config::from_custom_kubeconfig(self.kubeconfig(), &KubeConfigOptions::default())
                .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// A client for the simulator's own controllers, never counted, never faulted. It calls the
    /// server in-process, through no port at all.
    pub fn internal_client(&self) -> kube::Client {
        let router = handlers::router(self.state.clone()).layer(axum::Extension(Internal));
        kube::Client::new(router, "default")
    }

    /// Container logs, written by the kubelet and served by `pods/{name}/log`.
    pub fn pod_logs(&self) -> &PodLogs {
        &self.state.pod_logs
    }

    /// Requests served, per user, verb, resource and response code (internal requests excluded).
    pub fn counters(&self) -> &RequestCounters {
        &self.state.counters
    }

    /// Switches for injected API failures.
    pub fn faults(&self) -> &Arc<ApiFaults> {
        &self.state.faults
    }

    /// Makes `/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/...` forward to `backend`.
    pub fn register_service_backend(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
        backend: SocketAddr,
    ) {
        self.state.services.register(namespace, name, port, backend);
    }

    /// Makes the service proxy forward to the Services `resolver` finds (the cluster's workloads)
    /// when no backend is registered for them.
    pub fn set_service_resolver(&self, resolver: super::ServiceResolver) {
        self.state.services.set_resolver(resolver);
    }

    /// Forgets the watch history up to now, so a watch from any earlier resourceVersion gets
    /// 410 Gone, as after etcd compaction.
    pub fn compact_history(&self) {
        self.state.store.compact();
    }

    /// Closes the listeners and every open stream.
    pub fn shutdown(&self) {
        self.state.shutdown.cancel();
        self.state.pod_logs.close_all();
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
    }
}

/// A kubeconfig with one cluster, one user (bearer token) and one current context.
pub fn kubeconfig_for(name: &str, server: &str, ca_pem: &str, token: &str) -> Kubeconfig {
    use base64::Engine as _;
    let name = if name.is_empty() { "sim" } else { name };
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.to_owned(),
            cluster: Some(Cluster {
                server: Some(server.to_owned()),
                certificate_authority_data: Some(
                    base64::engine::general_purpose::STANDARD.encode(ca_pem),
                ),
                ..Cluster::default()
            }),
            other: Default::default(),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.to_owned(),
            auth_info: Some(AuthInfo {
                token: Some(token.to_owned().into()),
                ..AuthInfo::default()
            }),
            other: Default::default(),
        }],
        contexts: vec![NamedContext {
            name: name.to_owned(),
            context: Some(Context {
                cluster: name.to_owned(),
                user: Some(name.to_owned()),
                namespace: None,
                extensions: None,
                other: Default::default(),
            }),
            other: Default::default(),
        }],
        current_context: Some(name.to_owned()),
        ..Kubeconfig::default()
    }
}
