//! The service proxy: `/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{path}` forwarded to a
//! real local server: one registered for that Service, else a ready endpoint of the Service as the
//! cluster's workloads run it ([`ServiceResolver`]), as the real API server picks an endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use parking_lot::RwLock;

use super::errors::ApiError;

/// Finds a ready endpoint of a Service: `(namespace, name, port)`, where `port` is the port's
/// name or number as the proxy path gives it, or `None` for the Service's first port.
pub type ServiceResolver =
    Arc<dyn Fn(&str, &str, Option<&str>) -> Option<SocketAddr> + Send + Sync>;

#[derive(Default)]
pub struct ServiceBackends {
    backends: RwLock<HashMap<(String, String, u16), SocketAddr>>,
    /// The Services the cluster's workloads serve, when it runs any.
    resolver: RwLock<Option<ServiceResolver>>,
}

impl ServiceBackends {
    pub fn register(&self, namespace: &str, name: &str, port: u16, backend: SocketAddr) {
        self.backends
            .write()
            .insert((namespace.to_owned(), name.to_owned(), port), backend);
    }

    pub fn set_resolver(&self, resolver: ServiceResolver) {
        *self.resolver.write() = Some(resolver);
    }

    fn lookup(&self, namespace: &str, service: &str) -> Option<SocketAddr> {
        let (name, port) = match service.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (service, None),
        };
        let number = port.and_then(|port| port.parse::<u16>().ok());
        let registered = self
            .backends
            .read()
            .iter()
            .find(|((ns, n, p), _)| {
                ns == namespace && n == name && number.is_none_or(|number| number == *p)
            })
            .map(|(_, addr)| *addr);
        let resolver = self.resolver.read().clone();
        registered.or_else(|| resolver.and_then(|resolve| resolve(namespace, name, port)))
    }

    /// Forwards one request to the Service's backend.
    pub async fn forward(
        &self,
        namespace: &str,
        service: &str,
        path: &str,
        request: http::Request<Body>,
    ) -> Result<Response, ApiError> {
        let backend = self.lookup(namespace, service).ok_or_else(|| {
            ApiError::service_unavailable(format!(
                "no endpoints available for service \"{service}\""
            ))
        })?;
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?
            .to_bytes();
        let stream = tokio::net::TcpStream::connect(backend).await.map_err(|e| {
            ApiError::service_unavailable(format!("error trying to reach service: {e}"))
        })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| {
                    ApiError::service_unavailable(format!("error trying to reach service: {e}"))
                })?;
        tokio::spawn(connection);
        let mut forwarded = http::Request::builder()
            .method(parts.method)
            .uri(format!("/{}{query}", path.trim_start_matches('/')))
            .header(http::header::HOST, backend.to_string());
        for (name, value) in parts
            .headers
            .iter()
            .filter(|(n, _)| *n != http::header::HOST && *n != http::header::AUTHORIZATION)
        {
            forwarded = forwarded.header(name, value);
        }
        let forwarded = forwarded
            .body(http_body_util::Full::new(body))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let response = sender.send_request(forwarded).await.map_err(|e| {
            ApiError::service_unavailable(format!("error trying to reach service: {e}"))
        })?;
        Ok(response.map(Body::new).into_response())
    }
}
