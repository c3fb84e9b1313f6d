//! Events expire, as with kube-apiserver's `--event-ttl` (one hour by default): etcd drops an
//! Event when its lease ends, and watchers see it deleted. Without this, a simulator serving run
//! after run would keep every Event it was ever sent.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::server::ServerState;
use super::store::WriteError;

/// kube-apiserver's default `--event-ttl`.
pub const DEFAULT_EVENT_TTL: Duration = Duration::from_secs(3600);

/// Checks for expired Events every `ttl / 60` (at least every second, at most every minute).
pub fn spawn(state: Arc<ServerState>, ttl: Duration) {
    let period = (ttl / 60).clamp(Duration::from_secs(1), Duration::from_secs(60));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => return,
                _ = ticks.tick() => expire(&state, ttl),
            }
        }
    });
}

/// Deletes the Events (both API versions' tables) created more than `ttl` ago.
fn expire(state: &ServerState, ttl: Duration) {
    let Ok(ttl) = chrono::Duration::from_std(ttl) else {
        return;
    };
    let cutoff = Utc::now() - ttl;
    for api_version in ["v1", "events.k8s.io/v1"] {
        let Some(rt) = state.resources.find_kind(api_version, "Event") else {
            continue;
        };
        let table = rt.storage_key();
        let (events, _) = state.store.list(&table, None);
        for event in events {
            let created = event["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok());
            if created.is_some_and(|created| created < cutoff) {
                let namespace = event["metadata"]["namespace"].as_str().unwrap_or_default();
                let name = event["metadata"]["name"].as_str().unwrap_or_default();
                // Gone already (deleted meanwhile) is as good as expired.
                let _: Result<_, WriteError<()>> =
                    state.store.remove(&table, namespace, name, |_| Ok(()));
            }
        }
    }
}
