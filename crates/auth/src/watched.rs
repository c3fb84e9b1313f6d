//! One named Kubernetes object (the static tokens' Secret, the policy's ConfigMap) kept read by a
//! watch, as what a caller makes of it: changes apply without a restart.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a reader waits for the object's first read before it goes on without it.
const FIRST_READ_WAIT: Duration = Duration::from_secs(5);

/// What was made of the object: `None` until it was first read (absent counts as read).
#[derive(Clone)]
pub struct Watched<T> {
    current: watch::Receiver<Option<Arc<T>>>,
}

impl<T: Send + Sync + 'static> Watched<T> {
    /// Watches `api`'s object `name` until `shutdown`, making `T` of it (or of its absence) on
    /// every change.
    pub fn start<K>(
        api: Api<K>,
        name: &str,
        make: impl Fn(Option<&K>) -> T + Send + 'static,
        shutdown: CancellationToken,
    ) -> Watched<T>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let (sender, current) = watch::channel(None);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let name = name.to_owned();
        tokio::spawn(async move {
            let mut events = watcher::watcher(api, config).default_backoff().boxed();
            let mut listed: Option<K> = None;
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => return,
                    event = events.next() => event,
                };
                let made = match event {
                    None => return,
                    Some(Err(error)) => {
                        tracing::warn!(%name, %error, "watching a configuration object");
                        continue;
                    }
                    Some(Ok(Event::Init)) => {
                        listed = None;
                        continue;
                    }
                    Some(Ok(Event::InitApply(object))) => {
                        listed = Some(object);
                        continue;
                    }
                    Some(Ok(Event::InitDone)) => make(listed.take().as_ref()),
                    Some(Ok(Event::Apply(object))) => make(Some(&object)),
                    Some(Ok(Event::Delete(_))) => make(None),
                };
                sender.send_replace(Some(Arc::new(made)));
            }
        });
        Watched { current }
    }

    /// A fixed value, for tests and for callers that configure without Kubernetes.
    pub fn fixed(value: T) -> Watched<T> {
        let (_sender, current) = watch::channel(Some(Arc::new(value)));
        Watched { current }
    }

    /// The value now, after waiting (boundedly) for the first read; `None` if there is none yet.
    pub async fn current(&self) -> Option<Arc<T>> {
        let mut current = self.current.clone();
        // Not read in time, or the watch ended: the value last known, if any.
        let _ = tokio::time::timeout(FIRST_READ_WAIT, current.wait_for(Option::is_some)).await;
        current.borrow().clone()
    }
}
