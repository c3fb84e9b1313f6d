//! Run records: a finished run's `TestClusterGKE` stays as the run's record (phase, timestamps,
//! job outcome, error) for [`Settings::record_retention`] after the run's end, then the
//! provisioner deletes it. Its Job (owned by it) and the Job's pods go with it by garbage
//! collection, so nothing of a run outlives the retention.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use testcluster_resources::{TestClusterGKE, TestClusterGKEStatus};

use super::Context;
use super::error::Error;
use crate::Settings;

/// How long the record of a finished run is still kept; `None` for a run that has not ended.
pub(super) fn retention_left(
    settings: &Settings,
    status: &TestClusterGKEStatus,
) -> Option<Duration> {
    let finished = status.phase_timestamps.as_ref()?.finish_time.as_ref()?.0;
    let until = finished
        .checked_add(settings.record_retention)
        .unwrap_or(Timestamp::MAX);
    Some(Duration::try_from(until.duration_since(Timestamp::now())).unwrap_or_default())
}

/// Whether the record of a finished run has been kept long enough.
pub(super) fn retention_over(settings: &Settings, status: &TestClusterGKEStatus) -> bool {
    retention_left(settings, status).is_some_and(|left| left.is_zero())
}

/// Deletes the record; the finalizer's cleanup then takes whatever cloud resources are left, and
/// garbage collection the Job and its pods.
pub(super) async fn remove(tc: &TestClusterGKE, context: &Context) -> Result<Action, Error> {
    let namespace = tc.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<TestClusterGKE> = Api::namespaced(context.client.clone(), &namespace);
    match api
        .delete(&tc.name_any(), &DeleteParams::background())
        .await
    {
        Ok(_) => {
            tracing::info!(%namespace, name = %tc.name_any(), retention = ?context.settings.record_retention, "run record past retention, deleted");
            Ok(Action::await_change())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Action::await_change()),
        Err(error) => Err(error.into()),
    }
}
