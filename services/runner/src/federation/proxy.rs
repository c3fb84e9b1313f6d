//! The `/federate` proxy of one test cluster: the request's query (every `match[]`, and any
//! other parameter, in order and byte for byte) goes unchanged to the Prometheus in that test
//! cluster, through the test cluster's API server service proxy
//! (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/federate`), so no test cluster needs an
//! ingress of its own. The answer comes back as it is, streamed.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use kube::runtime::reflector::ObjectRef;

use super::{FederationState, sd};

/// The longest query string forwarded, in bytes (a long list of `match[]` selectors fits).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// `GET /federation/{namespace}/{name}/federate?match[]=...`
pub async fn federate(
    State(state): State<Arc<FederationState>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return refuse(
            StatusCode::URI_TOO_LONG,
            format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
        );
    }
    let key = ObjectRef::new(&name).within(&namespace);
    if !state.store.get(&key).is_some_and(|r| sd::is_live(&r)) {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "test cluster {namespace}/{name} is not live (no run, run ended, or no metrics stack)"
            ),
        );
    }
    // Bounds the requests held open towards test clusters, answers included.
    let Ok(permit) = state.in_flight.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "more than {} federation requests at once",
                state.settings.max_in_flight
            ),
        );
    };
    let client = match state.clients.client(&namespace, &name).await {
        Ok(client) => client,
        Err(error) => return refuse(StatusCode::BAD_GATEWAY, error.to_string()),
    };
    let service = &state.settings.prometheus;
    let mut uri = format!(
        "/api/v1/namespaces/{}/services/{}:{}/proxy/federate",
        service.namespace, service.name, service.port
    );
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query);
    }
    let mut request = Request::get(uri);
    // Prometheus negotiates the exposition format; the answer's Content-Type says which one.
    if let Some(accept) = headers.get(header::ACCEPT) {
        request = request.header(header::ACCEPT, accept);
    }
    let request = match request.body(kube::client::Body::empty()) {
        Ok(request) => request,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let sent = tokio::time::timeout(state.settings.timeout, client.send(request)).await;
    let response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            state.clients.forget(&namespace, &name);
            return refuse(
                StatusCode::BAD_GATEWAY,
                format!("reaching the Prometheus of test cluster {namespace}/{name}: {error}"),
            );
        }
        Err(_) => {
            return refuse(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the Prometheus of test cluster {namespace}/{name} did not answer within {:?}",
                    state.settings.timeout
                ),
            );
        }
    };
    if matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        // The credentials may have been replaced: read them again next time.
        state.clients.forget(&namespace, &name);
    }
    let (parts, body) = response.into_parts();
    // The permit goes with the body, so a slow reader keeps its slot until it is done.
    let body = body.map_frame(move |frame| {
        let _held = &permit;
        frame
    });
    let mut answer = Response::builder().status(parts.status);
    for name in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
        if let Some(value) = parts.headers.get(&name) {
            answer = answer.header(name, value);
        }
    }
    answer
        .body(Body::new(body))
        .unwrap_or_else(|error| refuse(StatusCode::BAD_GATEWAY, error.to_string()))
}

fn refuse(status: StatusCode, message: String) -> Response {
    tracing::debug!(%status, %message, "federation request refused");
    (status, format!("{message}\n")).into_response()
}
