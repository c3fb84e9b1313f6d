//! How long a test cluster lives, in one place: its TTL, the hold of a failed run, the job's
//! deadline, and from these when its cloud resources go (`status.expiresAt`).
//!
//! The durations are strings in the spec (`ttl: 2h`, `holdOnFailure: 30m`, `jobSpec.deadline:
//! 45m`), parsed here; the operator configures a default and a maximum for each ([`Lifetimes`]),
//! and a longer request is cut to the maximum. `ExtendTestCluster` records an extension in the
//! annotation [`ANNOTATION_EXTENDED_UNTIL`]; [`Lifetimes::expiry`] folds it in, never beyond the
//! maximum. The broker extends with these rules, the provisioner enforces `expiresAt` with them
//! and the runner bounds its Job with them, so all three agree.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;

use crate::spec::{JobSpec, TestClusterGKE, TestClusterGKESpec};
use crate::status::{Phase, PhaseTimestamps};

/// Annotation in which `ExtendTestCluster` records how long the cluster was extended to (RFC 3339).
pub const ANNOTATION_EXTENDED_UNTIL: &str = "clusters.ci.cilium.io/extended-until";

/// The operator's defaults and maximums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// TTL of a spec without `ttl`.
    pub default_ttl: Duration,
    /// The longest TTL, extensions included, counted from the object's creation.
    pub max_ttl: Duration,
    /// The longest hold, extensions included, counted from the run's end.
    pub max_hold: Duration,
    /// Deadline of a job without `jobSpec.deadline`.
    pub default_job_deadline: Duration,
    /// The longest job deadline.
    pub max_job_deadline: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        const HOUR: u64 = 60 * 60;
        Lifetimes {
            default_ttl: Duration::from_secs(3 * HOUR),
            max_ttl: Duration::from_secs(24 * HOUR),
            max_hold: Duration::from_secs(24 * HOUR),
            default_job_deadline: Duration::from_secs(HOUR),
            max_job_deadline: Duration::from_secs(6 * HOUR),
        }
    }
}

/// A duration as the spec spells it: `90m`, `2h`, `1h 30m`, `45s`; more than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!(
            "{error}; a duration such as 90m, 2h or 1h30m is expected"
        )),
    }
}

/// A duration for people: `1h 30m`.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// What ends the cluster at [`Expiry::at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// The TTL: the run is not over.
    Ttl,
    /// The hold of a failed run.
    Hold,
    /// The run is over and nothing holds the cluster: its resources go at once.
    RunEnded,
}

/// When a test cluster's cloud resources go, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub at: Timestamp,
    pub bound: Bound,
    /// The latest an extension can move `at` to.
    pub limit: Timestamp,
}

impl Expiry {
    /// `at` moved on by `by`, at most to the limit; `None` when nothing holds the cluster.
    pub fn extended(&self, by: Duration) -> Option<Timestamp> {
        match self.bound {
            Bound::RunEnded => None,
            Bound::Ttl | Bound::Hold => Some(plus(self.at, by).min(self.limit)),
        }
    }

    /// How long until `at`, as of `now` (zero once it passed).
    pub fn remaining(&self, now: Timestamp) -> Duration {
        Duration::try_from(self.at.duration_since(now)).unwrap_or_default()
    }
}

fn plus(at: Timestamp, duration: Duration) -> Timestamp {
    at.checked_add(duration).unwrap_or(Timestamp::MAX)
}

fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}

fn requested(text: Option<&str>) -> Option<Duration> {
    text.and_then(|text| parse_duration(text).ok())
}

impl Lifetimes {
    /// The TTL of `spec`: asked for or the default, at most the maximum.
    pub fn ttl(&self, spec: &TestClusterGKESpec) -> Duration {
        requested(spec.ttl.as_deref())
            .unwrap_or(self.default_ttl)
            .min(self.max_ttl)
    }

    /// The hold after a failure of `spec`'s run: asked for or none, at most the maximum.
    pub fn hold(&self, spec: &TestClusterGKESpec) -> Duration {
        requested(spec.hold_on_failure.as_deref())
            .unwrap_or_default()
            .min(self.max_hold)
    }

    /// The job's deadline: asked for or the default, at most the maximum.
    pub fn job_deadline(&self, job: Option<&JobSpec>) -> Duration {
        requested(job.and_then(|job| job.deadline.as_deref()))
            .unwrap_or(self.default_job_deadline)
            .min(self.max_job_deadline)
    }

    /// When `tc`'s cloud resources go, in `phase` with `times` (the provisioner passes the
    /// status it is about to write). `None` before the object has a creation time.
    ///
    /// While the run is on: creation + TTL. After a failure with a hold: the end + the hold. After
    /// any other end: the end (the resources go at once). An extension (the annotation) moves the
    /// TTL's or the hold's end, never past creation + maximum TTL or end + maximum hold.
    pub fn expiry(
        &self,
        tc: &TestClusterGKE,
        phase: Option<Phase>,
        times: &PhaseTimestamps,
    ) -> Option<Expiry> {
        let created = tc.metadata.creation_timestamp.as_ref()?.0;
        let finished = times.finish_time.as_ref().map(|t| t.0);
        let hold = self.hold(&tc.spec);
        // A run's end without its time (written by hand, say) counts from the creation.
        let end = finished.unwrap_or(created);
        let (base, limit, bound) = match phase {
            Some(Phase::Failed) if !hold.is_zero() => {
                (plus(end, hold), plus(end, self.max_hold), Bound::Hold)
            }
            Some(phase) if phase.is_terminal() => (end, end, Bound::RunEnded),
            Some(Phase::Deleting) => {
                let deleted = times
                    .deleting_time
                    .as_ref()
                    .map_or(created, |t| t.0)
                    .min(finished.unwrap_or(Timestamp::MAX));
                (deleted, deleted, Bound::RunEnded)
            }
            _ => (
                plus(created, self.ttl(&tc.spec)),
                plus(created, self.max_ttl),
                Bound::Ttl,
            ),
        };
        let extended = tc
            .annotations()
            .get(ANNOTATION_EXTENDED_UNTIL)
            .and_then(|text| text.parse::<Timestamp>().ok());
        let at = match (bound, extended) {
            (Bound::Ttl | Bound::Hold, Some(until)) => base.max(until).min(limit),
            _ => base,
        };
        // Whole seconds, as `status.expiresAt` has them, so that the status, the Events and an
        // extension's answer all name the same time.
        Some(Expiry {
            at: whole_seconds(at),
            bound,
            limit: whole_seconds(limit),
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    const HOUR: u64 = 3600;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn cluster(ttl: Option<&str>, hold: Option<&str>, extended: Option<i64>) -> TestClusterGKE {
        let mut tc = TestClusterGKE::new(
            "t1",
            TestClusterGKESpec {
                ttl: ttl.map(str::to_owned),
                hold_on_failure: hold.map(str::to_owned),
                ..TestClusterGKESpec::default()
            },
        );
        tc.metadata.creation_timestamp = Some(Time(at(0)));
        if let Some(until) = extended {
            tc.metadata.annotations =
                Some([(ANNOTATION_EXTENDED_UNTIL.to_owned(), at(until).to_string())].into());
        }
        tc
    }

    fn finished_at(seconds: i64) -> PhaseTimestamps {
        PhaseTimestamps {
            finish_time: Some(Time(at(seconds))),
            ..PhaseTimestamps::default()
        }
    }

    #[test]
    fn durations_parse_as_documented() {
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(
            parse_duration("0s"),
            Err("must be more than zero".to_owned())
        );
        let error = parse_duration("soon").expect_err("not a duration");
        assert!(
            error.ends_with("a duration such as 90m, 2h or 1h30m is expected"),
            "{error}"
        );
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h 30m");
    }

    #[test]
    fn requests_take_defaults_and_are_cut_to_the_maximum() {
        let lifetimes = Lifetimes::default();
        assert_eq!(
            lifetimes.ttl(&cluster(None, None, None).spec),
            lifetimes.default_ttl
        );
        assert_eq!(
            lifetimes.ttl(&cluster(Some("2h"), None, None).spec),
            Duration::from_secs(2 * HOUR)
        );
        assert_eq!(
            lifetimes.ttl(&cluster(Some("100h"), None, None).spec),
            lifetimes.max_ttl
        );
        assert_eq!(
            lifetimes.hold(&cluster(None, None, None).spec),
            Duration::ZERO
        );
        assert_eq!(
            lifetimes.hold(&cluster(None, Some("100h"), None).spec),
            lifetimes.max_hold
        );
        let job = JobSpec {
            deadline: Some("10m".to_owned()),
            ..JobSpec::default()
        };
        assert_eq!(lifetimes.job_deadline(Some(&job)), Duration::from_secs(600));
        assert_eq!(lifetimes.job_deadline(None), lifetimes.default_job_deadline);
    }

    #[test]
    fn expiry_follows_the_run() {
        let lifetimes = Lifetimes::default();
        let none = PhaseTimestamps::default();
        let hour = |h: i64| at(h * 3600);
        // While the run is on: creation + TTL, extended up to creation + maximum TTL.
        let ready = lifetimes.expiry(&cluster(Some("2h"), None, None), Some(Phase::Ready), &none);
        assert_eq!(
            ready,
            Some(Expiry {
                at: hour(2),
                bound: Bound::Ttl,
                limit: hour(24)
            })
        );
        let extended = cluster(Some("2h"), None, Some(5 * 3600));
        let expiry = lifetimes.expiry(&extended, Some(Phase::Running), &none);
        assert_eq!(expiry.map(|e| e.at), Some(hour(5)));
        let too_far = cluster(Some("2h"), None, Some(100 * 3600));
        let expiry = lifetimes.expiry(&too_far, Some(Phase::Ready), &none);
        assert_eq!(expiry.map(|e| e.at), Some(hour(24)));
        // A failure with a hold: its end + the hold; extended, up to end + maximum hold.
        let held = cluster(None, Some("30m"), None);
        let failed = lifetimes.expiry(&held, Some(Phase::Failed), &finished_at(3600));
        assert_eq!(
            failed,
            Some(Expiry {
                at: at(5400),
                bound: Bound::Hold,
                limit: hour(25)
            })
        );
        assert_eq!(
            failed.and_then(|e| e.extended(Duration::from_secs(HOUR))),
            Some(at(9000))
        );
        assert_eq!(
            failed.and_then(|e| e.extended(Duration::from_secs(100 * HOUR))),
            Some(hour(25))
        );
        // Any other end: the resources go at once, and there is nothing to extend.
        for phase in [Phase::Succeeded, Phase::Error, Phase::Expired] {
            let ended = lifetimes.expiry(&held, Some(phase), &finished_at(3600));
            assert_eq!(
                ended,
                Some(Expiry {
                    at: hour(1),
                    bound: Bound::RunEnded,
                    limit: hour(1)
                }),
                "{phase:?}"
            );
            assert_eq!(
                ended.and_then(|e| e.extended(Duration::from_secs(HOUR))),
                None
            );
        }
        let unheld = lifetimes.expiry(
            &cluster(None, None, None),
            Some(Phase::Failed),
            &finished_at(60),
        );
        assert_eq!(unheld.map(|e| e.bound), Some(Bound::RunEnded));
        // An end without its time still ends the run (from the creation).
        let untimed = lifetimes.expiry(&held, Some(Phase::Succeeded), &none);
        assert_eq!(
            untimed.map(|e| (e.at, e.bound)),
            Some((at(0), Bound::RunEnded))
        );
        assert_eq!(
            ready.map(|e| e.remaining(hour(1))),
            Some(Duration::from_secs(HOUR))
        );
        assert_eq!(ready.map(|e| e.remaining(hour(3))), Some(Duration::ZERO));
    }
}
