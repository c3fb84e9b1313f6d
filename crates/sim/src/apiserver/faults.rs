//! Injected API failures and request counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

/// Switches for failures the API server injects into requests from outside the simulator.
#[derive(Default)]
pub struct ApiFaults {
    /// Per mille of requests answered 500 InternalError.
    error_500_per_mille: AtomicU32,
    /// Per mille of requests answered 429 TooManyRequests.
    error_429_per_mille: AtomicU32,
    /// Per mille of updates and patches of an object answered 409 Conflict, as when another
    /// writer got there first.
    conflict_per_mille: AtomicU32,
    latency_ms: AtomicU64,
    /// Closes each watch this long after it started (0: never), as a load balancer's timeout.
    watch_lifetime_ms: AtomicU64,
    /// Ends each new watch after its first event.
    flaky_watches: AtomicBool,
    /// Notified to close the watches open now.
    dropped_watches: watch::Sender<()>,
}

/// The API fault switches as one value: what `GET /faults` shows and `PUT /faults/api` sets.
/// Rates are fractions of requests (0.05 is 5 %).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ApiFaultSettings {
    /// Requests answered 500 InternalError.
    pub error_rate: f64,
    /// Requests answered 429 TooManyRequests.
    pub throttle_rate: f64,
    /// Updates and patches of an object answered 409 Conflict.
    pub conflict_rate: f64,
    /// Added to every request.
    #[serde(with = "crate::admin::duration")]
    pub latency: Duration,
    /// Every watch is closed this long after it started; zero: never.
    #[serde(with = "crate::admin::duration")]
    pub drop_watches_after: Duration,
    /// Every watch is closed after its first event.
    pub flaky_watches: bool,
}

/// What the fault switches say about one request.
pub enum Injected {
    None,
    Error(u16),
}

impl ApiFaults {
    /// Answers `per_mille`/1000 of requests with 500.
    pub fn set_error_rate(&self, per_mille: u32) {
        self.error_500_per_mille
            .store(per_mille.min(1000), Ordering::Relaxed);
    }

    /// Answers `per_mille`/1000 of requests with 429.
    pub fn set_throttle_rate(&self, per_mille: u32) {
        self.error_429_per_mille
            .store(per_mille.min(1000), Ordering::Relaxed);
    }

    /// Answers `per_mille`/1000 of updates and patches of an object with 409 Conflict ("the
    /// object has been modified"), without writing.
    pub fn set_conflict_rate(&self, per_mille: u32) {
        self.conflict_per_mille
            .store(per_mille.min(1000), Ordering::Relaxed);
    }

    /// Delays every request by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Closes every watch open now, as an API server restart or a load balancer would.
    pub fn drop_watches(&self) {
        self.dropped_watches.send_replace(());
    }

    /// While set, each watch is closed right after its first event.
    pub fn set_flaky_watches(&self, on: bool) {
        self.flaky_watches.store(on, Ordering::Relaxed);
    }

    /// Closes every watch `lifetime` after it started; zero: never.
    pub fn set_watch_lifetime(&self, lifetime: Duration) {
        self.watch_lifetime_ms
            .store(lifetime.as_millis() as u64, Ordering::Relaxed);
    }

    /// Turns every fault off.
    pub fn clear(&self) {
        self.set(&ApiFaultSettings::default());
    }

    /// Sets every switch at once.
    pub fn set(&self, settings: &ApiFaultSettings) {
        let per_mille = |rate: f64| (rate.clamp(0.0, 1.0) * 1000.0).round() as u32;
        self.set_error_rate(per_mille(settings.error_rate));
        self.set_throttle_rate(per_mille(settings.throttle_rate));
        self.set_conflict_rate(per_mille(settings.conflict_rate));
        self.set_latency(settings.latency);
        self.set_watch_lifetime(settings.drop_watches_after);
        self.set_flaky_watches(settings.flaky_watches);
    }

    /// The switches as they are now.
    pub fn settings(&self) -> ApiFaultSettings {
        let rate = |per_mille: &AtomicU32| f64::from(per_mille.load(Ordering::Relaxed)) / 1000.0;
        ApiFaultSettings {
            error_rate: rate(&self.error_500_per_mille),
            throttle_rate: rate(&self.error_429_per_mille),
            conflict_rate: rate(&self.conflict_per_mille),
            latency: self.latency(),
            drop_watches_after: self.watch_lifetime(),
            flaky_watches: self.flaky_watches(),
        }
    }

    /// How long a watch may stay open: `requested`, or less while watches are being dropped.
    pub(crate) fn watch_timeout(&self, requested: Duration) -> Duration {
        match self.watch_lifetime() {
            lifetime if lifetime.is_zero() => requested,
            lifetime => requested.min(lifetime),
        }
    }

    fn watch_lifetime(&self) -> Duration {
        Duration::from_millis(self.watch_lifetime_ms.load(Ordering::Relaxed))
    }

    /// Whether this update or patch of an object is to be refused with a conflict.
    pub(crate) fn roll_conflict(&self) -> bool {
        let rate = self.conflict_per_mille.load(Ordering::Relaxed);
        rate > 0 && rand::random_range(0..1000) < rate
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn roll(&self) -> Injected {
        let e500 = self.error_500_per_mille.load(Ordering::Relaxed);
        let e429 = self.error_429_per_mille.load(Ordering::Relaxed);
        if e500 == 0 && e429 == 0 {
            return Injected::None;
        }
        let dice = rand::random_range(0..1000);
        if dice < e500 {
            Injected::Error(500)
        } else if dice < e500 + e429 {
            Injected::Error(429)
        } else {
            Injected::None
        }
    }

    /// Changes when [`ApiFaults::drop_watches`] is called after subscribing.
    pub(crate) fn dropped_watches(&self) -> watch::Receiver<()> {
        self.dropped_watches.subscribe()
    }

    pub(crate) fn flaky_watches(&self) -> bool {
        self.flaky_watches.load(Ordering::Relaxed)
    }
}

/// One kind of request counted: who made it, what it did to which resource, and the answer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountedRequest {
    /// The authenticated user (`system:admin`, `system:serviceaccount:<ns>:<name>`, ...).
    pub user: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `apply`, `delete`, `deletecollection`.
    pub verb: String,
    /// `pods`, `pods/log`, `testclustersgke/status`, ...
    pub resource: String,
    /// The response's HTTP status code (200 for a watch, whose errors come as events).
    pub code: u16,
}

/// Requests served, per user, verb, resource and response code.
#[derive(Default)]
pub struct RequestCounters {
    counts: Mutex<BTreeMap<CountedRequest, u64>>,
}

impl RequestCounters {
    pub(crate) fn record(&self, user: &str, verb: &str, resource: &str, code: u16) {
        *self
            .counts
            .lock()
            .entry(CountedRequest {
                user: user.to_owned(),
                verb: verb.to_owned(),
                resource: resource.to_owned(),
                code,
            })
            .or_default() += 1;
    }

    /// Requests counted for one verb and resource, whoever made them and however they ended.
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .lock()
            .iter()
            .filter(|(r, _)| r.verb == verb && r.resource == resource)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every count so far per verb and resource, whoever made the requests and however they ended.
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        let mut by_verb = BTreeMap::new();
        for (request, n) in self.counts.lock().iter() {
            *by_verb
                .entry((request.verb.clone(), request.resource.clone()))
                .or_default() += n;
        }
        by_verb
    }

    /// Every count so far, with user and response code.
    pub fn requests(&self) -> BTreeMap<CountedRequest, u64> {
        self.counts.lock().clone()
    }

    /// The requests of one user so far: (verb, resource, code) and how many.
    pub fn of_user(&self, user: &str) -> BTreeMap<(String, String, u16), u64> {
        self.counts
            .lock()
            .iter()
            .filter(|(r, _)| r.user == user)
            .map(|(r, n)| ((r.verb.clone(), r.resource.clone(), r.code), *n))
            .collect()
    }

    /// All requests counted so far.
    pub fn total(&self) -> u64 {
        self.counts.lock().values().sum()
    }

    pub fn reset(&self) {
        self.counts.lock().clear();
    }
}
