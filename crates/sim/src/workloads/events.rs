//! Kubernetes Events (core/v1, what `kubectl describe` and `kubectl events` read) for what the Job
//! controller and the kubelet do. Publishing is best effort: a failure is logged, never fatal.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Publishes Events as one component (`job-controller`, `kubelet`).
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    component: &'static str,
    host: Option<String>,
}

impl EventRecorder {
    pub fn new(client: Client, component: &'static str, host: Option<String>) -> EventRecorder {
        EventRecorder {
            client,
            component,
            host,
        }
    }

    /// Records an Event about `object` (which must be namespaced).
    pub async fn publish<K>(&self, object: &K, type_: EventType, reason: &str, note: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        self.publish_about(object.object_ref(&()), type_, reason, note)
            .await;
    }

    pub async fn publish_about(
        &self,
        involved: ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let Some(namespace) = involved.namespace.clone() else {
            return;
        };
        let now = Timestamp::now();
        let name = format!(
            "{}.{:x}",
            involved.name.as_deref().unwrap_or("object"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: involved,
            reason: Some(reason.to_owned()),
            message: Some(note.to_owned()),
            type_: Some(
                match type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            source: Some(EventSource {
                component: Some(self.component.to_owned()),
                host: self.host.clone(),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            reporting_component: Some(self.component.to_owned()),
            reporting_instance: Some(
                self.host
                    .clone()
                    .unwrap_or_else(|| self.component.to_owned()),
            ),
            action: Some(reason.to_owned()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(error = %e, reason, name = event.name_any(), "recording an event failed");
        }
    }
}
