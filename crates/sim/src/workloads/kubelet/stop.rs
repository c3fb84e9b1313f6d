//! Why a pod's containers are being stopped, and how long they may take to go.

use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// What ended a pod's run.
#[derive(Clone, Debug, PartialEq)]
pub enum StopCause {
    /// The pod object is being deleted: once its containers stopped, the kubelet removes it.
    Deleted,
    /// The kubelet evicts the pod (node pressure): it ends `Failed` / `Evicted` with `message`.
    Evicted { message: String },
    /// The kubelet itself stops: nothing more is reported.
    Shutdown,
}

/// A pod's stop request, shared by the kubelet (which asks) and the pod worker (which obeys).
#[derive(Debug, Default)]
pub struct PodStop {
    token: CancellationToken,
    request: Mutex<Option<(StopCause, Duration)>>,
}

impl PodStop {
    /// Asks the pod to stop, each container getting `grace` between SIGTERM and SIGKILL. A later
    /// request may shorten the grace period (a second delete with a smaller one), never lengthen it;
    /// the first cause stays, except that a deletion overrides an eviction (the object must go).
    pub fn request(&self, cause: StopCause, grace: Duration) {
        {
            let mut request = self.request.lock();
            match request.as_mut() {
                None => *request = Some((cause, grace)),
                Some((current_cause, current_grace)) => {
                    *current_grace = (*current_grace).min(grace);
                    if cause == StopCause::Deleted {
                        *current_cause = cause;
                    }
                }
            }
        }
        self.token.cancel();
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub fn is_requested(&self) -> bool {
        self.token.is_cancelled()
    }

    pub async fn requested(&self) {
        self.token.cancelled().await;
    }

    pub fn cause(&self) -> Option<StopCause> {
        self.request.lock().as_ref().map(|(cause, _)| cause.clone())
    }

    /// The grace period asked for (zero when no stop was requested).
    pub fn grace(&self) -> Duration {
        self.request
            .lock()
            .as_ref()
            .map_or(Duration::ZERO, |(_, grace)| *grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_only_shrinks_and_deletion_wins() {
        let stop = PodStop::default();
        assert!(!stop.is_requested());
        stop.request(
            StopCause::Evicted {
                message: "m".into(),
            },
            Duration::from_secs(5),
        );
        stop.request(StopCause::Deleted, Duration::from_secs(9));
        assert_eq!(stop.grace(), Duration::from_secs(5));
        assert_eq!(stop.cause(), Some(StopCause::Deleted));
        stop.request(StopCause::Shutdown, Duration::from_secs(1));
        assert_eq!(stop.grace(), Duration::from_secs(1));
        assert_eq!(stop.cause(), Some(StopCause::Deleted));
        assert!(stop.is_requested());
    }
}
