//! The GCE metadata server, as `google-cloud-auth`'s metadata-server credentials use it (through
//! `GCE_METADATA_HOST`): an access token for the instance's default service account, which every
//! test cluster's API server accepts, plus the project and account it belongs to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::json;

use super::model::project_number;
use crate::cloud::Cloud;

const FLAVOR: &str = "metadata-flavor";
/// GCE's tokens live an hour; they are handed out again until close to expiry.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
const RENEW_BEFORE: Duration = Duration::from_secs(300);

pub struct MetadataState {
    cloud: Cloud,
    project: String,
    email: String,
    token: Mutex<Option<(String, Instant)>>,
}

impl MetadataState {
    pub fn new(cloud: Cloud, project: &str) -> MetadataState {
        MetadataState {
            cloud,
            project: project.to_owned(),
            // The shape of GCE's default compute service account.
            email: format!(
                "{}-compute@developer.gserviceaccount.com",
                project_number(project)
            ),
            token: Mutex::default(),
        }
    }

    /// The current token and its remaining lifetime, minting a new one near expiry.
    fn token(&self) -> (String, Duration) {
        let mut token = self.token.lock();
        let now = Instant::now();
        match &*token {
            Some((value, expiry)) if *expiry > now + RENEW_BEFORE => (value.clone(), *expiry - now),
            _ => {
                let value = self.cloud.issue_identity_token();
                *token = Some((value.clone(), now + TOKEN_LIFETIME));
                (value, TOKEN_LIFETIME)
            }
        }
    }

    fn is_default_account(&self, account: &str) -> bool {
        account == "default" || account == self.email
    }
}

pub fn router(state: Arc<MetadataState>) -> Router {
    const ACCOUNT: &str = "/computeMetadata/v1/instance/service-accounts/{account}";
    let metadata = Router::new()
        .route(&format!("{ACCOUNT}/token"), get(token))
        .route(&format!("{ACCOUNT}/email"), get(email))
        .route(&format!("{ACCOUNT}/scopes"), get(scopes))
        .route(ACCOUNT, get(account))
        .route(&format!("{ACCOUNT}/"), get(account))
        .route("/computeMetadata/v1/project/project-id", get(project_id))
        .route(
            "/computeMetadata/v1/project/numeric-project-id",
            get(numeric_project_id),
        )
        .route(
            "/computeMetadata/v1/universe/universe-domain",
            get(|| async { "googleapis.com" }),
        )
        .layer(middleware::from_fn(require_flavor));
    Router::new()
        // The root answers anything, as GCE's does: clients probe it to detect the server.
        .route("/", get(|| async { "computeMetadata/\n" }))
        .merge(metadata)
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found\n") })
        .layer(middleware::from_fn(add_flavor))
        .with_state(state)
}

/// Every answer says `Metadata-Flavor: Google`; clients check it.
async fn add_flavor(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(FLAVOR, HeaderValue::from_static("Google"));
    response
}

/// Metadata requests must carry `Metadata-Flavor: Google` (the server's defence against SSRF).
async fn require_flavor(request: Request, next: Next) -> Response {
    let flavored = request
        .headers()
        .get(FLAVOR)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"google"));
    if !flavored {
        return (
            StatusCode::FORBIDDEN,
            "Missing required header \"Metadata-Flavor\": \"Google\"\n",
        )
            .into_response();
    }
    next.run(request).await
}

fn unknown_account() -> Response {
    (StatusCode::NOT_FOUND, "Not Found\n").into_response()
}

fn text(body: String) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/text"),
    );
    (headers, body).into_response()
}

async fn token(State(state): State<Arc<MetadataState>>, Path(account): Path<String>) -> Response {
    if !state.is_default_account(&account) {
        return unknown_account();
    }
    let (token, remaining) = state.token();
    axum::Json(json!({
        "access_token": token,
        "expires_in": remaining.as_secs(),
        "token_type": "Bearer",
    }))
    .into_response()
}

async fn email(State(state): State<Arc<MetadataState>>, Path(account): Path<String>) -> Response {
    if !state.is_default_account(&account) {
        return unknown_account();
    }
    text(state.email.clone())
}

const SCOPES: [&str; 1] = ["https://www.googleapis.com/auth/cloud-platform"];

async fn scopes(State(state): State<Arc<MetadataState>>, Path(account): Path<String>) -> Response {
    if !state.is_default_account(&account) {
        return unknown_account();
    }
    text(SCOPES.join("\n") + "\n")
}

/// The account directory; `?recursive=true` gives it as JSON, which is what clients ask for.
async fn account(State(state): State<Arc<MetadataState>>, Path(account): Path<String>) -> Response {
    if !state.is_default_account(&account) {
        return unknown_account();
    }
    axum::Json(json!({
        "aliases": ["default"],
        "email": state.email,
        "scopes": SCOPES,
    }))
    .into_response()
}

async fn project_id(State(state): State<Arc<MetadataState>>) -> Response {
    text(state.project.clone())
}

async fn numeric_project_id(State(state): State<Arc<MetadataState>>) -> Response {
    text(project_number(&state.project))
}
