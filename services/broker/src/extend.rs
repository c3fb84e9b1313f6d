//! `ExtendTestCluster`: moves the end of a cluster's TTL, or of a failed run's hold, later, up to
//! the operator's maximum (the shared rules in `testcluster_resources::lifetime`).
//!
//! The broker records the new end in the annotation `clusters.ci.cilium.io/extended-until`
//! (conditional on the version it decided from); the provisioner folds it into `status.expiresAt`
//! and enforces it. A run that is over without a hold has nothing left to extend.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use testcluster_api::errors::invalid_argument;
use testcluster_resources::TestClusterGKE;
use testcluster_resources::lifetime::{ANNOTATION_EXTENDED_UNTIL, Lifetimes, format_duration};
use testcluster_resources::validation::Reason;
use testcluster_resources::validation::limits::MAX_DURATION;
use testcluster_service::kube_errors::kube_status;
use tonic::Status;
use tonic_types::FieldViolation;

/// `by` as a duration: more than zero and at most [`MAX_DURATION`].
pub fn check_by(by: Option<pbjson_types::Duration>) -> Result<Duration, Status> {
    let violation = |reason: Reason, description: String| {
        invalid_argument(vec![FieldViolation {
            field: "by".to_owned(),
            description,
            reason: reason.as_str().to_owned(),
            ..FieldViolation::default()
        }])
    };
    let by =
        by.ok_or_else(|| violation(Reason::Required, "is required, such as 30m".to_owned()))?;
    let duration = u64::try_from(by.seconds)
        .ok()
        .filter(|_| by.nanos >= 0)
        .map(|seconds| Duration::new(seconds, u32::try_from(by.nanos).unwrap_or_default()))
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| violation(Reason::OutOfRange, "must be more than zero".to_owned()))?;
    if duration > MAX_DURATION {
        return Err(violation(
            Reason::OutOfRange,
            format!(
                "must be at most {}, got {}",
                format_duration(MAX_DURATION),
                format_duration(duration)
            ),
        ));
    }
    Ok(duration)
}

/// Extends `name` by `by`; returns the object as written and the new end.
pub async fn extend(
    clusters: &Api<TestClusterGKE>,
    lifetimes: &Lifetimes,
    name: &str,
    by: Duration,
) -> Result<(TestClusterGKE, Timestamp), Status> {
    let what = format!("TestClusterGKE {name}");
    // From the API server, not the cache: the write below is conditional on this version.
    let tc = clusters
        .get(name)
        .await
        .map_err(|e| kube_status(&what, e))?;
    let status = tc.status.clone().unwrap_or_default();
    let times = status.phase_timestamps.clone().unwrap_or_default();
    let expiry = lifetimes
        .expiry(&tc, status.phase, &times)
        .ok_or_else(|| Status::failed_precondition(format!("{what} has no creation time yet")))?;
    let gone =
        |why: String| Status::failed_precondition(format!("{what}: {why}; nothing to extend"));
    if tc.metadata.deletion_timestamp.is_some() {
        return Err(gone("it is being deleted".to_owned()));
    }
    if expiry.at <= Timestamp::now() {
        return Err(gone(format!(
            "it expired at {} and its cluster is deleted",
            expiry.at
        )));
    }
    let until = expiry.extended(by).ok_or_else(|| {
        let phase = status.phase.map_or("none".to_owned(), |p| format!("{p:?}"));
        gone(format!(
            "its run is over (phase {phase}) without a hold (spec.holdOnFailure), so its cluster \
             is deleted"
        ))
    })?;
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": tc.metadata.resource_version,
            "annotations": {ANNOTATION_EXTENDED_UNTIL: until.to_string()},
        }
    });
    let written = clusters
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| kube_status(&what, e))?;
    tracing::info!(name, until = %until, by = %format_duration(by), "test cluster extended");
    Ok((written, until))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_must_be_a_positive_duration_of_at_most_a_week() {
        let of = |seconds| Some(pbjson_types::Duration { seconds, nanos: 0 });
        assert_eq!(check_by(of(1800)).ok(), Some(Duration::from_secs(1800)));
        for (by, reason, message) in [
            (None, "REQUIRED", "is required, such as 30m"),
            (of(0), "OUT_OF_RANGE", "must be more than zero"),
            (of(-5), "OUT_OF_RANGE", "must be more than zero"),
            (
                of(8 * 24 * 3600),
                "OUT_OF_RANGE",
                "must be at most 7days, got 8days",
            ),
        ] {
            let status = check_by(by).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            let details = tonic_types::StatusExt::get_error_details(&status);
            let violations: Vec<(String, String, String)> = details
                .bad_request()
                .map(|b| b.field_violations.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|v| (v.field, v.reason, v.description))
                .collect();
            assert_eq!(
                violations,
                [("by".to_owned(), reason.to_owned(), message.to_owned())]
            );
        }
    }
}
