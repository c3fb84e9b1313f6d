//! The review APIs, created and answered at once, never stored: `TokenReview` (who a token
//! stands for, so another component can authenticate callers against this server), and
//! `SelfSubjectAccessReview`, `SubjectAccessReview`, `LocalSubjectAccessReview` (what the
//! authoriser says, so `kubectl auth can-i` works).

use serde_json::{Value, json};

use super::attributes::{Attributes, ResourceAttributes, Target};
use super::identity::Identity;
use super::rbac::Decision;
use crate::apiserver::errors::ApiError;
use crate::apiserver::resources::ResourceType;
use crate::apiserver::server::ServerState;

/// Whether `rt` is one of the review resources this module answers.
pub fn serves(rt: &ResourceType) -> bool {
    matches!(
        (rt.group.as_str(), rt.plural.as_str()),
        ("authentication.k8s.io", "tokenreviews")
            | (
                "authorization.k8s.io",
                "selfsubjectaccessreviews" | "subjectaccessreviews" | "localsubjectaccessreviews"
            )
    )
}

/// Answers the review in `body`, asked by `requester`; `namespace` is the request path's.
pub fn create(
    state: &ServerState,
    rt: &ResourceType,
    namespace: Option<&str>,
    requester: &Identity,
    body: Value,
) -> Result<Value, ApiError> {
    let mut review = if body.is_object() { body } else { json!({}) };
    review["apiVersion"] = json!(rt.api_version());
    review["kind"] = json!(rt.kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["status"] = match rt.plural.as_str() {
        "tokenreviews" => token_review(state, &review["spec"]),
        "selfsubjectaccessreviews" => access_review(state, rt, requester, &review["spec"], None)?,
        "localsubjectaccessreviews" => {
            let subject = subject_of(rt, &review["spec"])?;
            access_review(state, rt, &subject, &review["spec"], namespace)?
        }
        _ => {
            let subject = subject_of(rt, &review["spec"])?;
            access_review(state, rt, &subject, &review["spec"], None)?
        }
    };
    Ok(review)
}

fn token_review(state: &ServerState, spec: &Value) -> Value {
    let token = spec["token"].as_str().unwrap_or_default();
    let mut status = match state.tokens.authenticate(&state.store, token) {
        Some(identity) => json!({
            "authenticated": true,
            "user": {"username": identity.user, "uid": identity.uid, "groups": identity.groups},
        }),
        None => json!({"user": {}, "error": "invalid bearer token"}),
    };
    if let Some(audiences) = spec["audiences"].as_array().filter(|a| !a.is_empty()) {
        status["audiences"] = json!(audiences);
    }
    status
}

/// The user and groups a (Local)SubjectAccessReview asks about.
fn subject_of(rt: &ResourceType, spec: &Value) -> Result<Identity, ApiError> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let subject = Identity {
        user: spec["user"].as_str().unwrap_or_default().to_owned(),
        uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
        groups: strings(&spec["groups"]),
    };
    if subject.user.is_empty() && subject.groups.is_empty() {
        return Err(ApiError::invalid(
            &rt.kind,
            "",
            "spec.user: Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    Ok(subject)
}

/// The authoriser's answer for `subject` on the attributes in `spec`. `namespace`, for a
/// LocalSubjectAccessReview, is the only namespace it may ask about.
fn access_review(
    state: &ServerState,
    rt: &ResourceType,
    subject: &Identity,
    spec: &Value,
    namespace: Option<&str>,
) -> Result<Value, ApiError> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (resource, path) = (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
    let attributes = match (resource.is_object(), path.is_object()) {
        (true, false) => {
            let asked_namespace = text(&resource["namespace"]);
            if let Some(ns) = namespace
                && !asked_namespace.is_empty()
                && asked_namespace != ns
            {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "",
                    format!(
                        "spec.resourceAttributes.namespace: Invalid value: \"{asked_namespace}\": must match metadata.namespace"
                    ),
                ));
            }
            Attributes::resource(
                &text(&resource["verb"]),
                ResourceAttributes {
                    group: text(&resource["group"]),
                    resource: text(&resource["resource"]),
                    subresource: text(&resource["subresource"]),
                    namespace: namespace.map_or(asked_namespace, str::to_owned),
                    name: text(&resource["name"]),
                },
            )
        }
        (false, true) => Attributes {
            verb: text(&path["verb"]),
            target: Target::Path(text(&path["path"])),
        },
        _ => {
            return Err(ApiError::invalid(
                &rt.kind,
                "",
                "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
    };
    Ok(
        match state.rbac.authorize(&state.store, subject, &attributes) {
            Decision::Allow(reason) if reason.is_empty() => json!({"allowed": true}),
            Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
            Decision::Deny(reason) if reason.is_empty() => json!({"allowed": false}),
            Decision::Deny(reason) => json!({"allowed": false, "reason": reason}),
        },
    )
}
