//! Lifecycle phase durations from the phase history an object's status records.
//!
//! The durations come from the object's own timestamps, not from when a controller happened to
//! see it, so they are right however late a watch delivers a change. Each phase an object left is
//! observed once: the clock remembers per object how many phases it already counted, and forgets
//! the object once its history is finished. After a restart only phases left after the start are
//! counted, so none is counted twice; those left while the process was down are not counted.

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
    /// No phase will follow the last one (or its time is not measured): forget the object.
    pub finished: bool,
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

/// Objects still in their lifecycle beyond which the clock starts afresh; only reached if
/// objects vanish without a finished history, and starting afresh only loses observations.
const MAX_TRACKED: usize = 100_000;

/// Remembers, per object, how many phases of its history were already observed.
#[derive(Debug)]
pub(super) struct PhaseClock {
    /// Phases left before this are not counted: they may have been counted by the previous
    /// process. Status timestamps have whole seconds, so this is the start rounded down.
    since: SystemTime,
    counted: Mutex<HashMap<String, usize>>,
}

impl PhaseClock {
    pub(super) fn new() -> PhaseClock {
        PhaseClock::since(SystemTime::now())
    }

    fn since(start: SystemTime) -> PhaseClock {
        let seconds = start
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|since_epoch| Duration::from_secs(since_epoch.as_secs()))
            .unwrap_or_default();
        PhaseClock {
            since: SystemTime::UNIX_EPOCH + seconds,
            counted: Mutex::default(),
        }
    }

    /// The phases `history` left that were not observed before, with the time spent in each.
    pub(super) fn newly_left(&self, history: &Lifecycle) -> Vec<(&'static str, Duration)> {
        let mut counted = self.counted.lock();
        let already = counted.get(&history.key).copied().unwrap_or(0);
        let new: Vec<_> = history
            .left()
            .skip(already)
            .filter(|(_, _, left)| *left >= self.since)
            .map(|(phase, spent, _)| (phase, spent))
            .collect();
        let total = history.entered.len().saturating_sub(1);
        if history.finished {
            counted.remove(&history.key);
        } else if total > already {
            if counted.len() >= MAX_TRACKED {
                counted.clear();
            }
            counted.insert(history.key.clone(), total);
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

    fn history(key: &str, entered: &[(&'static str, u64)], finished: bool) -> Lifecycle {
        Lifecycle {
            key: key.to_owned(),
            entered: entered
                .iter()
                .map(|(phase, seconds)| (*phase, at(*seconds)))
                .collect(),
            finished,
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
        assert_eq!(secs(clock.newly_left(&history("a", &pending, false))), []);
        let provisioning = [("Pending", 100), ("Provisioning", 101)];
        let seen = clock.newly_left(&history("a", &provisioning, false));
        assert_eq!(secs(seen), [("Pending", 1)]);
        assert_eq!(
            secs(clock.newly_left(&history("a", &provisioning, false))),
            []
        );
        // Two phases left between two sightings: both observed.
        let done = [
            ("Pending", 100),
            ("Provisioning", 101),
            ("Ready", 161),
            ("Running", 162),
            ("Succeeded", 200),
        ];
        let seen = clock.newly_left(&history("a", &done, true));
        assert_eq!(
            secs(seen),
            [("Provisioning", 60), ("Ready", 1), ("Running", 38)]
        );
        assert!(
            clock.counted.lock().is_empty(),
            "a finished history is forgotten"
        );
    }

    #[test]
    fn phases_left_before_the_start_are_not_observed() {
        let clock = PhaseClock::since(at(150));
        let seen = clock.newly_left(&history(
            "a",
            &[("Pending", 100), ("Provisioning", 120), ("Ready", 150)],
            false,
        ));
        assert_eq!(secs(seen), [("Provisioning", 30)]);
    }

    #[test]
    fn skewed_timestamps_give_zero_not_a_panic() {
        let clock = PhaseClock::since(at(0));
        let seen = clock.newly_left(&history(
            "a",
            &[("Pending", 10), ("Provisioning", 9)],
            false,
        ));
        assert_eq!(secs(seen), [("Pending", 0)]);
    }
}
