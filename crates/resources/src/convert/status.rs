//! The resource (metadata, spec and status) as a gRPC `TestCluster`, and
//! phases both ways. Status only flows this way: the services write status
//! to the resource, and callers read it through the API.

use kube::ResourceExt;
use testcluster_api::v1 as api;

use super::time::to_timestamp;
use crate::TestClusterGKE;
use crate::status::{
    Condition, ErrorStatus, JobStatus, Phase, PhaseTimestamps, TestClusterGKEStatus,
};

/// The gRPC view of a `TestClusterGKE`.
pub fn to_test_cluster(resource: &TestClusterGKE) -> api::TestCluster {
    let metadata = &resource.metadata;
    api::TestCluster {
        namespace: resource.namespace().unwrap_or_default(),
        name: resource.name_any(),
        uid: metadata.uid.clone().unwrap_or_default(),
        spec: Some(resource.spec.clone().into()),
        status: Some(
            resource
                .status
                .as_ref()
                .map(status_to_api)
                .unwrap_or_default(),
        ),
        labels: resource.labels().clone(),
        annotations: resource.annotations().clone(),
        create_time: metadata.creation_timestamp.as_ref().map(to_timestamp),
        delete_time: metadata.deletion_timestamp.as_ref().map(to_timestamp),
        generation: metadata.generation.unwrap_or_default(),
        resource_version: metadata.resource_version.clone().unwrap_or_default(),
    }
}

/// The gRPC view of a status.
pub fn status_to_api(status: &TestClusterGKEStatus) -> api::TestClusterStatus {
    api::TestClusterStatus {
        cluster_name: status.cluster_name.clone().unwrap_or_default(),
        conditions: status.conditions.iter().map(condition_to_api).collect(),
        dependency_conditions: status
            .dependency_conditions
            .iter()
            .map(|(key, conditions)| {
                let conditions = conditions.iter().map(condition_to_api).collect();
                (key.clone(), api::Conditions { conditions })
            })
            .collect(),
        phase: status
            .phase
            .map_or(api::Phase::Unspecified, api::Phase::from)
            .into(),
        location: status.location.clone().unwrap_or_default(),
        job: status.job.as_ref().map(job_to_api),
        error: status.error.as_ref().map(error_to_api),
        observed_generation: status.observed_generation.unwrap_or_default(),
        phase_timestamps: status.phase_timestamps.as_ref().map(timestamps_to_api),
        logs_url: status.logs_url.clone().unwrap_or_default(),
        expire_time: status.expires_at.as_ref().map(to_timestamp),
        record: status.record.as_ref().map(|record| api::RunRecord {
            template: record.template.clone(),
            kubernetes_version: record.kubernetes_version.clone().unwrap_or_default(),
            phase_seconds: record.phase_seconds.clone(),
        }),
    }
}

fn condition_to_api(condition: &Condition) -> api::Condition {
    api::Condition {
        r#type: condition.type_.clone(),
        status: condition.status.clone(),
        reason: condition.reason.clone(),
        message: condition.message.clone(),
        last_transition_time: condition.last_transition_time.as_ref().map(to_timestamp),
    }
}

fn job_to_api(job: &JobStatus) -> api::JobStatus {
    api::JobStatus {
        name: job.name.clone().unwrap_or_default(),
        pod: job.pod.clone().unwrap_or_default(),
        exit_code: job.exit_code,
        reason: job.reason.clone().unwrap_or_default(),
        message: job.message.clone().unwrap_or_default(),
        start_time: job.start_time.as_ref().map(to_timestamp),
        completion_time: job.completion_time.as_ref().map(to_timestamp),
    }
}

fn error_to_api(error: &ErrorStatus) -> api::ErrorInfo {
    api::ErrorInfo {
        code: error.code.clone(),
        message: error.message.clone(),
        retryable: error.retryable,
    }
}

fn timestamps_to_api(times: &PhaseTimestamps) -> api::PhaseTimestamps {
    api::PhaseTimestamps {
        pending_time: times.pending_time.as_ref().map(to_timestamp),
        provisioning_time: times.provisioning_time.as_ref().map(to_timestamp),
        ready_time: times.ready_time.as_ref().map(to_timestamp),
        running_time: times.running_time.as_ref().map(to_timestamp),
        finish_time: times.finish_time.as_ref().map(to_timestamp),
        deleting_time: times.deleting_time.as_ref().map(to_timestamp),
    }
}

impl From<Phase> for api::Phase {
    fn from(phase: Phase) -> Self {
        match phase {
            Phase::Pending => api::Phase::Pending,
            Phase::Provisioning => api::Phase::Provisioning,
            Phase::Ready => api::Phase::Ready,
            Phase::Running => api::Phase::Running,
            Phase::Succeeded => api::Phase::Succeeded,
            Phase::Failed => api::Phase::Failed,
            Phase::Error => api::Phase::Error,
            Phase::Deleting => api::Phase::Deleting,
            Phase::Expired => api::Phase::Expired,
        }
    }
}

/// The resource phase of an API phase; `None` for `PHASE_UNSPECIFIED`.
pub fn phase_from_api(phase: api::Phase) -> Option<Phase> {
    match phase {
        api::Phase::Unspecified => None,
        api::Phase::Pending => Some(Phase::Pending),
        api::Phase::Provisioning => Some(Phase::Provisioning),
        api::Phase::Ready => Some(Phase::Ready),
        api::Phase::Running => Some(Phase::Running),
        api::Phase::Succeeded => Some(Phase::Succeeded),
        api::Phase::Failed => Some(Phase::Failed),
        api::Phase::Error => Some(Phase::Error),
        api::Phase::Deleting => Some(Phase::Deleting),
        api::Phase::Expired => Some(Phase::Expired),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_EXAMPLE_2: &str = include_str!("../../testdata/seed-example-2.yaml");

    #[test]
    fn seed_status_converts() {
        let resource: TestClusterGKE = yaml_serde::from_str(SEED_EXAMPLE_2).expect("seed example");
        let cluster = to_test_cluster(&resource);

        assert_eq!(cluster.namespace, "test-clusters");
        assert_eq!(cluster.name, "test-c6v87");
        let status = cluster.status.expect("status");
        assert_eq!(status.cluster_name, "test-c6v87-fn86p");
        assert_eq!(status.phase(), api::Phase::Unspecified);
        assert_eq!(status.conditions.len(), 1);
        let ready = &status.conditions[0];
        assert_eq!(
            (
                ready.r#type.as_str(),
                ready.status.as_str(),
                ready.reason.as_str()
            ),
            ("Ready", "True", "AllDependenciesReady")
        );
        assert_eq!(ready.message, "All 2 dependencies are ready");
        assert_eq!(
            ready.last_transition_time.as_ref().map(|t| t.seconds),
            Some(1_605_605_373)
        );
        let keys: Vec<&str> = status
            .dependency_conditions
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "ContainerCluster:test-clusters/test-c6v87-fn86p",
                "ContainerNodePool:test-clusters/test-c6v87-fn86p"
            ]
        );
    }

    #[test]
    fn job_and_phase_convert() {
        let status = TestClusterGKEStatus {
            phase: Some(Phase::Failed),
            job: Some(JobStatus {
                name: Some("t-job".to_owned()),
                exit_code: Some(3),
                reason: Some("Error".to_owned()),
                ..JobStatus::default()
            }),
            ..TestClusterGKEStatus::default()
        };
        let converted = status_to_api(&status);
        assert_eq!(converted.phase(), api::Phase::Failed);
        let job = converted.job.expect("job");
        assert_eq!(job.exit_code, Some(3));
        assert_eq!(job.name, "t-job");
        assert_eq!(job.reason, "Error");
    }

    #[test]
    fn phases_round_trip() {
        for phase in [
            Phase::Pending,
            Phase::Provisioning,
            Phase::Ready,
            Phase::Running,
            Phase::Succeeded,
            Phase::Failed,
            Phase::Error,
            Phase::Deleting,
            Phase::Expired,
        ] {
            assert_eq!(phase_from_api(api::Phase::from(phase)), Some(phase));
        }
        assert_eq!(phase_from_api(api::Phase::Unspecified), None);
    }
}
