//! What workload controllers share about the objects they own: a pod made from a pod template (the
//! template's metadata and spec, the controller's labels, `generateName: <owner>-` and a controlling
//! owner reference, so the garbage collector removes the pod with its owner), and which of the
//! objects a selector finds the controller owns.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::ResourceExt;

/// The pod for `template`, owned by `owner` (whose name prefixes the pod's), in `namespace`, with
/// `labels` over the template's own.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: Option<String>,
    owner: OwnerReference,
    labels: BTreeMap<String, String>,
) -> Pod {
    let template_meta = template.metadata.clone().unwrap_or_default();
    let mut all_labels = template_meta.labels.unwrap_or_default();
    all_labels.extend(labels);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.name)),
            namespace,
            labels: Some(all_labels),
            annotations: template_meta.annotations,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// A controlling owner reference to `owner`.
pub fn controller_reference(
    api_version: &str,
    kind: &str,
    name: String,
    uid: String,
) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name,
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A label selector as a list query's `labelSelector` (`app=web,tier in (a,b)`).
pub fn selector_query(selector: &LabelSelector) -> String {
    crate::apiserver::selector_query(&serde_json::to_value(selector).unwrap_or_default())
}

/// Whether `object` is controlled by the owner with `uid`.
pub fn is_controlled_by(object: &impl ResourceExt, uid: &str) -> bool {
    object
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}
