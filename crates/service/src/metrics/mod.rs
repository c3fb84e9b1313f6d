//! Prometheus metrics: one registry per service, shared by its gRPC stack and its controllers,
//! and served as Prometheus text on its own HTTP port.
//!
//! - [`Metrics`] is the registry. A service makes one, hands it to
//!   [`GrpcServer`](crate::grpc::GrpcServer) and to its controllers, and serves it with
//!   [`http::serve`].
//! - [`GrpcMetrics`] (`grpc_server_*`): calls by service, method and code, their latency, and the
//!   streams open now. Recorded by the gRPC stack, never by handlers.
//! - [`ControllerMetrics`] (`testcluster_reconcile*`, `testcluster_phase_duration_seconds`):
//!   reconciles, their duration and their errors by kind, and how long test clusters spend in
//!   each lifecycle phase. Recorded by wrapping a controller's reconcile function.
//!
//! Each service has its own registry, so `tcctl up`, which runs all of them in one process, still
//! shows each service's metrics on that service's port.

mod controller;
mod grpc;
pub mod http;
mod lifecycle;

use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use prometheus_client::registry::Registry;

pub use controller::ControllerMetrics;
pub use grpc::{GrpcMetrics, MethodLabels, OpenStream};
pub use lifecycle::Lifecycle;

/// A service's metrics registry. Cheap to clone; clones share the registry.
#[derive(Clone, Default)]
pub struct Metrics {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    registry: Mutex<Registry>,
    // Each family is registered once however often it is asked for: a family registered twice
    // would make the exposition invalid.
    grpc: OnceLock<GrpcMetrics>,
    controllers: OnceLock<controller::Families>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// The gRPC server families, registered on first use.
    pub fn grpc(&self) -> GrpcMetrics {
        self.shared
            .grpc
            .get_or_init(|| GrpcMetrics::register(&mut self.shared.registry.lock()))
            .clone()
    }

    /// The controller families, labelled with `controller`; registered on first use.
    pub fn controller(&self, controller: &'static str) -> ControllerMetrics {
        let families = self
            .shared
            .controllers
            .get_or_init(|| controller::Families::register(&mut self.shared.registry.lock()));
        ControllerMetrics::new(controller, families.clone())
    }

    /// Registers a service's own families (once: the caller keeps what `register` returns).
    pub fn register<T>(&self, register: impl FnOnce(&mut Registry) -> T) -> T {
        register(&mut self.shared.registry.lock())
    }

    /// Everything registered, in the Prometheus text exposition format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(
            &mut text,
            &self.shared.registry.lock(),
        );
        text
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}
