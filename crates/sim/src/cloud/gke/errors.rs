//! Google's JSON error envelope, as container.googleapis.com sends it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered synchronously, e.g.
/// `{"error": {"code": 404, "message": "...", "errors": [{"message": "...", "domain": "global",
/// "reason": "notFound"}], "status": "NOT_FOUND"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleError {
    pub http: StatusCode,
    /// The canonical code's name (`NOT_FOUND`), which clients map back to a code.
    pub status: &'static str,
    /// The legacy `errors[].reason` (`notFound`).
    pub reason: &'static str,
    pub message: String,
}

impl GoogleError {
    fn new(
        http: StatusCode,
        status: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        GoogleError {
            http,
            status,
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "notFound", message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            "alreadyExists",
            message,
        )
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "badRequest",
            message,
        )
    }

    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            "failedPrecondition",
            message,
        )
    }

    /// A concurrency check failed (a stale `etag`).
    pub fn aborted(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ABORTED", "aborted", message)
    }

    /// What GKE answers when the project's quota cannot hold the request.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "forbidden",
            message,
        )
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.http.as_u16(),
                "message": self.message,
                "errors": [{
                    "message": self.message,
                    "domain": "global",
                    "reason": self.reason,
                }],
                "status": self.status,
            }
        });
        (self.http, Json(body)).into_response()
    }
}
