//! Controller families: reconciles (count, duration, errors by kind) and lifecycle phase
//! durations.
//!
//! A controller does not call these itself: [`ControllerMetrics::instrument`] wraps its reconcile
//! function where it hands it to kube's `Controller::run`, so reconcile and `error_policy` stay
//! free of metrics code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::lifecycle::{Lifecycle, PhaseClock};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    /// The error's kind, a short stable name the controller gives it (such as `kube`).
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The families, registered once per registry and shared by every controller in it.
#[derive(Clone)]
pub(super) struct Families {
    reconciles: Family<ControllerLabels, Counter>,
    duration: HistogramFamily<ControllerLabels>,
    errors: Family<ErrorLabels, Counter>,
    phases: HistogramFamily<PhaseLabels>,
}

impl Families {
    pub(super) fn register(registry: &mut Registry) -> Families {
        let families = Families {
            reconciles: Family::default(),
            // 1 ms to about 33 s.
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            errors: Family::default(),
            // 1 s to about 4.5 h: GKE takes minutes, jobs up to hours.
            phases: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 15))
            }),
        };
        registry.register(
            "testcluster_reconcile",
            "Reconciles run, by controller",
            families.reconciles.clone(),
        );
        registry.register(
            "testcluster_reconcile_duration_seconds",
            "Time a reconcile took, by controller",
            families.duration.clone(),
        );
        registry.register(
            "testcluster_reconcile_errors",
            "Reconciles that failed, by controller and error kind",
            families.errors.clone(),
        );
        registry.register(
            "testcluster_phase_duration_seconds",
            "Time test clusters spent in a lifecycle phase before leaving it, by phase \
             (from the phase timestamps in their status, to the second)",
            families.phases.clone(),
        );
        families
    }
}

/// One controller's view of the controller families. Cheap to clone.
#[derive(Clone)]
pub struct ControllerMetrics {
    labels: ControllerLabels,
    families: Families,
    phases: Arc<PhaseClock>,
}

/// What a wrapped reconcile returns: kube's `Controller::run` needs a future it can name.
pub type ReconcileFuture<E> = Pin<Box<dyn Future<Output = Result<Action, E>> + Send>>;

impl ControllerMetrics {
    pub(super) fn new(controller: &'static str, families: Families) -> ControllerMetrics {
        ControllerMetrics {
            labels: ControllerLabels { controller },
            families,
            phases: Arc::new(PhaseClock::new()),
        }
    }

    /// `reconcile`, counted and timed, with each error counted under `error_kind(&error)`.
    ///
    /// `lifecycle`, when given, reads an object's phase history; each phase the object is seen
    /// to have left is then observed once in `testcluster_phase_duration_seconds`. Give it in one
    /// controller only (the one that sees every phase), or phases are counted twice.
    pub fn instrument<K, C, E, Fut>(
        &self,
        mut reconcile: impl FnMut(Arc<K>, Arc<C>) -> Fut,
        error_kind: fn(&E) -> &'static str,
        lifecycle: Option<fn(&K) -> Option<Lifecycle>>,
    ) -> impl FnMut(Arc<K>, Arc<C>) -> ReconcileFuture<E>
    where
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: 'static,
    {
        let metrics = self.clone();
        move |object, context| {
            if let Some(history) = lifecycle.and_then(|lifecycle| lifecycle(&object)) {
                metrics.observe_lifecycle(&history);
            }
            let started = Instant::now();
            let reconciled = reconcile(object, context);
            let metrics = metrics.clone();
            Box::pin(async move {
                let result = reconciled.await;
                metrics.reconciled(started.elapsed(), result.as_ref().err().map(error_kind));
                result
            })
        }
    }

    /// Counts one reconcile that took `elapsed` and failed with `error` (a kind), if it did.
    pub fn reconciled(&self, elapsed: Duration, error: Option<&'static str>) {
        self.families.reconciles.get_or_create(&self.labels).inc();
        self.families
            .duration
            .get_or_create(&self.labels)
            .observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            let labels = ErrorLabels {
                controller: self.labels.controller,
                error,
            };
            self.families.errors.get_or_create(&labels).inc();
        }
    }

    /// Observes the phases `history` shows an object has left since it was last seen.
    pub fn observe_lifecycle(&self, history: &Lifecycle) {
        for (phase, spent) in self.phases.newly_left(history) {
            self.families
                .phases
                .get_or_create(&PhaseLabels { phase })
                .observe(spent.as_secs_f64());
        }
    }
}
