//! HTTP: authentication, authorisation, fault injection and counting, then routing by path to
//! discovery, objects, watches and subresources.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::auth::attributes::{Attributes, ResourceAttributes};
use super::auth::rbac::Decision;
use super::auth::{self, Identity};
use super::errors::ApiError;
use super::faults::Injected;
use super::objects::{self, DeleteOptions, Write, Writer};
use super::patch::PatchKind;
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::server::{Internal, ServerState};
use super::store::StoreSnapshot;
use super::tls::OverTls;
use super::watch::{self, WatchRequest};
use super::{discovery, eviction, scale, table};
use crate::workloads::LogQuery;

/// Largest request body accepted (Kubernetes' own limit is 3 MiB per object).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Watches without `timeoutSeconds` end after this long, as the real server's default (30-60 min).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

pub use objects::create_internal;

/// Creates the namespaces and the default RBAC roles and bindings every cluster starts with.
pub fn bootstrap(state: &ServerState) -> anyhow::Result<()> {
    // Every API server starts with the same objects, so the first one's are kept and shared (a
    // thousand test clusters would otherwise hold a thousand copies of the default roles). They
    // have the same uids in every cluster, as clusters restored from one etcd snapshot would.
    static BOOTSTRAPPED: std::sync::OnceLock<StoreSnapshot> = std::sync::OnceLock::new();
    if let Some(snapshot) = BOOTSTRAPPED.get() {
        state.store.restore(snapshot);
        return Ok(());
    }
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create_internal(
            state,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )
        .map_err(|e| anyhow::anyhow!("bootstrap namespace {name}: {e}"))?;
    }
    for object in auth::defaults::objects() {
        create_internal(state, object).map_err(|e| anyhow::anyhow!("bootstrap RBAC: {e}"))?;
    }
    let _ = BOOTSTRAPPED.set(state.store.snapshot());
    Ok(())
}

/// Authentication, authorisation and counting around [`serve`].
async fn dispatch(State(state): State<Arc<ServerState>>, mut request: Request) -> Response {
    let internal = request.extensions().get::<Internal>().is_some();
    let over_tls = request.extensions().get::<OverTls>().is_some_and(|t| t.0);
    let identity =
        match auth::authenticate(&state.tokens, &state.store, request.headers(), over_tls) {
            Ok(identity) => identity,
            Err(unauthorized) => return unauthorized.into_response(),
        };
    let path = request.uri().path().to_owned();
    let route = Route::parse(&path);
    let query = parse_query(request.uri().query());
    let verb = match &route {
        Route::Resource(r) => verb(request.method(), r, &query, request.headers()),
        _ => "",
    };
    let counted = match &route {
        Route::Resource(r) if !internal => Some((verb, r.counted_resource())),
        _ => None,
    };
    let attributes = attributes(&route, verb, &request, &path, &query);
    let response = match state.rbac.authorize(&state.store, &identity, &attributes) {
        Decision::Allow(_) => {
            request.extensions_mut().insert(identity.clone());
            serve(&state, route, path, query, request, internal).await
        }
        Decision::Deny(reason) => attributes
            .forbidden(&identity.user, &reason)
            .into_response(),
    };
    if let Some((verb, resource)) = counted {
        let code = response.status().as_u16();
        state.counters.record(&identity.user, verb, &resource, code);
    }
    response
}

/// The request in the authoriser's terms. Server-side apply is a `patch`, and a list or watch
/// pinned to one name by its field selector names it, as for the real request-info parser.
fn attributes(
    route: &Route,
    verb: &str,
    request: &Request,
    path: &str,
    query: &HashMap<String, String>,
) -> Attributes {
    let Route::Resource(r) = route else {
        return Attributes::path(request.method(), path);
    };
    let verb = match verb {
        "apply" => "patch",
        verb => verb,
    };
    let pinned = || {
        FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
            .ok()
            .and_then(|f| f.pinned_name().map(str::to_owned))
    };
    let name = match &r.name {
        Some(name) => name.clone(),
        None => pinned().unwrap_or_default(),
    };
    Attributes::resource(
        verb,
        ResourceAttributes {
            group: r.group.clone(),
            resource: r.plural.clone(),
            subresource: r.subresource.clone().unwrap_or_default(),
            namespace: r.namespace.clone().unwrap_or_default(),
            name,
        },
    )
}

/// Fault injection, then routing by path.
async fn serve(
    state: &Arc<ServerState>,
    route: Route,
    path: String,
    query: HashMap<String, String>,
    request: Request,
    internal: bool,
) -> Response {
    if !internal {
        let latency = state.faults.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Injected::Error(code) = state.faults.roll() {
            return match code {
                429 => {
                    ([(header::RETRY_AFTER, "1")], ApiError::too_many_requests()).into_response()
                }
                _ => ApiError::internal("injected fault: etcdserver: request timed out")
                    .into_response(),
            };
        }
        if let Route::Resource(r) = &route
            && let Some(name) = &r.name
            && matches!(*request.method(), Method::PUT | Method::PATCH)
            && state.faults.roll_conflict()
        {
            return ApiError::conflict(
                &r.group,
                &r.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
            .into_response();
        }
    }
    let result = match route {
        Route::Root => Ok(json_response(
            StatusCode::OK,
            &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/openapi/v2", "/version"]}),
        )),
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::Version => Ok(json_response(StatusCode::OK, &discovery::version())),
        Route::OpenApiV2 => Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            )],
            super::openapi::document(&state.resources.all()),
        )
            .into_response()),
        Route::CoreVersions => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1")
                .to_owned();
            Ok(json_response(
                StatusCode::OK,
                &discovery::core_versions(&host),
            ))
        }
        Route::Groups => Ok(json_response(
            StatusCode::OK,
            &discovery::group_list(&state.resources.all()),
        )),
        Route::Group(group) => discovery::group(&state.resources.all(), &group)
            .map(|doc| json_response(StatusCode::OK, &doc))
            .ok_or_else(|| ApiError::not_found("", "groups", &group)),
        Route::Resources(group, version) => {
            discovery::resource_list(&state.resources.all(), &group, &version)
                .map(|doc| json_response(StatusCode::OK, &doc))
                .ok_or_else(|| {
                    ApiError::not_found("", "groupversions", &format!("{group}/{version}"))
                })
        }
        Route::Resource(route) => resource(state, route, query, request, internal).await,
        Route::NotFound => Err(ApiError {
            details: None,
            ..ApiError::not_found("", "", &path)
        }),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn verb(
    method: &Method,
    route: &ResourceRoute,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> &'static str {
    match (method.clone(), route.name.is_some()) {
        (Method::GET, true) => "get",
        (Method::GET, false) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            "watch"
        }
        (Method::GET, false) => "list",
        (Method::POST, _) => "create",
        (Method::PUT, _) => "update",
        (Method::PATCH, _) if content_type(headers).starts_with("application/apply-patch") => {
            "apply"
        }
        (Method::PATCH, _) => "patch",
        (Method::DELETE, true) => "delete",
        (Method::DELETE, false) => "deletecollection",
        _ => "other",
    }
}

enum Route {
    Root,
    Health,
    Version,
    OpenApiV2,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    Resource(ResourceRoute),
    NotFound,
}

struct ResourceRoute {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    /// What follows `proxy/` in a service proxy path.
    rest: String,
}

impl ResourceRoute {
    fn counted_resource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.plural),
            None => self.plural.clone(),
        }
    }
}

impl Route {
    fn parse(path: &str) -> Route {
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match segments.as_slice() {
            [] => Route::Root,
            ["healthz" | "readyz" | "livez", ..] => Route::Health,
            ["version"] => Route::Version,
            ["openapi", "v2"] | ["swagger-2.0.0.pb-v1"] => Route::OpenApiV2,
            ["api"] => Route::CoreVersions,
            ["api", "v1"] => Route::Resources(String::new(), "v1".into()),
            ["api", "v1", rest @ ..] => Route::resource("", "v1", rest),
            ["apis"] => Route::Groups,
            ["apis", group] => Route::Group((*group).to_owned()),
            ["apis", group, version] => {
                Route::Resources((*group).to_owned(), (*version).to_owned())
            }
            ["apis", group, version, rest @ ..] => Route::resource(group, version, rest),
            _ => Route::NotFound,
        }
    }

    fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
        let route = |namespace: Option<&str>,
                     plural: &str,
                     name: Option<&str>,
                     sub: Option<&str>,
                     tail: &[&str]| {
            Route::Resource(ResourceRoute {
                group: group.to_owned(),
                version: version.to_owned(),
                plural: plural.to_owned(),
                namespace: namespace.map(str::to_owned),
                name: name.map(str::to_owned),
                subresource: sub.map(str::to_owned),
                rest: tail.join("/"),
            })
        };
        match rest {
            ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => {
                route(None, "namespaces", Some(ns), Some(sub), &[])
            }
            ["namespaces", ns, plural] => route(Some(ns), plural, None, None, &[]),
            ["namespaces", ns, plural, name] => route(Some(ns), plural, Some(name), None, &[]),
            ["namespaces", ns, plural, name, sub, tail @ ..] => {
                route(Some(ns), plural, Some(name), Some(sub), tail)
            }
            [plural] => route(None, plural, None, None, &[]),
            [plural, name] => route(None, plural, Some(name), None, &[]),
            [plural, name, sub, tail @ ..] => route(None, plural, Some(name), Some(sub), tail),
            _ => Route::NotFound,
        }
    }
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}

async fn read_body(request: Request) -> Result<(HeaderMap, Value), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?
        .to_bytes();
    let media = content_type(&parts.headers).to_owned();
    if bytes.is_empty() {
        return Ok((parts.headers, Value::Null));
    }
    let value = if media.contains("protobuf") {
        // kubectl >= 1.32 creates simple built-in kinds this way.
        super::protobuf::decode(&bytes).ok_or_else(|| {
            ApiError::unsupported_media_type(&[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ])
        })?
    } else if media.contains("yaml") && !bytes.starts_with(b"{") {
        yaml_serde::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?
    };
    Ok((parts.headers, value))
}

/// The field manager of a write: `fieldManager`, else the client's name from its User-Agent.
fn manager(query: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|ua| ua.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

async fn resource(
    state: &Arc<ServerState>,
    route: ResourceRoute,
    query: HashMap<String, String>,
    request: Request,
    internal: bool,
) -> Result<Response, ApiError> {
    let rt = state
        .resources
        .find(&route.group, &route.version, &route.plural)
        .ok_or_else(|| {
            ApiError::not_found(
                &route.group,
                &route.plural,
                route.name.as_deref().unwrap_or(""),
            )
        })?;
    if rt.namespaced != route.namespace.is_some() && (route.name.is_some() || !rt.namespaced) {
        return Err(ApiError::not_found(
            &rt.group,
            &rt.plural,
            route.name.as_deref().unwrap_or(""),
        ));
    }
    let namespace = route.namespace.clone().unwrap_or_default();
    let method = request.method().clone();
    let headers = request.headers().clone();
    let manager = manager(&query, &headers);
    // `dryRun` as the query gives it; which options kind an invalid value is reported against
    // depends on the verb.
    let dry_run_query = query.get("dryRun").map_or(Value::Null, |v| json!(v));
    let writer = |options_kind: &str| {
        Ok::<_, ApiError>(Writer {
            manager: &manager,
            dry_run: objects::dry_run(&dry_run_query, options_kind)?,
        })
    };
    let object_response = |object: &Value, created: bool| {
        json_response(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            object,
        )
    };

    match (route.name.as_deref(), route.subresource.as_deref(), method) {
        (None, None, Method::GET) => {
            list_or_watch(state, &rt, route.namespace, &query, &headers, internal)
        }
        (None, None, Method::POST) if auth::reviews::serves(&rt) => {
            let requester = request
                .extensions()
                .get::<Identity>()
                .cloned()
                .ok_or_else(|| ApiError::internal("the request was not authenticated"))?;
            let (_, body) = read_body(request).await?;
            let review =
                auth::reviews::create(state, &rt, route.namespace.as_deref(), &requester, body)?;
            Ok(object_response(&review, true))
        }
        (None, None, Method::POST) => {
            let writer = writer("CreateOptions")?;
            let (_, body) = read_body(request).await?;
            let created = objects::create(state, &rt, route.namespace.as_deref(), body, writer)?;
            Ok(object_response(&created, true))
        }
        (None, None, Method::DELETE) => {
            delete_collection(state, &rt, route.namespace.as_deref(), &query, request).await
        }
        (Some(name), None | Some("status"), Method::GET) => {
            let object = state
                .store
                .get(&rt.storage_key(), &namespace, name)
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            if table::wants_table(header_str(&headers, header::ACCEPT)) {
                return Ok(json_response(
                    StatusCode::OK,
                    &table::render(
                        &rt,
                        &[object],
                        json!({"resourceVersion": state.store.current_rv().to_string()}),
                    ),
                ));
            }
            Ok(object_response(&object, false))
        }
        (Some(name), sub @ (None | Some("status") | Some("finalize")), Method::PUT) => {
            let writer = writer("UpdateOptions")?;
            let (_, body) = read_body(request).await?;
            let body = match sub {
                // finalize may only change spec.finalizers
                Some("finalize") => {
                    let current = state
                        .store
                        .get(&rt.storage_key(), "", name)
                        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
                    let mut next = (*current).clone();
                    next["spec"]["finalizers"] = body["spec"]["finalizers"].clone();
                    next
                }
                _ => body,
            };
            let (object, _) = objects::update(
                state,
                &rt,
                &namespace,
                name,
                Write::Replace(body),
                sub == Some("status"),
                writer,
            )?;
            Ok(object_response(&object, false))
        }
        (Some(name), sub @ (None | Some("status")), Method::PATCH) => {
            let writer = writer("PatchOptions")?;
            let kind = PatchKind::from_content_type(content_type(&headers), rt.custom)?;
            let (_, body) = read_body(request).await?;
            let write = if kind == PatchKind::Apply {
                if !query.contains_key("fieldManager") {
                    return Err(ApiError::bad_request(
                        "PATCH, application/apply-patch+yaml requires a non-empty fieldManager",
                    ));
                }
                let force = query.get("force").is_some_and(|f| f == "true");
                Write::Apply {
                    config: body,
                    force,
                }
            } else {
                Write::Patch(kind, body)
            };
            let (object, created) =
                objects::update(state, &rt, &namespace, name, write, sub.is_some(), writer)?;
            Ok(object_response(&object, created))
        }
        (Some(name), None, Method::DELETE) => {
            let (_, body) = read_body(request).await?;
            let mut options = delete_options(&query, body)?;
            if let Some(grace) = query.get("gracePeriodSeconds") {
                options.grace_period_seconds = Some(grace.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds: {grace}"))
                })?);
            }
            let object = objects::delete(state, &rt, &namespace, name, &options)?;
            Ok(object_response(&object, false))
        }
        (Some(name), Some("log"), Method::GET) if rt.plural == "pods" => {
            pod_log(state, &namespace, name, &query)
        }
        (Some(name), Some("scale"), method) if rt.subresources.contains(&"scale") => {
            let change = match method {
                Method::GET => None,
                Method::PUT => Some((
                    writer("UpdateOptions")?,
                    scale::ScaleWrite::Replace(read_body(request).await?.1),
                )),
                Method::PATCH => {
                    let kind = PatchKind::from_content_type(content_type(&headers), false)?;
                    Some((
                        writer("PatchOptions")?,
                        scale::ScaleWrite::Patch(kind, read_body(request).await?.1),
                    ))
                }
                _ => return Err(ApiError::method_not_allowed()),
            };
            let scale = match change {
                None => scale::get(state, &rt, &namespace, name)?,
                Some((writer, change)) => {
                    scale::write(state, &rt, &namespace, name, change, writer)?
                }
            };
            Ok(json_response(StatusCode::OK, &scale))
        }
        (Some(name), Some("eviction"), Method::POST) if rt.plural == "pods" => {
            let (_, body) = read_body(request).await?;
            let status = eviction::evict(state, &rt, &namespace, name, &body)?;
            Ok(json_response(StatusCode::CREATED, &status))
        }
        (Some(name), Some("token"), Method::POST) if rt.plural == "serviceaccounts" => {
            let (_, body) = read_body(request).await?;
            token_request(state, &namespace, name, &body)
        }
        (Some(name), Some("proxy"), _) if rt.plural == "services" => {
            state
                .services
                .forward(&namespace, name, &route.rest, request)
                .await
        }
        (_, Some(sub), _) if !rt.subresources.contains(&sub) && sub != "status" => {
            Err(ApiError::not_found(
                &rt.group,
                &format!("{}/{sub}", rt.plural),
                route.name.as_deref().unwrap_or(""),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// DeleteOptions from the body, where the query's `propagationPolicy` and `dryRun` win.
fn delete_options(
    query: &HashMap<String, String>,
    mut body: Value,
) -> Result<DeleteOptions, ApiError> {
    if !body.is_object() {
        body = json!({});
    }
    for key in ["propagationPolicy", "dryRun"] {
        if let Some(value) = query.get(key) {
            body[key] = json!(value);
        }
    }
    DeleteOptions::from_body(&body)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn selectors(
    rt: &ResourceType,
    query: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    Ok((
        LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?,
        FieldSelector::parse_for(
            query.get("fieldSelector").map_or("", String::as_str),
            &rt.group,
            &rt.plural,
        )?,
    ))
}

fn list_or_watch(
    state: &Arc<ServerState>,
    rt: &ResourceType,
    namespace: Option<String>,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    internal: bool,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(rt, query)?;
    let as_table = table::wants_table(header_str(headers, header::ACCEPT));
    let flag = |name: &str| query.get(name).is_some_and(|v| v == "true" || v == "1");
    if flag("watch") {
        let from =
            match query.get("resourceVersion").map(String::as_str) {
                None | Some("" | "0") => None,
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {rv}"))
                })?),
            };
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
        let timeout = if internal {
            timeout
        } else {
            state.faults.watch_timeout(timeout)
        };
        let request = WatchRequest {
            rt: rt.clone(),
            namespace,
            labels,
            fields,
            from,
            bookmarks: flag("allowWatchBookmarks"),
            timeout,
            as_table,
            faultable: !internal,
        };
        let body = Body::from_stream(watch::stream(state.clone(), request));
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response());
    }

    let exact = match (
        query.get("resourceVersionMatch").map(String::as_str),
        query.get("resourceVersion").filter(|rv| !rv.is_empty()),
    ) {
        (Some("Exact"), Some(rv)) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
        (Some("Exact"), None) => {
            return Err(ApiError::invalid(
                "ListOptions.meta.k8s.io",
                "",
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        (None | Some("" | "NotOlderThan"), _) => None,
        (Some(other), _) => {
            return Err(ApiError::invalid(
                "ListOptions.meta.k8s.io",
                "",
                format!(
                    "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\", \"\""
                ),
            ));
        }
    };
    let (objects, rv) = match (exact, fields.pinned_name()) {
        (Some(at), _) if at < state.store.current_rv() => (
            state
                .store
                .list_at(&rt.storage_key(), namespace.as_deref(), at)
                .map_err(|_| {
                    ApiError::gone("The resourceVersion for the provided list is too old.")
                })?,
            at,
        ),
        (_, pinned) => current_objects(state, rt, namespace.as_deref(), pinned),
    };
    let matching: Vec<Arc<Value>> = objects
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();

    // Paging: the continue token is the position after the last item returned.
    let start = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let position = decode_continue(token)?;
            matching.partition_point(|o| object_position(o) <= position)
        }
        None => 0,
    };
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let end = limit.map_or(matching.len(), |l| (start + l).min(matching.len()));
    let page = &matching[start..end];
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if end < matching.len()
        && let Some(last) = page.last()
    {
        metadata["continue"] = json!(encode_continue(&object_position(last)));
        metadata["remainingItemCount"] = json!(matching.len() - end);
    }
    if as_table {
        return Ok(json_response(
            StatusCode::OK,
            &table::render(rt, page, metadata),
        ));
    }
    // Serialised by hand so that 10,000 objects are not cloned into one Value first.
    let mut body = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        rt.kind,
        rt.api_version(),
        metadata
    )
    .into_bytes();
    for (i, object) in page.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, object.as_ref())
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    body.extend_from_slice(b"]}");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

fn object_position(object: &Value) -> (String, String) {
    let meta = &object["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default().to_owned(),
        meta["name"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The objects a list is answered from now, and the resourceVersion they are at; a selector that
/// pins the name is answered without a scan.
fn current_objects(
    state: &ServerState,
    rt: &ResourceType,
    namespace: Option<&str>,
    pinned_name: Option<&str>,
) -> (Vec<Arc<Value>>, u64) {
    match (pinned_name, namespace, rt.namespaced) {
        (Some(name), Some(ns), _) => (
            state
                .store
                .get(&rt.storage_key(), ns, name)
                .into_iter()
                .collect(),
            state.store.current_rv(),
        ),
        (Some(name), None, false) => (
            state
                .store
                .get(&rt.storage_key(), "", name)
                .into_iter()
                .collect(),
            state.store.current_rv(),
        ),
        _ => state.store.list(&rt.storage_key(), namespace),
    }
}

fn encode_continue(position: &(String, String)) -> String {
    let raw = serde_json::to_vec(&json!([position.0, position.1])).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|raw| serde_json::from_slice::<(String, String)>(&raw).ok())
        .ok_or_else(|| ApiError::bad_request("continue key is not valid: malformed continue token"))
}

async fn delete_collection(
    state: &Arc<ServerState>,
    rt: &ResourceType,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(rt, query)?;
    let (_, body) = read_body(request).await?;
    let options = delete_options(query, body)?;
    let (objects, _) = state.store.list(&rt.storage_key(), namespace);
    let mut deleted = Vec::new();
    for object in objects
        .iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
    {
        let (ns, name) = object_position(object);
        match objects::delete(state, rt, &ns, &name, &options) {
            Ok(gone) => deleted.push(gone),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let items: Vec<&Value> = deleted.iter().map(|o| o.as_ref()).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {}, "items": items}),
    ))
}

fn pod_log(
    state: &ServerState,
    namespace: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let pod = state
        .store
        .get("/pods", namespace, name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(c) || init.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None => match (
            pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-logs-container"].as_str(),
            containers.as_slice(),
        ) {
            (Some(default), _) if containers.iter().any(|c| c == default) => default.to_owned(),
            (_, [only]) => only.clone(),
            _ => {
                let mut all = containers.clone();
                all.extend(init.iter().cloned());
                return Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    all.join(" ")
                )));
            }
        },
    };
    let flag = |key: &str| query.get(key).is_some_and(|v| v == "true" || v == "1");
    let stream = state
        .pod_logs
        .stream(LogQuery {
            namespace: namespace.to_owned(),
            pod: name.to_owned(),
            container,
            follow: flag("follow"),
            previous: flag("previous"),
            tail_lines: query.get("tailLines").and_then(|t| t.parse().ok()),
            timestamps: flag("timestamps"),
        })
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let body = Body::from_stream(futures::StreamExt::map(
        stream,
        Ok::<_, std::convert::Infallible>,
    ));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], body).into_response())
}

/// `serviceaccounts/{name}/token`: mints a bearer token this server accepts for as long as the
/// ServiceAccount exists and the token has not expired.
fn token_request(
    state: &ServerState,
    namespace: &str,
    name: &str,
    body: &Value,
) -> Result<Response, ApiError> {
    let account = state
        .store
        .get("/serviceaccounts", namespace, name)
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let seconds = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(seconds);
    let uid = account["metadata"]["uid"].as_str().unwrap_or_default();
    let token = state.tokens.issue(namespace, name, uid, expires);
    let mut response = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": objects::now()},
        "spec": body["spec"].clone(),
        "status": {"token": token, "expirationTimestamp": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
    });
    response["spec"]["expirationSeconds"] = json!(seconds);
    Ok(json_response(StatusCode::CREATED, &response))
}
