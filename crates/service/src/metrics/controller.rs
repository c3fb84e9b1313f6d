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
    pub fn instrument<K, C, E, R, Fut>(
        &self,
        mut reconcile: R,
        error_kind: fn(&E) -> &'static str,
        lifecycle: Option<fn(&K) -> Option<Lifecycle>>,
    ) -> impl FnMut(Arc<K>, Arc<C>) -> ReconcileFuture<E> + use<K, C, E, R, Fut>
    where
        R: FnMut(Arc<K>, Arc<C>) -> Fut,
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::metrics::Metrics;

    #[derive(Debug, PartialEq)]
    struct Failure(&'static str);

    fn kind(failure: &Failure) -> &'static str {
        failure.0
    }

    async fn reconcile(object: Arc<u8>, _context: Arc<()>) -> Result<Action, Failure> {
        match *object {
            0 => Ok(Action::await_change()),
            _ => Err(Failure("conflict")),
        }
    }

    fn lines(metrics: &Metrics, prefix: &str) -> Vec<String> {
        metrics
            .encode()
            .lines()
            .filter(|line| line.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn reconciles_are_counted_timed_and_their_errors_labelled_by_kind() {
        let metrics = Metrics::new();
        let mut instrumented = metrics.controller("test").instrument(reconcile, kind, None);
        let context = Arc::new(());
        assert!(instrumented(Arc::new(0), context.clone()).await.is_ok());
        let failed = instrumented(Arc::new(1), context.clone()).await;
        assert_eq!(failed.err(), Some(Failure("conflict")));
        assert_eq!(
            lines(&metrics, "testcluster_reconcile_total"),
            [r#"testcluster_reconcile_total{controller="test"} 2"#]
        );
        assert_eq!(
            lines(&metrics, "testcluster_reconcile_errors_total"),
            [r#"testcluster_reconcile_errors_total{controller="test",error="conflict"} 1"#]
        );
        assert_eq!(
            lines(&metrics, "testcluster_reconcile_duration_seconds_count"),
            [r#"testcluster_reconcile_duration_seconds_count{controller="test"} 2"#]
        );
    }

    #[tokio::test]
    async fn the_lifecycle_of_each_reconciled_object_feeds_the_phase_durations() {
        fn history(object: &u8) -> Option<Lifecycle> {
            let now = SystemTime::now();
            let entered = match object {
                0 => vec![("Pending", now)],
                _ => vec![("Pending", now - Duration::from_secs(3)), ("Ready", now)],
            };
            Some(Lifecycle {
                key: "uid".to_owned(),
                entered,
            })
        }
        let metrics = Metrics::new();
        let controller = metrics.controller("test");
        let mut instrumented = controller.instrument(reconcile, kind, Some(history));
        let _ = instrumented(Arc::new(0), Arc::new(())).await;
        let _ = instrumented(Arc::new(1), Arc::new(())).await;
        let _ = instrumented(Arc::new(1), Arc::new(())).await;
        assert_eq!(
            lines(&metrics, "testcluster_phase_duration_seconds_sum"),
            [r#"testcluster_phase_duration_seconds_sum{phase="Pending"} 3.0"#]
        );
        assert_eq!(
            lines(&metrics, "testcluster_phase_duration_seconds_count"),
            [r#"testcluster_phase_duration_seconds_count{phase="Pending"} 1"#]
        );
    }
}
