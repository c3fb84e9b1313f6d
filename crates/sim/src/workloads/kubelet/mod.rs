//! The simulated node's kubelet: binds every unscheduled pod to its node, runs each pod with a
//! [`pod_worker::PodWorker`], and stops a pod's processes when the pod is deleted.

mod env;
mod images;
mod pod_worker;
mod process;
pub(crate) mod status;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use images::ImagePullRules;

use super::WorkloadConfig;
use super::events::EventRecorder;
use super::logs::PodLogs;
use pod_worker::PodWorker;

/// What every pod worker shares.
pub(super) struct KubeletContext {
    client: Client,
    logs: PodLogs,
    events: EventRecorder,
    config: WorkloadConfig,
    pods_root: PathBuf,
    /// The kubelet stops (not a pod deletion): processes are killed but no status is written, as a
    /// real node going away reports nothing more.
    shutdown: CancellationToken,
    /// Images "pulled" so far (fully qualified references), for `IfNotPresent` and `Never`.
    images_present: Mutex<HashSet<String>>,
}

/// A pod this kubelet has taken on.
struct PodHandle {
    namespace: String,
    name: String,
    stop: CancellationToken,
    /// `None` for a pod that was already finished when first seen.
    task: Option<JoinHandle<()>>,
    dir: PathBuf,
}

pub(super) struct Kubelet {
    ctx: Arc<KubeletContext>,
    pods: HashMap<String, PodHandle>,
}

impl Kubelet {
    pub(super) fn new(
        client: Client,
        logs: PodLogs,
        config: WorkloadConfig,
        pods_root: PathBuf,
        shutdown: CancellationToken,
    ) -> Kubelet {
        let events = EventRecorder::new(client.clone(), "kubelet", Some(config.node_name.clone()));
        Kubelet {
            ctx: Arc::new(KubeletContext {
                client,
                logs,
                events,
                config,
                pods_root,
                shutdown,
                images_present: Mutex::new(HashSet::new()),
            }),
            pods: HashMap::new(),
        }
    }

    /// Watches all pods until the shutdown token fires; then stops every pod's processes.
    pub(super) async fn run(mut self) {
        let shutdown = self.ctx.shutdown.clone();
        self.register_node().await;
        let pods: Api<Pod> = Api::all(self.ctx.client.clone());
        let mut events = watcher::watcher(pods, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listed: HashSet<String> = HashSet::new();
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => break,
                event = events.next() => event,
            };
            match event {
                Some(Ok(Event::Apply(pod))) => self.observe(pod).await,
                Some(Ok(Event::Delete(pod))) => {
                    if let Some(uid) = pod.uid() {
                        self.forget(&uid);
                    }
                }
                Some(Ok(Event::Init)) => listed.clear(),
                Some(Ok(Event::InitApply(pod))) => {
                    listed.extend(pod.uid());
                    self.observe(pod).await;
                }
                Some(Ok(Event::InitDone)) => {
                    // Pods that vanished while the watch was re-established.
                    let gone: Vec<String> = self
                        .pods
                        .keys()
                        .filter(|uid| !listed.contains(*uid))
                        .cloned()
                        .collect();
                    for uid in gone {
                        self.forget(&uid);
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "kubelet pod watch failed; retrying"),
                None => break,
            }
        }
        // The node goes away, the pods stay: their processes end, their logs remain readable.
        for (_, handle) in self.pods.drain() {
            handle.stop.cancel();
        }
    }

    /// Creates the Node object pods are bound to, so that `kubectl get nodes` shows it.
    async fn register_node(&self) {
        let nodes: Api<Node> = Api::all(self.ctx.client.clone());
        let node = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.ctx.config.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.ctx.config.node_name,
                    "kubernetes.io/os": std::env::consts::OS,
                },
            },
            "status": {
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }],
                "addresses": [{"type": "InternalIP", "address": status::LOCAL_IP}],
            },
        });
        match serde_json::from_value::<Node>(node) {
            Ok(node) => {
                if let Err(e) = nodes.create(&PostParams::default(), &node).await {
                    tracing::debug!(error = %e, "registering the simulated node");
                }
            }
            Err(e) => tracing::warn!(error = %e, "building the simulated node"),
        }
    }

    async fn observe(&mut self, pod: Pod) {
        let Some(uid) = pod.uid() else { return };
        let spec = pod.spec.as_ref();
        let node = spec.and_then(|s| s.node_name.as_deref()).unwrap_or("");
        if !node.is_empty() && node != self.ctx.config.node_name {
            return; // another node's pod
        }
        if let Some(handle) = self.pods.get(&uid) {
            if pod.metadata.deletion_timestamp.is_some() {
                handle.stop.cancel();
            }
            return;
        }
        let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let dir = self.ctx.pods_root.join(format!("{namespace}_{name}_{uid}"));
        let stop = CancellationToken::new();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let finished = matches!(phase, Some("Succeeded" | "Failed"));
        let task = if finished || pod.metadata.deletion_timestamp.is_some() {
            None
        } else {
            if node.is_empty() {
                self.bind(&namespace, &name).await;
            }
            let worker = Arc::new(PodWorker::new(
                self.ctx.clone(),
                pod,
                dir.clone(),
                stop.clone(),
            ));
            Some(tokio::spawn(worker.run()))
        };
        self.pods.insert(
            uid,
            PodHandle {
                namespace,
                name,
                stop,
                task,
                dir,
            },
        );
    }

    /// The scheduler's part: the only node there is.
    async fn bind(&self, namespace: &str, name: &str) {
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), namespace);
        let patch = serde_json::json!({"spec": {"nodeName": self.ctx.config.node_name}});
        if let Err(e) = pods
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(pod = name, error = %e, "binding the pod");
        }
    }

    /// The pod is gone: stop its processes, then drop its logs and its directory.
    fn forget(&mut self, uid: &str) {
        let Some(handle) = self.pods.remove(uid) else {
            return;
        };
        handle.stop.cancel();
        let logs = self.ctx.logs.clone();
        tokio::spawn(async move {
            if let Some(task) = handle.task {
                let _ = task.await;
            }
            logs.remove_pod(&handle.namespace, &handle.name);
            if let Err(e) = tokio::fs::remove_dir_all(&handle.dir).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::debug!(dir = %handle.dir.display(), error = %e, "removing a pod directory");
            }
        });
    }
}
