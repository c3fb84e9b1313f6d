//! Kubernetes `Time` ⇄ `google.protobuf.Timestamp`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff;
use pbjson_types::Timestamp;

/// A `Timestamp` that is out of range (or has invalid nanoseconds) as a time.
#[derive(Debug, thiserror::Error)]
#[error("timestamp {seconds}s {nanos}ns is not a valid time: {source}")]
pub struct InvalidTimestamp {
    seconds: i64,
    nanos: i32,
    #[source]
    source: jiff::Error,
}

/// The timestamp of a Kubernetes time.
pub fn to_timestamp(time: &Time) -> Timestamp {
    Timestamp {
        seconds: time.0.as_second(),
        nanos: time.0.subsec_nanosecond(),
    }
}

/// The Kubernetes time of a timestamp.
pub fn from_timestamp(timestamp: &Timestamp) -> Result<Time, InvalidTimestamp> {
    jiff::Timestamp::new(timestamp.seconds, timestamp.nanos)
        .map(Time)
        .map_err(|source| InvalidTimestamp {
            seconds: timestamp.seconds,
            nanos: timestamp.nanos,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let time: Time = serde_json::from_str("\"2020-11-17T09:29:33Z\"").expect("valid time");
        let timestamp = to_timestamp(&time);
        assert_eq!(timestamp.seconds, 1_605_605_373);
        assert_eq!(timestamp.nanos, 0);
        assert_eq!(from_timestamp(&timestamp).expect("in range"), time);
    }

    #[test]
    fn rejects_out_of_range() {
        let timestamp = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(from_timestamp(&timestamp).is_err());
    }
}
