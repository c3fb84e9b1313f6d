//! What the provisioner's metrics need to know of a `TestClusterGKE`: its phase history, read from
//! `status.phaseTimestamps`. The provisioner sees every object through every phase, so it alone
//! reports `testcluster_phase_duration_seconds`.

use std::time::SystemTime;

use kube::ResourceExt as _;
use testcluster_resources::{Phase, TestClusterGKE};
use testcluster_service::metrics::Lifecycle;

/// The phases `tc` has entered, in lifecycle order, with when; `None` before it has any.
pub fn lifecycle(tc: &TestClusterGKE) -> Option<Lifecycle> {
    let status = tc.status.as_ref()?;
    let times = status.phase_timestamps.as_ref()?;
    // The finish time is shared by the three terminal phases: the phase says which it was.
    let finished = match status.phase {
        Some(Phase::Succeeded) => "Succeeded",
        Some(Phase::Failed) => "Failed",
        Some(Phase::Error) => "Error",
        Some(Phase::Expired) => "Expired",
        _ => "Finished",
    };
    let entered: Vec<_> = [
        ("Pending", &times.pending_time),
        ("Provisioning", &times.provisioning_time),
        ("Ready", &times.ready_time),
        ("Running", &times.running_time),
        (finished, &times.finish_time),
        ("Deleting", &times.deleting_time),
    ]
    .into_iter()
    .filter_map(|(phase, time)| Some((phase, SystemTime::from(time.as_ref()?.0))))
    .collect();
    if entered.is_empty() {
        return None;
    }
    Some(Lifecycle {
        key: tc.uid()?,
        entered,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use testcluster_resources::{PhaseTimestamps, TestClusterGKEStatus};

    use super::*;

    fn time(seconds: i64) -> Option<Time> {
        Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(seconds).expect("in range"),
        ))
    }

    #[test]
    fn the_history_follows_the_phase_timestamps_in_lifecycle_order() {
        let mut tc = TestClusterGKE::new("t1", Default::default());
        assert_eq!(lifecycle(&tc), None, "no status yet");
        tc.metadata.uid = Some("uid-1".to_owned());
        tc.status = Some(TestClusterGKEStatus {
            phase: Some(Phase::Failed),
            phase_timestamps: Some(PhaseTimestamps {
                pending_time: time(100),
                provisioning_time: time(101),
                ready_time: time(160),
                finish_time: time(170),
                ..PhaseTimestamps::default()
            }),
            ..TestClusterGKEStatus::default()
        });
        let history = lifecycle(&tc).expect("a history");
        assert_eq!(history.key, "uid-1");
        let at = |seconds| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        assert_eq!(
            history.entered,
            [
                ("Pending", at(100)),
                ("Provisioning", at(101)),
                ("Ready", at(160)),
                ("Failed", at(170)),
            ]
        );
    }
}
