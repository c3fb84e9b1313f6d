//! The end of a test cluster's life: `status.expiresAt`, computed by the shared rules
//! (`testcluster_resources::lifetime`) from the phase and its times; the TTL enforced (phase
//! Expired, after which the terminal-phase teardown deletes the cloud resources); the hold of a
//! failed run; and the Events that say so.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use testcluster_resources::lifecycle::Facts;
use testcluster_resources::lifetime::{Bound, Expiry, Lifetimes, format_duration};
use testcluster_resources::{Phase, TestClusterGKE, TestClusterGKEStatus};

use super::Context;
use super::error::Error;
use super::status::{ProvisionerStatus, now, write_status};

/// When `tc`'s cloud resources go, with the phase and times of `desired`.
pub(super) fn of(
    tc: &TestClusterGKE,
    lifetimes: &Lifetimes,
    desired: &ProvisionerStatus,
) -> Option<Expiry> {
    lifetimes.expiry(tc, desired.phase, &desired.phase_timestamps)
}

/// The TTL's end, when it has passed and the run is not over.
pub(super) fn ttl_ended(
    tc: &TestClusterGKE,
    lifetimes: &Lifetimes,
    status: &TestClusterGKEStatus,
) -> Option<Expiry> {
    let current = ProvisionerStatus::from_current(status);
    of(tc, lifetimes, &current)
        .filter(|expiry| expiry.bound == Bound::Ttl && expiry.at <= Timestamp::now())
}

/// How long until the TTL or the hold of `desired` ends: the timer that wakes the reconcile then
/// (nothing else would). `None` when nothing is pending.
pub(super) fn timer(
    tc: &TestClusterGKE,
    lifetimes: &Lifetimes,
    desired: &ProvisionerStatus,
) -> Option<Duration> {
    of(tc, lifetimes, desired)
        .filter(|expiry| expiry.bound != Bound::RunEnded)
        .map(|expiry| expiry.remaining(Timestamp::now()))
}

/// The TTL ended before the run: phase Expired (the teardown follows on the phase change) and a
/// Warning Event that says why.
pub(super) async fn expire(
    tc: &TestClusterGKE,
    context: &Context,
    status: &TestClusterGKEStatus,
    expiry: Expiry,
) -> Result<Action, Error> {
    let mut desired = ProvisionerStatus::from_current(status);
    let expired = Facts {
        expired: true,
        ..Facts::of_job(status)
    };
    desired.advance(expired, &now());
    if write_status(tc, context, &desired).await? && desired.phase == Some(Phase::Expired) {
        let ttl = format_duration(context.settings.lifetimes.ttl(&tc.spec));
        tracing::info!(name = %tc.name_any(), %ttl, at = %expiry.at, "TTL ended");
        context
            .publish(
                tc,
                EventType::Warning,
                "Expired",
                format!(
                    "The cluster's time (ttl {ttl}, extensions included) ended at {}; deleting \
                     its cloud resources",
                    expiry.at
                ),
            )
            .await;
    }
    Ok(Action::await_change())
}

/// The Events of a written `expiresAt`: a failed run held for debugging, and an extension.
pub(super) async fn publish_change(
    tc: &TestClusterGKE,
    context: &Context,
    before: &ProvisionerStatus,
    after: &ProvisionerStatus,
    expiry: Expiry,
) {
    let name = tc.name_any();
    if before.phase != after.phase && expiry.bound == Bound::Hold {
        let hold = format_duration(context.settings.lifetimes.hold(&tc.spec));
        context
            .publish(
                tc,
                EventType::Normal,
                "Held",
                format!(
                    "The run failed; keeping its cluster until {} (holdOnFailure {hold}): \
                     `tcctl kubeconfig {name}` gets in, `tcctl extend {name}` keeps it longer",
                    expiry.at
                ),
            )
            .await;
        return;
    }
    let moved_on = match (&before.expires_at, &after.expires_at) {
        (Some(before), Some(after)) => after.0 > before.0,
        _ => false,
    };
    if before.phase == after.phase && moved_on && expiry.bound != Bound::RunEnded {
        let what = if expiry.bound == Bound::Hold {
            "hold"
        } else {
            "TTL"
        };
        context
            .publish(
                tc,
                EventType::Normal,
                "Extended",
                format!(
                    "The {what} was extended; the cluster expires at {}",
                    expiry.at
                ),
            )
            .await;
    }
}
