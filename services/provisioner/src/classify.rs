//! Which dependency failures end a run. Config Connector reports a refused cloud call as `Ready`
//! False, reason `UpdateFailed`, and keeps retrying; for some failures retrying in place is
//! pointless (no quota) or may take longer than anyone waits (a zone out of capacity), so the run
//! ends with a machine-readable code instead. Pure functions: every rule is a row in a table test.
//!
//! The texts are GKE's, as Config Connector wraps them (see the reference's "Capacity and quota
//! errors"):
//!
//! - quota, refused at once: `... googleapi: Error 403: Insufficient regional quota to satisfy
//!   request: resource "CPUS": ..., forbidden, detail: `;
//! - IAM, refused at once, also a 403 but not about quota: `... googleapi: Error 403: Required
//!   "container.clusters.create" permission(s) for "projects/p"., forbidden` or `Permission
//!   denied on resource project p.`;
//! - stockout, when the operation ends: `... Error waiting for creating GKE cluster: Try a
//!   different location, or try again later: Google Compute Engine does not have enough resources
//!   available to fulfill request: <zone>., detail: `.

use std::time::Duration;

use testcluster_resources::Condition;
use testcluster_resources::metadata::CONDITION_READY;

use crate::readiness::Dependency;

/// Config Connector's `Ready` reason for a failed create or update.
pub const REASON_UPDATE_FAILED: &str = "UpdateFailed";

/// `status.error.code` of a run that hit the project's quota.
pub const CODE_QUOTA_EXCEEDED: &str = "QuotaExceeded";
/// `status.error.code` of a run whose credentials may not do what it needs (IAM).
pub const CODE_PERMISSION_DENIED: &str = "PermissionDenied";
/// `status.error.code` of a run whose zone had no capacity.
pub const CODE_ZONE_STOCKOUT: &str = "ZoneStockout";
/// `status.error.code` of a run whose dependencies did not become ready in time.
pub const CODE_PROVISIONING_TIMEOUT: &str = "ProvisioningTimeout";

/// What kind of failure a message reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// The `status.error.code`.
    pub code: &'static str,
    /// Whether trying again (later, or in another zone) may succeed.
    pub retryable: bool,
}

/// A stockout, in the wording of both GKE's operation message (`... does not have enough
/// resources available to fulfill request: us-central1-a.`) and the newer instance error (`The zone
/// '...' does not have enough resources available to fulfill the request.`). kubetest2 matches
/// the same phrase.
const STOCKOUT_MARKERS: &[&str] = &[
    "does not have enough resources available to fulfill",
    "GCE_STOCKOUT",
];
/// A quota refusal: GKE's message (regional, or "Quota exceeded for quota metric" from the
/// Compute API), or the operation's error code.
const QUOTA_MARKERS: &[&str] = &[
    "Insufficient regional quota",
    "Quota exceeded",
    "GCE_QUOTA_EXCEEDED",
];
/// A refusal by IAM. GKE answers both quota and permission failures with 403 `forbidden`, so a
/// 403 that is not about quota is about permissions.
const PERMISSION_MARKERS: &[&str] = &[
    "Error 403",
    "PERMISSION_DENIED",
    "Permission denied",
    "permission(s)",
    "does not have permission",
];

/// The classification of a failure message, or `None` for failures worth waiting out (Config
/// Connector retries them).
pub fn classify_message(message: &str) -> Option<Classification> {
    if STOCKOUT_MARKERS.iter().any(|m| message.contains(m)) {
        return Some(Classification {
            code: CODE_ZONE_STOCKOUT,
            // Another zone (or later) may have capacity. Zone fallback is not done yet, so for
            // now the run ends; the caller may retry.
            retryable: true,
        });
    }
    if QUOTA_MARKERS.iter().any(|m| message.contains(m)) {
        return Some(Classification {
            code: CODE_QUOTA_EXCEEDED,
            // The quota stays as it is until someone raises it.
            retryable: false,
        });
    }
    if PERMISSION_MARKERS.iter().any(|m| message.contains(m)) {
        return Some(Classification {
            code: CODE_PERMISSION_DENIED,
            // The service account keeps its roles until someone grants more.
            retryable: false,
        });
    }
    None
}

/// A dependency failure that ends the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyFailure {
    pub classification: Classification,
    /// `<Kind>:<ns>/<name>: <the dependency's Ready message>`.
    pub message: String,
}

/// The failure of `conditions` (a dependency's), if its `Ready` condition is False with reason
/// `UpdateFailed` and a message [`classify_message`] recognises.
pub fn classify_conditions(key: &str, conditions: &[Condition]) -> Option<DependencyFailure> {
    let ready = conditions.iter().find(|c| {
        c.type_ == CONDITION_READY && c.status == "False" && c.reason == REASON_UPDATE_FAILED
    })?;
    let classification = classify_message(&ready.message)?;
    Some(DependencyFailure {
        classification,
        message: format!("{key}: {}", ready.message),
    })
}

/// The first failure that ends the run, in the order of `dependencies` (the template's, which
/// puts the cluster before what depends on it).
pub fn first_failure(dependencies: &[Dependency]) -> Option<DependencyFailure> {
    dependencies
        .iter()
        .find_map(|d| classify_conditions(&d.key, &d.conditions))
}

/// The message of a [`CODE_PROVISIONING_TIMEOUT`] error: how long it waited and which
/// dependencies were not ready then, each with its `Ready` reason and message when it has one.
pub fn timeout_message(timeout: Duration, dependencies: &[Dependency]) -> String {
    let waiting: Vec<String> = dependencies
        .iter()
        .filter(|d| !d.is_ready())
        .map(
            |d| match d.conditions.iter().find(|c| c.type_ == CONDITION_READY) {
                Some(c) if !c.message.is_empty() => {
                    format!("{} ({}: {})", d.key, c.reason, c.message)
                }
                Some(c) => format!("{} ({})", d.key, c.reason),
                None => format!("{} (no status yet)", d.key),
            },
        )
        .collect();
    format!(
        "Dependencies not ready after {}: {}",
        humantime::format_duration(timeout),
        waiting.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GKE's texts, wrapped as Config Connector (and the simulator) put them in `Ready`.
    const STOCKOUT: &str = "Update call failed: error applying desired state: summary: Error \
        waiting for creating GKE cluster: Try a different location, or try again later: Google \
        Compute Engine does not have enough resources available to fulfill request: \
        europe-west2-b., detail: ";
    const STOCKOUT_NEWER: &str = "Update call failed: error applying desired state: summary: \
        Error waiting for creating GKE NodePool: Current errors: [GCE_STOCKOUT]: Instance \
        'gke-x-default-pool-1' creation failed: The zone 'projects/p/zones/us-central1-c' does \
        not have enough resources available to fulfill the request., detail: ";
    const QUOTA: &str = "Update call failed: error applying desired state: summary: googleapi: \
        Error 403: Insufficient regional quota to satisfy request: resource \"CPUS\": request \
        requires '72.0' and is short '48.0'. project has a quota of '24.0' with '24.0' \
        available. View and manage quotas at \
        https://console.cloud.google.com/iam-admin/quotas?usage=USED&project=p., forbidden, \
        detail: ";
    const QUOTA_POOL: &str = "Update call failed: error applying desired state: summary: error \
        creating NodePool: googleapi: Error 403: Insufficient regional quota to satisfy request: \
        resource \"CPUS\": request requires '12.0' and is short '8.0'. project has a quota of \
        '4.0' with '4.0' available., forbidden, detail: ";
    const NOT_FOUND: &str = "Update call failed: error applying desired state: summary: error \
        creating NodePool: googleapi: Error 404: Not found: p/europe-west2-b/c., notFound, \
        detail: ";

    fn ready(status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            last_transition_time: None,
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn messages_table() {
        let stockout = Some(Classification {
            code: "ZoneStockout",
            retryable: true,
        });
        let quota = Some(Classification {
            code: "QuotaExceeded",
            retryable: false,
        });
        let permission = Some(Classification {
            code: "PermissionDenied",
            retryable: false,
        });
        let cases = [
            ("stockout (operation message)", STOCKOUT, stockout),
            ("stockout (instance error)", STOCKOUT_NEWER, stockout),
            (
                "stockout, bare GKE text",
                "Try a different location, or try again later: Google Compute Engine does not \
                 have enough resources available to fulfill request: us-central1-a.",
                stockout,
            ),
            ("quota (cluster)", QUOTA, quota),
            ("quota (node pool)", QUOTA_POOL, quota),
            (
                "quota, bare GKE text",
                "Insufficient regional quota to satisfy request: resource \"CPUS\"",
                quota,
            ),
            (
                "quota, Compute API text",
                "googleapi: Error 403: Quota exceeded for quota metric 'CPUS', forbidden",
                quota,
            ),
            (
                "IAM, a missing permission",
                "Update call failed: error applying desired state: summary: error creating \
                 cluster: googleapi: Error 403: Required \"container.clusters.create\" \
                 permission(s) for \"projects/p\"., forbidden, detail: ",
                permission,
            ),
            (
                "IAM, a project the account cannot use",
                "googleapi: Error 403: Permission denied on resource project p., forbidden",
                permission,
            ),
            (
                "IAM, the canonical status",
                "rpc error: code = PermissionDenied desc = PERMISSION_DENIED: The caller does \
                 not have permission",
                permission,
            ),
            (
                "any other 403",
                "googleapi: Error 403: forbidden",
                permission,
            ),
            ("a missing cluster is waited out", NOT_FOUND, None),
            (
                "a transient error",
                "Update call failed: connection reset",
                None,
            ),
            ("empty", "", None),
        ];
        for (what, message, expected) in cases {
            assert_eq!(classify_message(message), expected, "{what}");
        }
    }

    #[test]
    fn only_update_failed_counts() {
        let key = "ContainerCluster:ns/c-abcde";
        let cases = [
            (
                "UpdateFailed stockout",
                ready("False", "UpdateFailed", STOCKOUT),
                Some(("ZoneStockout", true)),
            ),
            (
                "UpdateFailed quota",
                ready("False", "UpdateFailed", QUOTA),
                Some(("QuotaExceeded", false)),
            ),
            (
                "UpdateFailed, unknown cause",
                ready("False", "UpdateFailed", NOT_FOUND),
                None,
            ),
            (
                "still updating",
                ready("False", "Updating", "Update in progress"),
                None,
            ),
            (
                "dependency not ready",
                ready(
                    "False",
                    "DependencyNotReady",
                    "reference ContainerCluster ns/c is not ready",
                ),
                None,
            ),
            (
                "ready despite an old text",
                ready("True", "UpdateFailed", STOCKOUT),
                None,
            ),
            (
                "deletion failures are not provisioning failures",
                ready("False", "DeleteFailed", STOCKOUT),
                None,
            ),
        ];
        for (what, condition, expected) in cases {
            let failure = classify_conditions(key, std::slice::from_ref(&condition));
            assert_eq!(
                failure
                    .as_ref()
                    .map(|f| (f.classification.code, f.classification.retryable)),
                expected,
                "{what}"
            );
            if let Some(failure) = failure {
                assert_eq!(failure.message, format!("{key}: {}", condition.message));
            }
        }
    }

    #[test]
    fn the_first_failing_dependency_is_reported() {
        let dependency = |key: &str, conditions: Vec<Condition>| Dependency {
            key: key.into(),
            conditions,
            observed: true,
        };
        let dependencies = vec![
            dependency("ComputeNetwork:ns/c", vec![ready("True", "UpToDate", "")]),
            dependency(
                "ContainerCluster:ns/c",
                vec![ready("False", "UpdateFailed", STOCKOUT)],
            ),
            dependency(
                "ContainerNodePool:ns/c",
                vec![ready("False", "UpdateFailed", QUOTA_POOL)],
            ),
        ];
        let failure = first_failure(&dependencies).map(|f| f.message);
        assert_eq!(failure, Some(format!("ContainerCluster:ns/c: {STOCKOUT}")));
        assert_eq!(first_failure(&dependencies[..1]), None);
        assert_eq!(first_failure(&[]), None);
    }

    #[test]
    fn a_timeout_names_what_was_not_ready() {
        let dependencies = vec![
            Dependency {
                key: "ComputeNetwork:ns/c".into(),
                conditions: vec![ready("True", "UpToDate", "The resource is up to date")],
                observed: true,
            },
            Dependency {
                key: "ContainerCluster:ns/c".into(),
                conditions: vec![ready("False", "Updating", "Update in progress")],
                observed: true,
            },
            Dependency {
                key: "ContainerNodePool:ns/c".into(),
                conditions: vec![ready("False", "DependencyNotReady", "")],
                observed: true,
            },
            Dependency {
                key: "IAMServiceAccount:ns/c".into(),
                conditions: vec![],
                observed: false,
            },
        ];
        assert_eq!(
            timeout_message(Duration::from_secs(1800), &dependencies),
            "Dependencies not ready after 30m: ContainerCluster:ns/c (Updating: Update in \
             progress); ContainerNodePool:ns/c (DependencyNotReady); IAMServiceAccount:ns/c (no \
             status yet)"
        );
    }
}
