//! The service proxy: `/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{path}` reaches a real
//! local HTTP server registered for that Service, with method, path, query and body intact, and
//! without the caller's credentials.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::any;
use common::*;
use serde_json::{Value, json};

/// A backend that answers with what it received.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
    axum::Json(json!({
        "method": method.as_str(),
        "uri": uri.to_string(),
        "authorization": headers.get("authorization").map(|v| v.to_str().unwrap_or("?")),
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn proxied(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: &str,
) -> Result<Value, kube::Error> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .body(body.as_bytes().to_vec())
        .expect("request");
    let text = client.request_text(request).await?;
    Ok(serde_json::from_str(&text).expect("backend answered JSON"))
}

#[tokio::test]
async fn forwards_to_the_registered_backend() {
    let (api, client) = start("proxy", "monitoring").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let backend = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, Router::new().fallback(any(echo))).await });
    api.register_service_backend("monitoring", "prometheus", 9090, backend);

    let get = proxied(
        &client,
        "GET",
        "/api/v1/namespaces/monitoring/services/prometheus:9090/proxy/federate?match[]=up",
        "",
    )
    .await
    .expect("GET through the proxy");
    assert_eq!(get["method"], "GET");
    assert_eq!(get["uri"], "/federate?match[]=up");
    // The API server's bearer token is for the API server, not for the backend.
    assert_eq!(get["authorization"], Value::Null);

    let post = proxied(
        &client,
        "POST",
        "/api/v1/namespaces/monitoring/services/prometheus:9090/proxy/api/v1/query",
        "query=up",
    )
    .await
    .expect("POST through the proxy");
    assert_eq!(post["uri"], "/api/v1/query");
    assert_eq!(post["body"], "query=up");

    // Without a port, the Service's only registered port is used.
    let bare = proxied(
        &client,
        "GET",
        "/api/v1/namespaces/monitoring/services/prometheus/proxy/-/ready",
        "",
    )
    .await
    .expect("GET without a port");
    assert_eq!(bare["uri"], "/-/ready");
}

#[tokio::test]
async fn a_service_without_a_backend_is_unavailable() {
    let (api, _) = start("proxy-none", "monitoring").await;
    let client = client_without_retries(&api).await;
    let status = status_of(
        proxied(
            &client,
            "GET",
            "/api/v1/namespaces/monitoring/services/absent:80/proxy/",
            "",
        )
        .await,
    );
    assert_eq!(status.code, 503, "{status:?}");
    assert_eq!(status.reason, "ServiceUnavailable");
    assert_eq!(
        status.message,
        "no endpoints available for service \"absent:80\""
    );
}
