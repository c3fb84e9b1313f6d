//! Lifecycle phase durations from the phase history an object's status records.
//!
//! The durations come from the object's own timestamps, not from when a controller happened to
//! see it, so they are right however late a watch delivers a change. Each phase an object left is
//! observed once: the clock remembers per object how many phases it already counted. After a
//! restart only phases left after the start are counted, so none is counted twice; those left
//! while the process was down are not counted.
//!
//! An object is remembered for as long as the clock runs (a finished object is still seen while
//! it is kept as the run's record, and must not be counted again), up to [`MAX_TRACKED`] objects;
//! the clock then starts afresh as after a restart. That costs a few bytes per object, against the
//! whole object that the controller's store holds anyway.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// One object's phase history, as its status tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct Lifecycle {
    /// Stays the same for the object's life and differs from any other object's (its uid).
    pub key: String,
    /// Each phase entered so far, with when, in order.
    pub entered: Vec<(&'static str, SystemTime)>,
}

impl Lifecycle {
    /// Each phase that was left, with the time spent in it and when it was left.
    fn left(&self) -> impl Iterator<Item = (&'static str, Duration, SystemTime)> + '_ {
        self.entered.windows(2).map(|pair| {
            let ((phase, entered), (_, left)) = (pair[0], pair[1]);
            // Timestamps from two writers may disagree a little; never a negative duration.
            let spent = left.duration_since(entered).unwrap_or_default();
            (phase, spent, left)
        })
    }
}

/// Objects remembered before the clock starts afresh.
pub const MAX_TRACKED: usize = 10_000;

/// Remembers, per object, how many phases of its history were already observed.
#[derive(Debug)]
pub(super) struct PhaseClock {
    state: Mutex<ClockState>,
}

#[derive(Debug)]
struct ClockState {
    /// Phases left before this are not counted: they may have been counted before (by the
    /// previous process, or before the clock started afresh). Status timestamps have whole
    /// seconds, so this is the start rounded down.
    since: SystemTime,
    counted: HashMap<String, usize>,
}

/// `time` rounded down to the second.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since_epoch| Duration::from_secs(since_epoch.as_secs()))
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + seconds
}

impl PhaseClock {
    pub(super) fn new() -> PhaseClock {
        PhaseClock::since(SystemTime::now())
    }

    fn since(start: SystemTime) -> PhaseClock {
        PhaseClock {
            state: Mutex::new(ClockState {
                since: whole_seconds(start),
                counted: HashMap::new(),
            }),
        }
    }

    /// The phases `history` left that were not observed before, with the time spent in each.
    pub(super) fn newly_left(&self, history: &Lifecycle) -> Vec<(&'static str, Duration)> {
        let mut state = self.state.lock();
        let already = state.counted.get(&history.key).copied().unwrap_or(0);
        let since = state.since;
        let new: Vec<_> = history
            .left()
            .skip(already)
            .filter(|(_, _, left)| *left >= since)
            .map(|(phase, spent, _)| (phase, spent))
            .collect();
        let total = history.entered.len().saturating_sub(1);
        if total > already {
            if state.counted.len() >= MAX_TRACKED && !state.counted.contains_key(&history.key) {
                state.counted.clear();
                state.since = whole_seconds(SystemTime::now());
            }
            state.counted.insert(history.key.clone(), total);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn history(key: &str, entered: &[(&'static str, u64)]) -> Lifecycle {
        Lifecycle {
            key: key.to_owned(),
            entered: entered
                .iter()
                .map(|(phase, seconds)| (*phase, at(*seconds)))
                .collect(),
        }
    }

    fn secs(phases: Vec<(&'static str, Duration)>) -> Vec<(&'static str, u64)> {
        phases
            .into_iter()
            .map(|(phase, spent)| (phase, spent.as_secs()))
            .collect()
    }

    #[test]
    fn each_phase_left_is_observed_once() {
        let clock = PhaseClock::since(at(100));
        let pending = [("Pending", 100)];
        assert_eq!(secs(clock.newly_left(&history("a", &pending))), []);
        let provisioning = [("Pending", 100), ("Provisioning", 101)];
        let seen = clock.newly_left(&history("a", &provisioning));
        assert_eq!(secs(seen), [("Pending", 1)]);
        assert_eq!(secs(clock.newly_left(&history("a", &provisioning))), []);
        // Two phases left between two sightings: both observed.
        let done = [
            ("Pending", 100),
            ("Provisioning", 101),
            ("Ready", 161),
            ("Running", 162),
            ("Succeeded", 200),
        ];
        let seen = clock.newly_left(&history("a", &done));
        assert_eq!(
            secs(seen),
            [("Provisioning", 60), ("Ready", 1), ("Running", 38)]
        );
        // Kept as the run's record, the object is seen again: nothing is counted twice.
        assert_eq!(secs(clock.newly_left(&history("a", &done))), []);
        let other = clock.newly_left(&history("b", &[("Pending", 100), ("Provisioning", 105)]));
        assert_eq!(secs(other), [("Pending", 5)]);
    }

    #[test]
    fn phases_left_before_the_start_are_not_observed() {
        let clock = PhaseClock::since(at(150));
        let seen = clock.newly_left(&history(
            "a",
            &[("Pending", 100), ("Provisioning", 120), ("Ready", 150)],
        ));
        assert_eq!(secs(seen), [("Provisioning", 30)]);
    }

    #[test]
    fn skewed_timestamps_give_zero_not_a_panic() {
        let clock = PhaseClock::since(at(0));
        let seen = clock.newly_left(&history("a", &[("Pending", 10), ("Provisioning", 9)]));
        assert_eq!(secs(seen), [("Pending", 0)]);
    }
}
