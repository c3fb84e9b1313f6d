//! Resuming a followed log whose stream was cut (API server restart, proxy reset) while the
//! container still runs, without losing or repeating lines.
//!
//! The log is reopened with `sinceTime` = the last sent line's timestamp, floored to the second
//! (the API takes whole seconds). The server then sends again some lines already sent: every
//! line from that second on (or, from a server that ignores `sinceTime`, the whole log). While
//! replaying, a line is dropped when it is older than the last line sent, or has its timestamp and
//! a text sent at that timestamp (each sent line matches one replayed line, so two identical
//! lines in the same instant are not merged). The first line past that point ends the replay.
//! Lines are requested with `timestamps=true`; an untimed line cannot be placed in a replay and
//! is dropped there.

use k8s_openapi::jiff::Timestamp;
use testcluster_api::pbjson_types;
use testcluster_api::v1::LogLine;

/// What was sent of one container's log, and where a reopened stream picks up.
#[derive(Debug, Default)]
pub struct Resume {
    /// The timestamp of the last line sent, and every text sent at that timestamp.
    last: Option<(Instant, Vec<String>)>,
    /// While replaying after a reopen: the texts at `last`'s timestamp not seen again yet.
    replay: Option<Vec<String>>,
    /// Lines sent so far.
    count: u64,
}

/// A line's timestamp, ordered.
type Instant = (i64, i32);

fn instant(time: &pbjson_types::Timestamp) -> Instant {
    (time.seconds, time.nanos)
}

impl Resume {
    /// Whether `line` is new (to be sent), as opposed to one a reopened stream repeats.
    pub fn admit(&mut self, line: &LogLine) -> bool {
        let Some(replay) = &mut self.replay else {
            return true;
        };
        let (Some(time), Some((last, _))) = (&line.time, &self.last) else {
            // Untimed: cannot be placed in the replay. (`last` is set whenever replaying.)
            return false;
        };
        let time = instant(time);
        if time < *last {
            return false;
        }
        if time == *last
            && let Some(seen) = replay.iter().position(|text| *text == line.text)
        {
            replay.swap_remove(seen);
            return false;
        }
        // Past what was sent: the replay is over, everything from here on is new.
        self.replay = None;
        true
    }

    /// Records `line` as sent.
    pub fn sent(&mut self, line: &LogLine) {
        self.count += 1;
        let Some(time) = &line.time else {
            return;
        };
        let time = instant(time);
        match &mut self.last {
            Some((last, texts)) if *last == time => texts.push(line.text.clone()),
            _ => self.last = Some((time, vec![line.text.clone()])),
        }
    }

    /// Starts a replay: the next stream repeats lines already sent. Returns the `sinceTime` to
    /// reopen with (`None`: nothing timed was sent, read from the start).
    pub fn reopen(&mut self) -> Option<Timestamp> {
        let (last, texts) = self.last.as_ref()?;
        self.replay = Some(texts.clone());
        // Floored, never rounded up: rounding up would skip the rest of that second.
        Timestamp::from_second(last.0).ok()
    }

    /// Whether a reopened stream is still repeating lines already sent.
    pub fn replaying(&self) -> bool {
        self.replay.is_some()
    }

    /// How many lines were sent.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line;
    use testcluster_api::v1::Container;

    fn parse(raw: &str) -> LogLine {
        line::parse(raw.as_bytes(), Container::Runner)
    }

    /// Sends what `resume` admits of `raw`, as the session does; returns the texts sent.
    fn stream(resume: &mut Resume, raw: &[&str]) -> Vec<String> {
        let mut texts = Vec::new();
        for raw in raw {
            let line = parse(raw);
            if resume.admit(&line) {
                resume.sent(&line);
                texts.push(line.text);
            }
        }
        texts
    }

    const LOG: [&str; 6] = [
        "2025-03-01T10:00:00.100000000Z one",
        "2025-03-01T10:00:01.200000000Z two",
        "2025-03-01T10:00:01.500000000Z same",
        "2025-03-01T10:00:01.500000000Z same",
        "2025-03-01T10:00:01.700000000Z three",
        "2025-03-01T10:00:02.000000000Z four",
    ];

    #[test]
    fn a_fresh_stream_sends_everything() {
        let mut resume = Resume::default();
        assert_eq!(
            stream(&mut resume, &LOG),
            ["one", "two", "same", "same", "three", "four"]
        );
        assert!(!resume.replaying());
    }

    #[test]
    fn a_reopened_stream_since_the_last_second_repeats_nothing_and_loses_nothing() {
        let mut resume = Resume::default();
        assert_eq!(stream(&mut resume, &LOG[..3]), ["one", "two", "same"]);
        // Floored to the second of the last line sent.
        let since = resume.reopen().expect("since");
        assert_eq!(since.to_string(), "2025-03-01T10:00:01Z");
        // The server sends from that second on: two, same, same, three, four.
        assert_eq!(stream(&mut resume, &LOG[1..]), ["same", "three", "four"]);
        assert!(!resume.replaying());
    }

    #[test]
    fn a_server_ignoring_since_time_is_deduplicated_too() {
        let mut resume = Resume::default();
        stream(&mut resume, &LOG[..4]);
        resume.reopen();
        assert_eq!(stream(&mut resume, &LOG), ["three", "four"]);
    }

    #[test]
    fn a_cut_after_the_last_line_just_waits_for_new_ones() {
        let mut resume = Resume::default();
        stream(&mut resume, &LOG);
        resume.reopen();
        assert_eq!(stream(&mut resume, &LOG[4..]), Vec::<String>::new());
        assert!(resume.replaying(), "nothing new yet");
        assert_eq!(
            stream(&mut resume, &["2025-03-01T10:00:03Z five"]),
            ["five"]
        );
    }

    #[test]
    fn resuming_twice_works_like_once() {
        let mut resume = Resume::default();
        stream(&mut resume, &LOG[..2]);
        resume.reopen();
        assert_eq!(stream(&mut resume, &LOG[..4]), ["same", "same"]);
        resume.reopen();
        assert_eq!(stream(&mut resume, &LOG), ["three", "four"]);
    }

    #[test]
    fn nothing_sent_reopens_from_the_start() {
        let mut resume = Resume::default();
        assert_eq!(resume.reopen(), None);
        assert_eq!(stream(&mut resume, &LOG[..1]), ["one"]);
    }

    #[test]
    fn untimed_lines_pass_outside_a_replay_only() {
        let mut resume = Resume::default();
        assert_eq!(
            stream(&mut resume, &[LOG[0], "no stamp"]),
            ["one", "no stamp"]
        );
        resume.reopen();
        assert_eq!(
            stream(&mut resume, &[LOG[0], "no stamp", LOG[1], "no stamp"]),
            ["two", "no stamp"]
        );
    }
}
