//! The simulated node's kubelet: binds every unscheduled pod to its node, gives it a loopback address
//! of its own ([`addresses`]), runs it with a [`pod_worker::PodWorker`], stops its processes when the
//! pod is deleted (within the deletion's grace period, then removing the object) or evicted
//! ([`KubeletCommand::Evict`]), and enforces memory limits ([`memory`]) and probes ([`probes`]).

pub(crate) mod addresses;
mod env;
mod images;
mod memory;
mod pod_worker;
mod probes;
mod process;
mod service_account;
pub(crate) mod status;
mod stop;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use images::{ImageBinaries, ImagePullRules};

use super::WorkloadConfig;
use super::events::EventRecorder;
use super::logs::PodLogs;
use super::services::ServiceTable;
use addresses::PodAddresses;
use pod_worker::PodWorker;
use stop::{PodStop, StopCause};

/// What a test (or an operator) can ask of the kubelet besides what the API says.
pub enum KubeletCommand {
    /// Evict a pod as node pressure would: its containers are killed and it ends `Failed` with
    /// reason `Evicted` and the kubelet's message. Answers whether the pod was running here.
    Evict {
        namespace: String,
        name: String,
        reply: oneshot::Sender<bool>,
    },
}

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
    addresses: PodAddresses,
    /// What the proxy serves, for rewriting Service names in containers' arguments.
    services: ServiceTable,
}

/// A pod this kubelet has taken on.
struct PodHandle {
    namespace: String,
    name: String,
    pod: Pod,
    stop: Arc<PodStop>,
    /// `None` for a pod that was already finished when first seen.
    task: Option<JoinHandle<()>>,
    dir: PathBuf,
}

/// Where the kubelet keeps pods, what it knows of Services, and its command queue.
pub(super) struct NodeSetup {
    pub pods_root: PathBuf,
    pub services: ServiceTable,
    pub commands: mpsc::Receiver<KubeletCommand>,
}

pub(super) struct Kubelet {
    ctx: Arc<KubeletContext>,
    pods: HashMap<String, PodHandle>,
    commands: mpsc::Receiver<KubeletCommand>,
}

impl Kubelet {
    pub(super) fn new(
        client: Client,
        logs: PodLogs,
        config: WorkloadConfig,
        node: NodeSetup,
        shutdown: CancellationToken,
    ) -> Kubelet {
        let events = EventRecorder::new(client.clone(), "kubelet", Some(config.node_name.clone()));
        Kubelet {
            ctx: Arc::new(KubeletContext {
                client,
                logs,
                events,
                config,
                pods_root: node.pods_root,
                services: node.services,
                shutdown,
                images_present: Mutex::new(HashSet::new()),
                addresses: PodAddresses::default(),
            }),
            pods: HashMap::new(),
            commands: node.commands,
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
                Some(command) = self.commands.recv() => {
                    self.obey(command);
                    continue;
                }
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
            handle
                .stop
                .request(StopCause::Shutdown, self.ctx.config.max_grace_period);
        }
    }

    fn obey(&mut self, command: KubeletCommand) {
        match command {
            KubeletCommand::Evict {
                namespace,
                name,
                reply,
            } => {
                let handle = self
                    .pods
                    .values()
                    .find(|h| h.namespace == namespace && h.name == name && h.task.is_some());
                if let Some(handle) = handle {
                    handle.stop.request(
                        StopCause::Evicted {
                            message: memory_pressure_message(&handle.pod),
                        },
                        self.ctx.config.max_grace_period,
                    );
                }
                let _ = reply.send(handle.is_some());
            }
        }
    }

    /// Creates the Node object pods are bound to, so that `kubectl get nodes` shows it.
    async fn register_node(&self) {
        if !self.ctx.config.register_node {
            return;
        }
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
                let grace = self.deletion_grace(&pod);
                handle.stop.request(StopCause::Deleted, grace);
                // A worker that already ended will not remove the object: the kubelet does.
                if handle.task.as_ref().is_none_or(JoinHandle::is_finished) {
                    let ctx = self.ctx.clone();
                    tokio::spawn(async move { pod_worker::remove_pod_object(&ctx, &pod).await });
                }
            }
            return;
        }
        let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
        let dir = self.ctx.pods_root.join(format!("{namespace}_{name}_{uid}"));
        let stop = Arc::new(PodStop::default());
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let finished = matches!(phase, Some("Succeeded" | "Failed"));
        let task = if finished || pod.metadata.deletion_timestamp.is_some() {
            if pod.metadata.deletion_timestamp.is_some() {
                let ctx = self.ctx.clone();
                let pod = pod.clone();
                tokio::spawn(async move { pod_worker::remove_pod_object(&ctx, &pod).await });
            }
            None
        } else {
            if node.is_empty() {
                self.bind(&namespace, &name).await;
            }
            let token = self.ctx.config.api_server.is_some()
                && service_account::wanted(&self.ctx.client, &pod).await;
            let worker = Arc::new(PodWorker::new(
                self.ctx.clone(),
                pod.clone(),
                dir.clone(),
                stop.clone(),
                self.ctx.addresses.allocate(&uid),
                token,
            ));
            Some(tokio::spawn(worker.run()))
        };
        self.pods.insert(
            uid,
            PodHandle {
                namespace,
                name,
                pod,
                stop,
                task,
                dir,
            },
        );
    }

    /// The deletion's grace period (`deletionGracePeriodSeconds`), capped as every grace period is.
    fn deletion_grace(&self, pod: &Pod) -> Duration {
        let seconds = pod
            .metadata
            .deletion_grace_period_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0);
        Duration::from_secs(seconds).min(self.ctx.config.max_grace_period)
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
        handle.stop.request(StopCause::Deleted, Duration::ZERO);
        self.ctx.addresses.release(uid);
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

/// The eviction manager's message for a pod evicted under memory pressure (`nodeLowMessageFmt`, then
/// one sentence per container).
fn memory_pressure_message(pod: &Pod) -> String {
    let mut message =
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 0Ki. "
            .to_owned();
    for container in pod.spec.iter().flat_map(|s| &s.containers) {
        let request = container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("memory"))
            .map_or_else(|| "0".to_owned(), |q| q.0.clone());
        message.push_str(&format!(
            "Container {} was using 0Ki, request is {request}, has larger consumption of memory. ",
            container.name
        ));
    }
    message
}
