//! What the provisioner's metrics need to know of a `TestClusterGKE`: its phase history, read from
//! `status.phaseTimestamps`, and how its run ended. The provisioner sees every object through every
//! phase (and writes the phase), so it alone reports `testcluster_phase_duration_seconds` and
//! `testcluster_runs_total{outcome,template}`.

use std::time::SystemTime;

use kube::ResourceExt as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use testcluster_resources::metadata::DEFAULT_CONFIG_TEMPLATE;
use testcluster_resources::{Phase, TestClusterGKE};
use testcluster_service::metrics::{Lifecycle, Metrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    /// Succeeded, Failed, Error or Expired.
    outcome: String,
    /// `spec.configTemplate`: one of the provisioner's templates (validation refuses others).
    template: String,
}

/// Finished runs, counted by the write that moved them into a terminal phase.
#[derive(Clone)]
pub struct Runs {
    finished: Family<RunLabels, Counter>,
}

impl Runs {
    pub fn register(metrics: &Metrics) -> Runs {
        let finished = metrics.register(|registry| {
            let family = Family::<RunLabels, Counter>::default();
            registry.register(
                "testcluster_runs",
                "Finished runs by outcome (terminal phase) and template",
                family.clone(),
            );
            family
        });
        Runs { finished }
    }

    /// Counts `tc`'s run, which just ended in `phase`.
    pub fn finished(&self, tc: &TestClusterGKE, phase: Phase) {
        let template = tc
            .spec
            .config_template
            .clone()
            .unwrap_or_else(|| DEFAULT_CONFIG_TEMPLATE.to_owned());
        let labels = RunLabels {
            outcome: format!("{phase:?}"),
            template,
        };
        self.finished.get_or_create(&labels).inc();
    }
}

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
