//! `google.rpc` error details on gRPC statuses, through `tonic-types`.
//!
//! Invalid requests are answered with `INVALID_ARGUMENT` and a
//! `google.rpc.BadRequest` whose field violations name the request field
//! (e.g. `spec.nodes`). The provisioner's `ValidateSpec` returns the same
//! violations as [`internal::v1::FieldViolation`](crate::internal::v1::FieldViolation)
//! messages; the conversions here turn one into the other.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::internal::v1 as internal;

/// An `INVALID_ARGUMENT` status carrying a `google.rpc.BadRequest` with the
/// given violations. The status message lists them too, for clients that do
/// not decode details.
pub fn invalid_argument(violations: Vec<FieldViolation>) -> Status {
    let message = summary(&violations);
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request(violations),
    )
}

/// The field violations of a status's `google.rpc.BadRequest`, if any.
pub fn field_violations(status: &Status) -> Vec<FieldViolation> {
    status
        .get_details_bad_request()
        .map(|bad_request| bad_request.field_violations)
        .unwrap_or_default()
}

/// A one-line summary such as `invalid request: spec.nodes: must be at least 1`.
fn summary(violations: &[FieldViolation]) -> String {
    let parts: Vec<String> = violations
        .iter()
        .map(|violation| format!("{}: {}", violation.field, violation.description))
        .collect();
    if parts.is_empty() {
        "invalid request".to_owned()
    } else {
        format!("invalid request: {}", parts.join("; "))
    }
}

impl From<internal::FieldViolation> for FieldViolation {
    fn from(violation: internal::FieldViolation) -> Self {
        FieldViolation {
            field: violation.field,
            description: violation.description,
            reason: violation.reason,
            localized_message: None,
        }
    }
}

impl From<FieldViolation> for internal::FieldViolation {
    fn from(violation: FieldViolation) -> Self {
        internal::FieldViolation {
            field: violation.field,
            description: violation.description,
            reason: violation.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_round_trips_violations() {
        let mut violation = FieldViolation::new("spec.nodes", "must be at least 1");
        violation.reason = "OUT_OF_RANGE".to_owned();
        let status = invalid_argument(vec![violation]);

        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid request: spec.nodes: must be at least 1"
        );
        let violations = field_violations(&status);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "spec.nodes");
        assert_eq!(violations[0].description, "must be at least 1");
        assert_eq!(violations[0].reason, "OUT_OF_RANGE");
    }

    #[test]
    fn internal_violation_converts() {
        let violation = internal::FieldViolation {
            field: "spec.configTemplate".to_owned(),
            description: "unknown template \"nope\"".to_owned(),
            reason: "UNKNOWN_TEMPLATE".to_owned(),
        };
        let converted = FieldViolation::from(violation.clone());
        assert_eq!(converted.field, "spec.configTemplate");
        assert_eq!(internal::FieldViolation::from(converted), violation);
    }

    #[test]
    fn status_without_details_has_no_violations() {
        assert!(field_violations(&Status::not_found("nope")).is_empty());
    }
}
