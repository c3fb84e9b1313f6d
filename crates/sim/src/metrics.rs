//! The simulator's own figures in Prometheus text format, for a process that measures the services
//! from outside (the lifecycle benchmark): the management API server's request counters and the
//! cloud's cluster counts.
//!
//! The figures already live in [`RequestCounters`] and the [`Inventory`]; each scrape copies them
//! into a fresh registry and encodes that, so the counting paths stay as they are.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::Simulator;

/// Labels of `apiserver_request_total`, named as the real API server names them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    /// The authenticated user's name (not a label of the real metric: here it shows which service
    /// made the requests).
    user: String,
    code: String,
}

/// The simulator's metrics now, in the Prometheus text format (0.0.4):
///
/// - `apiserver_request_total{verb,resource,user,code}`: requests to the management API server from clients
///   outside the simulator (its own controllers are not counted);
/// - `sim_cloud_clusters_created_total` and `sim_cloud_clusters_live`: cloud clusters ever created
///   and not yet deleted.
pub fn encode(sim: &Simulator) -> String {
    let mut registry = Registry::default();

    let requests = Family::<RequestLabels, Counter>::default();
    for (request, count) in sim.api().counters().requests() {
        let labels = RequestLabels {
            verb: request.verb,
            resource: request.resource,
            user: request.user,
            code: request.code.to_string(),
        };
        requests.get_or_create(&labels).inc_by(count);
    }
    registry.register(
        "apiserver_request",
        "Requests to the management API server from clients outside the simulator",
        requests,
    );

    let created = Counter::<u64>::default();
    created.inc_by(sim.inventory().created_total());
    registry.register(
        "sim_cloud_clusters_created",
        "Cloud clusters created since the simulator started",
        created,
    );
    let live = Gauge::<i64>::default();
    live.set(sim.inventory().live().len() as i64);
    registry.register(
        "sim_cloud_clusters_live",
        "Cloud clusters created and not yet deleted",
        live,
    );

    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
    text
}

/// The content type of what [`encode`] writes: the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
