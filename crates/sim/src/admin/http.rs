//! The fault settings over HTTP, so they can change while the simulator runs (`tcctl faults`, or
//! curl). Every request carries the simulator's admin bearer token: a job running on the same
//! machine must not be able to turn faults on.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

use super::FaultSettings;
use crate::apiserver::{ApiFaultSettings, ApiFaults};
use crate::cloud::{Cloud, ZoneFault};

/// Locations with a fault at once, at most: each is a few bytes, but none is unbounded.
const MAX_ZONES: usize = 256;

/// Handles on the switches the settings turn: the cloud's per-location faults and the management
/// API server's. Cheap to clone.
#[derive(Clone)]
pub struct FaultSwitches {
    pub(crate) cloud: Cloud,
    pub(crate) api: Arc<ApiFaults>,
    pub(crate) token: String,
}

impl FaultSwitches {
    /// Replaces every setting with `settings`.
    pub fn apply(&self, settings: &FaultSettings) -> Result<(), String> {
        if settings.zones.len() > MAX_ZONES {
            return Err(format!("at most {MAX_ZONES} locations may have faults"));
        }
        for zone in settings.zones.keys() {
            check_location(zone)?;
        }
        self.cloud.faults().clear();
        for (zone, fault) in &settings.zones {
            self.cloud.faults().set(zone, fault.clone());
        }
        self.api.set(&settings.api);
        Ok(())
    }

    /// The settings as they are now.
    pub fn settings(&self) -> FaultSettings {
        FaultSettings {
            zones: self.cloud.faults().snapshot(),
            api: self.api.settings(),
        }
    }
}

/// `/faults` and below; every route needs `Authorization: Bearer <admin token>`.
pub fn router(switches: FaultSwitches) -> Router {
    Router::new()
        .route("/faults", get(show).put(replace).delete(clear))
        .route("/faults/zones/{zone}", put(set_zone).delete(clear_zone))
        .route("/faults/api", put(set_api))
        .route("/faults/drop-watches", post(drop_watches))
        .route_layer(middleware::from_fn_with_state(
            switches.clone(),
            require_token,
        ))
        .with_state(switches)
}

async fn require_token(
    State(switches): State<FaultSwitches>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if presented.is_some_and(|token| token.trim() == switches.token) {
        return next.run(request).await;
    }
    refuse(
        StatusCode::UNAUTHORIZED,
        "the simulator's admin token is required (the token of its kubeconfig)",
    )
}

async fn show(State(switches): State<FaultSwitches>) -> Json<FaultSettings> {
    Json(switches.settings())
}

async fn replace(
    State(switches): State<FaultSwitches>,
    Json(settings): Json<FaultSettings>,
) -> Response {
    if let Err(message) = check_rates(&settings.api).and_then(|()| switches.apply(&settings)) {
        return refuse(StatusCode::BAD_REQUEST, &message);
    }
    Json(switches.settings()).into_response()
}

async fn clear(State(switches): State<FaultSwitches>) -> Json<FaultSettings> {
    switches.cloud.faults().clear();
    switches.api.clear();
    Json(switches.settings())
}

async fn set_zone(
    State(switches): State<FaultSwitches>,
    Path(zone): Path<String>,
    Json(fault): Json<ZoneFault>,
) -> Response {
    if let Err(message) = check_location(&zone) {
        return refuse(StatusCode::BAD_REQUEST, &message);
    }
    let known = switches.cloud.faults().snapshot();
    if !known.contains_key(&zone) && known.len() >= MAX_ZONES {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("at most {MAX_ZONES} locations may have faults"),
        );
    }
    switches.cloud.faults().set(&zone, fault);
    Json(switches.settings()).into_response()
}

async fn clear_zone(
    State(switches): State<FaultSwitches>,
    Path(zone): Path<String>,
) -> Json<FaultSettings> {
    switches.cloud.faults().set(&zone, ZoneFault::default());
    Json(switches.settings())
}

async fn set_api(
    State(switches): State<FaultSwitches>,
    Json(settings): Json<ApiFaultSettings>,
) -> Response {
    if let Err(message) = check_rates(&settings) {
        return refuse(StatusCode::BAD_REQUEST, &message);
    }
    switches.api.set(&settings);
    Json(switches.settings()).into_response()
}

async fn drop_watches(State(switches): State<FaultSwitches>) -> StatusCode {
    switches.api.drop_watches();
    StatusCode::NO_CONTENT
}

fn check_rates(settings: &ApiFaultSettings) -> Result<(), String> {
    let rates = [
        settings.error_rate,
        settings.throttle_rate,
        settings.conflict_rate,
    ];
    if rates.iter().all(|rate| (0.0..=1.0).contains(rate)) {
        Ok(())
    } else {
        Err("rates are fractions between 0 and 1".into())
    }
}

/// A GCP location name: lower-case letters, digits and dashes, as `europe-west2-b`.
fn check_location(zone: &str) -> Result<(), String> {
    let valid = !zone.is_empty()
        && zone.len() <= 63
        && zone
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{zone:?} is not a location (lower-case letters, digits and dashes, at most 63)"
        ))
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}
