//! The lifecycle of a test cluster: which phase follows from which facts.
//!
//! `status.phase` is written by one component only (the provisioner), and always computed here: the
//! facts each controller records in its own status fields (the provisioner's cluster name, objects
//! and readiness, the runner's job and its conditions, the object's deletion) become [`Event`]s,
//! and [`transition`] (one table) moves the phase on. Terminal phases never move back because the
//! table has no row that moves them, not because each writer guards against it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::metadata::{CONDITION_JOB_COMPLETE, CONDITION_JOB_FAILED};
use crate::status::{Condition, Phase, PhaseTimestamps, TestClusterGKEStatus};

/// Something that happened to a test cluster, in the order a run meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The provisioner accepted the request and named its cloud cluster.
    Accepted,
    /// The template's Config Connector objects were applied.
    ProvisioningStarted,
    /// Every dependency is ready.
    ClusterReady,
    /// The infrastructure gave up: an invalid spec, a failed dependency, the provisioning timeout.
    InfrastructureFailed,
    /// The runner created the test job.
    JobStarted,
    /// The test job succeeded.
    JobSucceeded,
    /// The test job failed (or could not run at all).
    JobFailed,
    /// The cluster's TTL ended before its run did.
    Expired,
    /// The object is being deleted.
    DeletionRequested,
}

impl Event {
    /// Every event, in the order a run meets them (and [`next_phase`] applies them).
    pub const ALL: [Event; 9] = [
        Event::Accepted,
        Event::ProvisioningStarted,
        Event::ClusterReady,
        Event::InfrastructureFailed,
        Event::JobStarted,
        Event::JobSucceeded,
        Event::JobFailed,
        Event::Expired,
        Event::DeletionRequested,
    ];
}

/// The phase after `event` in phase `from` (`None`: no phase yet). An event that does not apply in
/// a phase leaves it as it is.
pub fn transition(from: Option<Phase>, event: Event) -> Option<Phase> {
    use Phase::*;
    let to = match (from, event) {
        // Being deleted is the end of every road.
        (Some(Deleting), _) | (_, Event::DeletionRequested) => Deleting,
        // A finished run is the run's record: nothing but deletion changes it.
        (Some(phase), _) if phase.is_terminal() => return from,
        (None, Event::Accepted) => Pending,
        (None | Some(Pending), Event::ProvisioningStarted) => Provisioning,
        (None | Some(Pending | Provisioning), Event::ClusterReady) => Ready,
        // Once the job runs, the job's own outcome ends the run; a cluster without a job (Ready)
        // can still be lost.
        (None | Some(Pending | Provisioning | Ready), Event::InfrastructureFailed) => Error,
        (Some(Ready), Event::JobStarted) => Running,
        // A job that cannot even start (an unusable spec) fails straight from Ready.
        (Some(Ready | Running), Event::JobSucceeded) => Succeeded,
        (Some(Ready | Running), Event::JobFailed) => Failed,
        // The TTL ends any run that is not over, whatever it was doing.
        (_, Event::Expired) => Expired,
        _ => return from,
    };
    Some(to)
}

/// What the controllers have recorded about a run, each fact by its owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `status.clusterName` is set (provisioner).
    pub accepted: bool,
    /// The template's objects were applied (provisioner).
    pub provisioning_started: bool,
    /// Every dependency is ready (provisioner).
    pub cluster_ready: bool,
    /// `status.error` is set (provisioner).
    pub infrastructure_failed: bool,
    /// `status.job.name` is set (runner).
    pub job_started: bool,
    /// The job's `Complete` (true) or `Failed` (false) condition is True (runner).
    pub job_succeeded: Option<bool>,
    /// `status.expiresAt` has passed (provisioner).
    pub expired: bool,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl Facts {
    /// The runner's facts as recorded in `status` (the provisioner adds its own, which it knows
    /// better than its last write: it computes them in the same reconcile).
    pub fn of_job(status: &TestClusterGKEStatus) -> Facts {
        Facts {
            job_started: status.job.as_ref().is_some_and(|job| job.name.is_some()),
            job_succeeded: job_outcome(&status.job_conditions),
            ..Facts::default()
        }
    }

    fn events(self) -> impl Iterator<Item = Event> {
        Event::ALL.into_iter().filter(move |event| match event {
            Event::Accepted => self.accepted,
            Event::ProvisioningStarted => self.provisioning_started,
            Event::ClusterReady => self.cluster_ready,
            Event::InfrastructureFailed => self.infrastructure_failed,
            Event::JobStarted => self.job_started,
            Event::JobSucceeded => self.job_succeeded == Some(true),
            Event::JobFailed => self.job_succeeded == Some(false),
            Event::Expired => self.expired,
            Event::DeletionRequested => self.deleting,
        })
    }
}

/// The phase that follows from `facts` in phase `current`: each fact's event applied in the order
/// a run meets them, so facts that arrive together (a job that started and ended between two
/// reconciles) still pass through every phase in between. `times` records when each phase on the
/// way was entered (`now`, unless an earlier entry is on record).
pub fn advance(
    current: Option<Phase>,
    facts: Facts,
    times: &mut PhaseTimestamps,
    now: &Time,
) -> Option<Phase> {
    facts.events().fold(current, |phase, event| {
        let next = transition(phase, event);
        if let Some(entered) = next.filter(|_| next != phase) {
            record_entry(times, entered, now);
        }
        next
    })
}

/// Records `now` as the time `phase` was entered, unless an earlier entry is on record.
fn record_entry(times: &mut PhaseTimestamps, phase: Phase, now: &Time) {
    let entered = match phase {
        Phase::Pending => &mut times.pending_time,
        Phase::Provisioning => &mut times.provisioning_time,
        Phase::Ready => &mut times.ready_time,
        Phase::Running => &mut times.running_time,
        Phase::Succeeded | Phase::Failed | Phase::Error | Phase::Expired => &mut times.finish_time,
        Phase::Deleting => &mut times.deleting_time,
    };
    entered.get_or_insert_with(|| now.clone());
}

/// The job's outcome from the runner's conditions: `Some(true)` once `Complete` is True,
/// `Some(false)` once `Failed` is True, `None` while it has not ended.
pub fn job_outcome(conditions: &[Condition]) -> Option<bool> {
    let is_true = |type_: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    if is_true(CONDITION_JOB_COMPLETE) {
        Some(true)
    } else if is_true(CONDITION_JOB_FAILED) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Phase::*;
    use super::*;

    const PHASES: [Option<Phase>; 10] = [
        None,
        Some(Pending),
        Some(Provisioning),
        Some(Ready),
        Some(Running),
        Some(Succeeded),
        Some(Failed),
        Some(Error),
        Some(Deleting),
        Some(Expired),
    ];

    /// The expected phase for every (phase, event) pair: one row per phase, events in
    /// [`Event::ALL`] order.
    #[test]
    fn every_pair_of_phase_and_event() {
        let (none, pe, pr, re, ru, su, fa, er, de, ex) = (
            None,
            Some(Pending),
            Some(Provisioning),
            Some(Ready),
            Some(Running),
            Some(Succeeded),
            Some(Failed),
            Some(Error),
            Some(Deleting),
            Some(Expired),
        );
        #[rustfmt::skip]
        let table: [(Option<Phase>, [Option<Phase>; 9]); 10] = [
            //    Accepted ProvStarted ClusterReady InfraFailed JobStarted JobSucceeded JobFailed Expired Deletion
            (none, [pe,      pr,         re,          er,         none,      none,        none,     ex,     de]),
            (pe,   [pe,      pr,         re,          er,         pe,        pe,          pe,       ex,     de]),
            (pr,   [pr,      pr,         re,          er,         pr,        pr,          pr,       ex,     de]),
            (re,   [re,      re,         re,          er,         ru,        su,          fa,       ex,     de]),
            (ru,   [ru,      ru,         ru,          ru,         ru,        su,          fa,       ex,     de]),
            (su,   [su,      su,         su,          su,         su,        su,          su,       su,     de]),
            (fa,   [fa,      fa,         fa,          fa,         fa,        fa,          fa,       fa,     de]),
            (er,   [er,      er,         er,          er,         er,        er,          er,       er,     de]),
            (de,   [de,      de,         de,          de,         de,        de,          de,       de,     de]),
            (ex,   [ex,      ex,         ex,          ex,         ex,        ex,          ex,       ex,     de]),
        ];
        assert_eq!(table.map(|(from, _)| from), PHASES, "one row per phase");
        for (from, row) in table {
            for (event, expected) in Event::ALL.into_iter().zip(row) {
                assert_eq!(transition(from, event), expected, "{from:?} + {event:?}");
            }
        }
    }

    #[test]
    fn terminal_phases_never_move_back() {
        for from in [Succeeded, Failed, Error, Expired] {
            for event in Event::ALL {
                let to = transition(Some(from), event);
                assert!(
                    to == Some(from) || to == Some(Deleting),
                    "{from:?} + {event:?} = {to:?}"
                );
            }
        }
    }

    #[test]
    fn facts_that_arrive_together_pass_through_every_phase() {
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let quick_job = Facts {
            accepted: true,
            provisioning_started: true,
            cluster_ready: true,
            job_started: true,
            job_succeeded: Some(true),
            ..Facts::default()
        };
        let mut times = PhaseTimestamps::default();
        assert_eq!(advance(None, quick_job, &mut times, &now), Some(Succeeded));
        assert_eq!(
            times,
            PhaseTimestamps {
                pending_time: Some(now.clone()),
                provisioning_time: Some(now.clone()),
                ready_time: Some(now.clone()),
                running_time: Some(now.clone()),
                finish_time: Some(now.clone()),
                deleting_time: None,
            },
            "every phase on the way is recorded"
        );
        let next_phase =
            |phase, facts| advance(phase, facts, &mut PhaseTimestamps::default(), &now);
        assert_eq!(next_phase(Some(Ready), quick_job), Some(Succeeded));
        // A stale view of the facts never moves a phase back.
        let stale = Facts {
            accepted: true,
            provisioning_started: true,
            ..Facts::default()
        };
        for phase in [Ready, Running, Succeeded, Failed, Error, Deleting] {
            assert_eq!(next_phase(Some(phase), stale), Some(phase), "{phase:?}");
        }
        // An infrastructure failure before the cluster was ready ends the run even if a job
        // fact shows up with it.
        let failed = Facts {
            accepted: true,
            infrastructure_failed: true,
            job_started: true,
            ..Facts::default()
        };
        assert_eq!(next_phase(Some(Provisioning), failed), Some(Error));
    }

    #[test]
    fn entries_are_recorded_once() {
        let at =
            |seconds| Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or_default());
        let mut times = PhaseTimestamps::default();
        record_entry(&mut times, Running, &at(10));
        record_entry(&mut times, Running, &at(20));
        record_entry(&mut times, Failed, &at(30));
        assert_eq!(times.running_time, Some(at(10)));
        assert_eq!(times.finish_time, Some(at(30)));
        assert_eq!(times.pending_time, None);
    }

    #[test]
    fn job_outcome_follows_the_runner_s_conditions() {
        let condition = |type_: &str, status: &str| Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            ..Condition::default()
        };
        assert_eq!(job_outcome(&[]), None);
        assert_eq!(job_outcome(&[condition("Complete", "False")]), None);
        assert_eq!(job_outcome(&[condition("Complete", "True")]), Some(true));
        assert_eq!(job_outcome(&[condition("Failed", "True")]), Some(false));
    }
}
