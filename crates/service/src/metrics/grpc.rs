//! The gRPC server families, named as go-grpc-prometheus names them so that existing dashboards
//! and alerts fit: `grpc_server_handled_total`, `grpc_server_handling_seconds`, plus
//! `grpc_server_open_streams`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which method a call went to. Only methods the server serves get their own labels (unknown
/// paths share one set), so a client cannot grow the number of series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// Fully qualified service name, such as `testcluster.v1.TestClusterService`.
    pub grpc_service: String,
    pub grpc_method: String,
    /// `unary`, `server_stream`, `client_stream` or `bidi_stream`.
    pub grpc_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    #[prometheus(flatten)]
    method: MethodLabels,
    /// The status code's name, such as `OK` or `NOT_FOUND`.
    grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitedLabels {
    #[prometheus(flatten)]
    method: MethodLabels,
    /// Which bound refused the call: `calls`, `streams` or `rate`.
    limit: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The gRPC families of one registry. Cheap to clone; clones record into the same families.
#[derive(Clone)]
pub struct GrpcMetrics {
    handled: Family<HandledLabels, Counter>,
    handling: HistogramFamily<MethodLabels>,
    open_streams: Family<MethodLabels, Gauge>,
    limited: Family<LimitedLabels, Counter>,
}

impl GrpcMetrics {
    pub(super) fn register(registry: &mut Registry) -> GrpcMetrics {
        let metrics = GrpcMetrics {
            handled: Family::default(),
            // 1 ms to about 33 s; streams that stay open longer land in +Inf.
            handling: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            open_streams: Family::default(),
            limited: Family::default(),
        };
        registry.register(
            "grpc_server_handled",
            "Calls completed on the server, by method and status code",
            metrics.handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Time from a call's arrival to its status (a stream's whole life), by method",
            metrics.handling.clone(),
        );
        registry.register(
            "grpc_server_open_streams",
            "Streaming calls open now, by method",
            metrics.open_streams.clone(),
        );
        registry.register(
            "grpc_server_limited",
            "Calls refused RESOURCE_EXHAUSTED by a bound of the server (calls, streams, a caller's rate), by method",
            metrics.limited.clone(),
        );
        metrics
    }

    /// Counts a call of `method` refused by the bound `limit`.
    pub fn limited(&self, method: &MethodLabels, limit: &'static str) {
        self.limited
            .get_or_create(&LimitedLabels {
                method: method.clone(),
                limit,
            })
            .inc();
    }

    /// Counts a finished call of `method` with `code`, which took `elapsed`.
    pub fn handled(&self, method: &MethodLabels, code: tonic::Code, elapsed: Duration) {
        self.handled
            .get_or_create(&HandledLabels {
                method: method.clone(),
                grpc_code: code_name(code),
            })
            .inc();
        self.handling
            .get_or_create(method)
            .observe(elapsed.as_secs_f64());
    }

    /// Exposes the open streams of `method`, at 0 until one opens.
    pub fn declare_streams(&self, method: &MethodLabels) {
        drop(self.open_streams.get_or_create(method));
    }

    /// One more open stream of `method`; the gauge goes down when the returned guard drops.
    pub fn stream_opened(&self, method: &MethodLabels) -> OpenStream {
        let gauge = self.open_streams.get_or_create_owned(method);
        gauge.inc();
        OpenStream { gauge }
    }
}

/// Holds one count in `grpc_server_open_streams` while it lives.
#[derive(Debug)]
pub struct OpenStream {
    gauge: Gauge,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The canonical name of a status code, as gRPC's documentation and other servers' metrics
/// spell it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
