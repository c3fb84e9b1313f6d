//! The endpoints controller: a kube-runtime `Controller` on Services, woken by changes of the pods
//! they select. For each Service with a selector it writes the `Endpoints` (ready addresses and
//! `notReadyAddresses`) and the `EndpointSlice` (`kubernetes.io/service-name` label, endpoint
//! conditions `ready` / `serving` / `terminating`) with server-side apply, and hands the ready
//! endpoints to the proxy.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::ServiceTable;
use super::proxy::{self, PortSpec};

const MANAGER: &str = "endpointslice-controller.k8s.io";
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error("service has no namespace or uid")]
    Incomplete,
    #[error("listing the service's pods: {0}")]
    ListPods(#[source] kube::Error),
    #[error("writing endpoints: {0}")]
    Write(#[source] kube::Error),
}

struct Context {
    client: Client,
    table: ServiceTable,
}

/// One selected pod, as an endpoint.
struct PodEndpoint {
    ip: Ipv4Addr,
    name: String,
    uid: String,
    node: Option<String>,
    ready: bool,
    terminating: bool,
    /// Each Service port's target port on this pod (`None`: a named port the pod lacks).
    ports: Vec<Option<u16>>,
}

pub(super) async fn run(client: Client, table: ServiceTable, shutdown: CancellationToken) {
    let context = Arc::new(Context {
        client: client.clone(),
        table: table.clone(),
    });
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    let pods_to_services = move |pod: Pod| {
        let namespace = pod.namespace().unwrap_or_default();
        services
            .state()
            .into_iter()
            .filter(|svc| svc.namespace().as_deref() == Some(namespace.as_str()))
            .filter(|svc| selects(svc, &pod))
            .map(|svc| ObjectRef::from_obj(svc.as_ref()))
            .collect::<Vec<_>>()
    };
    let reconciling = controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            pods_to_services,
        )
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "endpoints reconcile");
            }
        });
    tokio::join!(reconciling, forget_deleted(client, table, shutdown));
}

/// A deleted Service is not reconciled again: its proxy entry goes here (its Endpoints and slice
/// go with it through their owner references).
async fn forget_deleted(client: Client, table: ServiceTable, shutdown: CancellationToken) {
    let mut events =
        watcher::watcher(Api::<Service>::all(client), watcher::Config::default()).boxed();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.next() => event,
        };
        match event {
            Some(Ok(Event::Delete(svc))) => {
                table.remove(&svc.namespace().unwrap_or_default(), &svc.name_any());
            }
            Some(_) => {}
            None => return,
        }
    }
}

fn selects(service: &Service, pod: &Pod) -> bool {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.labels().get(k) == Some(v))
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, EndpointsError> {
    let (Some(namespace), Some(uid)) = (service.namespace(), service.uid()) else {
        return Err(EndpointsError::Incomplete);
    };
    let name = service.name_any();
    let spec = service.spec.clone().unwrap_or_default();
    let ports = spec.ports.clone().unwrap_or_default();
    let entry = serve(
        &ctx.table,
        &namespace,
        &name,
        spec.cluster_ip.as_deref(),
        &ports,
    );
    let Some(selector) = spec.selector.filter(|s| !s.is_empty()) else {
        return Ok(Action::await_change()); // endpoints are someone else's to write
    };
    let query: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), &namespace)
        .list(&ListParams::default().labels(&query.join(",")))
        .await
        .map_err(EndpointsError::ListPods)?
        .items;
    let endpoints: Vec<PodEndpoint> = pods.iter().filter_map(|p| endpoint(p, &ports)).collect();
    if let Some(entry) = entry {
        let backends = (0..ports.len())
            .map(|i| {
                endpoints
                    .iter()
                    .filter(|e| e.ready && !e.terminating)
                    .filter_map(|e| e.ports[i].map(|port| SocketAddr::from((e.ip, port))))
                    .collect()
            })
            .collect();
        entry.set_backends(backends);
    }
    let owner = json!([{
        "apiVersion": "v1", "kind": "Service", "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    }]);
    write(
        &ctx.client,
        &namespace,
        &endpoints_object(&name, &namespace, &owner, &ports, &endpoints),
    )
    .await?;
    write(
        &ctx.client,
        &namespace,
        &slice_object(&name, &namespace, &uid, &owner, &ports, &endpoints),
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(_svc: Arc<Service>, error: &EndpointsError, _ctx: Arc<Context>) -> Action {
    tracing::debug!(%error, "endpoints reconcile failed; retrying");
    Action::requeue(Duration::from_millis(500))
}

/// Makes the proxy serve the Service as it is now (re-opening its listeners when its address or
/// ports changed); `None` for a headless Service.
fn serve(
    table: &ServiceTable,
    namespace: &str,
    name: &str,
    cluster_ip: Option<&str>,
    ports: &[ServicePort],
) -> Option<Arc<super::ServiceEntry>> {
    let Some(ip) = cluster_ip.and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
        table.remove(namespace, name);
        return None;
    };
    let wanted: Vec<PortSpec> = ports
        .iter()
        .filter_map(|p| {
            Some((
                p.name.clone(),
                u16::try_from(p.port).ok()?,
                p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
            ))
        })
        .collect();
    if let Some(entry) = table.get(namespace, name) {
        let served: Vec<PortSpec> = entry
            .ports
            .iter()
            .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
            .collect();
        if entry.cluster_ip == ip && served == wanted {
            return Some(entry);
        }
    }
    let entry = proxy::open(ip, &wanted);
    table.insert(namespace, name, entry.clone());
    Some(entry)
}

fn endpoint(pod: &Pod, ports: &[ServicePort]) -> Option<PodEndpoint> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip: Ipv4Addr = status.pod_ip.as_deref()?.parse().ok()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let container_ports: Vec<_> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .collect();
    let resolved = ports
        .iter()
        .map(|p| match &p.target_port {
            None => u16::try_from(p.port).ok(),
            Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
            Some(IntOrString::String(name)) => container_ports
                .iter()
                .find(|c| c.name.as_deref() == Some(name.as_str()))
                .and_then(|c| u16::try_from(c.container_port).ok()),
        })
        .collect();
    Some(PodEndpoint {
        ip,
        name: pod.name_any(),
        uid: pod.uid().unwrap_or_default(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        ports: resolved,
    })
}

fn target_ref(e: &PodEndpoint, namespace: &str) -> Value {
    json!({"kind": "Pod", "namespace": namespace, "name": e.name, "uid": e.uid})
}

/// Ready and not-ready addresses, by the ports they resolve the Service's ports to.
type Subsets = BTreeMap<Vec<Option<u16>>, (Vec<Value>, Vec<Value>)>;

/// The v1 Endpoints: one subset per distinct set of resolved ports.
fn endpoints_object(
    name: &str,
    namespace: &str,
    owner: &Value,
    ports: &[ServicePort],
    endpoints: &[PodEndpoint],
) -> Value {
    let mut subsets: Subsets = BTreeMap::new();
    for e in endpoints {
        let address = json!({"ip": e.ip.to_string(), "nodeName": e.node, "targetRef": target_ref(e, namespace)});
        let (ready, not_ready) = subsets.entry(e.ports.clone()).or_default();
        if e.ready && !e.terminating {
            ready.push(address);
        } else {
            not_ready.push(address);
        }
    }
    let subsets: Vec<Value> = subsets
        .into_iter()
        .map(|(resolved, (ready, not_ready))| {
            let ports: Vec<Value> = ports
                .iter()
                .zip(resolved)
                .filter_map(|(p, port)| {
                    Some(json!({"name": p.name, "port": port?, "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into())}))
                })
                .collect();
            let mut subset = json!({"ports": ports});
            if !ready.is_empty() {
                subset["addresses"] = Value::Array(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = Value::Array(not_ready);
            }
            subset
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace, "labels": {"endpoints.kubernetes.io/managed-by": "endpoint-controller"}, "ownerReferences": owner},
        "subsets": subsets,
    })
}

/// The EndpointSlice, named after the Service (and its uid, so a new Service of the same name gets
/// a new slice).
fn slice_object(
    name: &str,
    namespace: &str,
    uid: &str,
    owner: &Value,
    ports: &[ServicePort],
    endpoints: &[PodEndpoint],
) -> Value {
    let suffix: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(5)
        .collect();
    let first_resolved = endpoints.first().map(|e| e.ports.clone());
    let slice_ports: Vec<Value> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let port = first_resolved.as_ref().and_then(|r| r.get(i).copied().flatten());
            json!({"name": p.name.clone().unwrap_or_default(), "port": port, "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into())})
        })
        .collect();
    let items: Vec<Value> = endpoints
        .iter()
        .map(|e| {
            json!({
                "addresses": [e.ip.to_string()],
                "conditions": {"ready": e.ready && !e.terminating, "serving": e.ready, "terminating": e.terminating},
                "nodeName": e.node,
                "targetRef": target_ref(e, namespace),
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{name}-{suffix}"),
            "namespace": namespace,
            "labels": {SERVICE_NAME_LABEL: name, "endpointslice.kubernetes.io/managed-by": MANAGER},
            "ownerReferences": owner,
        },
        "addressType": "IPv4",
        "endpoints": items,
        "ports": slice_ports,
    })
}

/// Server-side apply of one object (Endpoints or EndpointSlice) under the controller's name.
async fn write(client: &Client, namespace: &str, object: &Value) -> Result<(), EndpointsError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Endpoints" => "endpoints",
        _ => "endpointslices",
    };
    let resource = kube::api::ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    };
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(EndpointsError::Write)?;
    Ok(())
}
