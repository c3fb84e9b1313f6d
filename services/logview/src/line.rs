//! One line of a `pods/log` stream requested with `timestamps=true`: the kubelet's RFC 3339
//! timestamp, a space, then the text.

use k8s_openapi::jiff::Timestamp;
use testcluster_api::pbjson_types;
use testcluster_api::v1::{Container, LogLine};

/// Turns one raw line (with or without its trailing newline) into a [`LogLine`]. A line without
/// a parseable timestamp is kept whole, untimed, rather than dropped.
pub fn parse(raw: &[u8], container: Container) -> LogLine {
    let text = String::from_utf8_lossy(raw);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let (time, text) = match text.split_once(' ') {
        Some((stamp, rest)) => match stamp.parse::<Timestamp>() {
            Ok(time) => (
                Some(pbjson_types::Timestamp {
                    seconds: time.as_second(),
                    nanos: time.subsec_nanosecond(),
                }),
                rest,
            ),
            Err(_) => (None, text),
        },
        None => match text.parse::<Timestamp>() {
            // An empty line is just its timestamp.
            Ok(time) => (
                Some(pbjson_types::Timestamp {
                    seconds: time.as_second(),
                    nanos: time.subsec_nanosecond(),
                }),
                "",
            ),
            Err(_) => (None, text),
        },
    };
    LogLine {
        container: container.into(),
        time,
        text: text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_and_text_are_split() {
        let line = parse(
            b"2025-03-01T10:00:00.123456789Z hello world\n",
            Container::Runner,
        );
        assert_eq!(line.text, "hello world");
        assert_eq!(line.container, Container::Runner as i32);
        let time = line.time.expect("time");
        assert_eq!(time.nanos, 123_456_789);
        assert_eq!(time.seconds, 1_740_823_200);
    }

    #[test]
    fn an_empty_line_keeps_its_time() {
        let line = parse(b"2025-03-01T10:00:00Z\n", Container::Init);
        assert_eq!(line.text, "");
        assert!(line.time.is_some());
    }

    #[test]
    fn a_line_without_timestamp_is_kept_whole() {
        let line = parse(b"no stamp here\n", Container::Runner);
        assert_eq!((line.text.as_str(), line.time), ("no stamp here", None));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let line = parse(b"2025-03-01T10:00:00Z a\xffb\n", Container::Runner);
        assert_eq!(line.text, "a\u{fffd}b");
    }
}

/// Fuzz target (a property test; see `crates/resources/tests/fuzz.rs` for the longer run).
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any bytes make a line, never a panic; the line never keeps its line ending, and a
        /// timestamp the kubelet writes is taken off and kept as the time.
        #[test]
        fn fuzz_log_line_parse(raw in proptest::collection::vec(any::<u8>(), 0..256), seconds in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000) {
            let line = parse(&raw, Container::Runner);
            prop_assert!(!line.text.ends_with('\n'));

            let text = String::from_utf8_lossy(&raw).replace(['\n', '\r'], " ");
            let stamp = Timestamp::new(seconds, i32::try_from(nanos).unwrap_or_default())
                .expect("in range");
            let stamped = format!("{stamp} {text}\n");
            let line = parse(stamped.as_bytes(), Container::Init);
            prop_assert_eq!(&line.text, &text);
            let time = line.time.expect("timed");
            prop_assert_eq!((time.seconds, time.nanos), (stamp.as_second(), stamp.subsec_nanosecond()));
        }
    }
}
