//! What a write does to an object, whoever makes it (an HTTP client, the garbage collector, a preload):
//! metadata stamping, defaults, generation, status-subresource rules, finalizers and deletion.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::apply::{self, Scope};
use super::errors::ApiError;
use super::events;
use super::patch::{self, PatchKind};
use super::resources::ResourceType;
use super::server::ServerState;
use super::store::WriteError;

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How a DELETE treats the object's dependents.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// Who makes a write, and whether it is kept: a dry run (`dryRun=All`) takes every step of the
/// write, validation and defaulting included, except storing the result.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    /// The field manager the write is recorded under.
    pub manager: &'a str,
    pub dry_run: bool,
}

impl<'a> Writer<'a> {
    /// A write that is kept.
    pub fn new(manager: &'a str) -> Self {
        Writer {
            manager,
            dry_run: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub dry_run: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `gracePeriodSeconds`: for pods, how long the kubelet gives the containers.
    pub grace_period_seconds: Option<i64>,
}

impl DeleteOptions {
    pub fn from_body(body: &Value) -> Result<Self, ApiError> {
        let propagation = match body["propagationPolicy"].as_str() {
            None => match body["orphanDependents"].as_bool() {
                Some(true) => Some(Propagation::Orphan),
                Some(false) => Some(Propagation::Background),
                None => None,
            },
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some("Orphan") => Some(Propagation::Orphan),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        };
        Ok(DeleteOptions {
            propagation,
            dry_run: dry_run(&body["dryRun"], "DeleteOptions")?,
            precondition_uid: body["preconditions"]["uid"].as_str().map(str::to_owned),
            precondition_rv: body["preconditions"]["resourceVersion"]
                .as_str()
                .map(str::to_owned),
            grace_period_seconds: body["gracePeriodSeconds"].as_i64(),
        })
    }
}

/// `dryRun`, from a query (`?dryRun=All`) or a DeleteOptions body (`"dryRun": ["All"]`): "All" is
/// the only value there is, and anything else is refused before the write, as the real server does
/// (422 naming the options kind).
pub fn dry_run(value: &Value, options_kind: &str) -> Result<bool, ApiError> {
    let values: Vec<&str> = match value {
        Value::Null => return Ok(false),
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !values.is_empty() && values.iter().all(|v| *v == "All") {
        return Ok(true);
    }
    if values.is_empty() && value.as_array().is_some_and(Vec::is_empty) {
        return Ok(false);
    }
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    Err(ApiError::invalid(
        &format!("{options_kind}.meta.k8s.io"),
        "",
        format!(
            "dryRun: Unsupported value: []string{{{}}}: supported values: \"All\"",
            quoted.join(", ")
        ),
    ))
}

fn store_error<'a>(
    rt: &'a ResourceType,
    name: &'a str,
) -> impl Fn(WriteError<ApiError>) -> ApiError + 'a {
    move |e| match e {
        WriteError::NotFound => ApiError::not_found(&rt.group, &rt.plural, name),
        WriteError::AlreadyExists => ApiError::already_exists(&rt.group, &rt.plural, name),
        WriteError::Rejected(e) => e,
    }
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// Creates an object. `namespace` is the namespace of the request path.
pub fn create(
    state: &ServerState,
    rt: &ResourceType,
    namespace: Option<&str>,
    mut object: Value,
    writer: Writer,
) -> Result<Arc<Value>, ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not a JSON object",
        ));
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["apiVersion"] = Value::String(rt.api_version());
    object["kind"] = Value::String(rt.kind.clone());
    let meta = &mut object["metadata"];
    if rt.namespaced {
        let path_ns = namespace.unwrap_or("default");
        match meta["namespace"].as_str() {
            Some(ns) if !ns.is_empty() && ns != path_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => meta["namespace"] = Value::String(path_ns.to_owned()),
        }
    } else if let Some(map) = meta.as_object_mut() {
        map.remove("namespace");
    }
    if meta["name"].as_str().is_none_or(str::is_empty) {
        let Some(prefix) = meta["generateName"].as_str() else {
            return Err(ApiError::invalid(
                &rt.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        };
        meta["name"] = Value::String(format!("{prefix}{}", random_suffix()));
    }
    let name = name_of(&object).to_owned();
    validate_name(rt, &name)?;
    if rt.namespaced {
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match state.store.get("/namespaces", "", &ns) {
            None => return Err(ApiError::not_found("", "namespaces", &ns)),
            Some(n) if n["metadata"]["deletionTimestamp"].is_string() => {
                return Err(ApiError::forbidden(format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.plural
                )));
            }
            Some(_) => {}
        }
    }
    let now = now();
    let meta = object["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::internal("metadata"))?;
    for volatile in [
        "uid",
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
        "generation",
    ] {
        meta.remove(volatile);
    }
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert("creationTimestamp".into(), Value::String(now.clone()));
    if rt.has_generation {
        meta.insert("generation".into(), json!(1));
    }
    if rt.has_status
        && rt.group != "apiextensions.k8s.io"
        && rt.plural != "namespaces"
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
    }
    let uid = object["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    drop_empty_metadata(&mut object);
    defaults(rt, &mut object, &uid);
    if let Some(schema) = &rt.schema {
        schema.admit(&mut object, &rt.group, &rt.kind)?;
    }
    if rt.plural == "customresourcedefinitions" {
        establish_crd(state, &mut object, writer.dry_run)?;
    }
    let scope = if rt.has_status {
        Scope::MainWithoutStatus
    } else {
        Scope::Main
    };
    apply::record_update(&json!({}), &mut object, writer.manager, scope, &now);
    if let Some(entries) = object["metadata"]["managedFields"].as_array_mut() {
        for entry in entries {
            entry["operation"] = json!("Update");
        }
    }
    if writer.dry_run {
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        if state
            .store
            .get(&rt.storage_key(), namespace, &name)
            .is_some()
        {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        return Ok(Arc::new(object));
    }
    let created = state
        .store
        .create(&rt.storage_key(), object)
        .map_err(store_error(rt, &name))?;
    events::mirror_to_core(state, rt, &created);
    Ok(created)
}

/// Writes from the API server itself (preloads, controllers inside it).
pub fn create_internal(state: &ServerState, object: Value) -> Result<Arc<Value>, ApiError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let rt = state
        .resources
        .find_kind(api_version, kind)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "no kind \"{kind}\" is registered for version \"{api_version}\""
            ))
        })?;
    let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
    create(
        state,
        &rt,
        namespace.as_deref(),
        object,
        Writer::new("testcluster-sim"),
    )
}

/// The kinds of change a write makes.
pub enum Write {
    /// PUT: the whole object.
    Replace(Value),
    /// PATCH with a JSON, merge or strategic merge patch.
    Patch(PatchKind, Value),
    /// PATCH with an apply configuration.
    Apply { config: Value, force: bool },
}

/// Updates an object (or, for apply, creates it when missing). Returns the object and whether it was
/// created.
pub fn update(
    state: &ServerState,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    write: Write,
    status: bool,
    writer: Writer,
) -> Result<(Arc<Value>, bool), ApiError> {
    let manager = writer.manager;
    let scope = match (status, rt.has_status) {
        (true, _) => Scope::Status,
        (false, true) => Scope::MainWithoutStatus,
        (false, false) => Scope::Main,
    };
    let table = rt.storage_key();
    if let Write::Apply { config, .. } = &write
        && state.store.get(&table, namespace, name).is_none()
        && !status
    {
        validate_apply_identity(rt, config, name)?;
        let mut skeleton = json!({"metadata": {"name": name}});
        if rt.namespaced {
            skeleton["metadata"]["namespace"] = json!(namespace);
        }
        let applied = apply::apply(&skeleton, config, manager, true, scope, &now())?;
        let managed = applied["metadata"]["managedFields"].clone();
        let mut created = create(state, rt, Some(namespace), applied, writer)?;
        // Creation recorded an Update; an apply owns its fields as Apply.
        if !managed.is_null() && writer.dry_run {
            let mut with_managed = (*created).clone();
            with_managed["metadata"]["managedFields"] = managed;
            created = Arc::new(with_managed);
        } else if !managed.is_null() {
            created = state
                .store
                .update(&table, namespace, name, |current| {
                    let mut with_managed = current.clone();
                    with_managed["metadata"]["managedFields"] = managed;
                    Ok::<_, ApiError>(Some(with_managed))
                })
                .map_err(store_error(rt, name))?;
        }
        return Ok((created, true));
    }
    let mut finalize = false;
    let mut change = |current: &Value| {
        let now = now();
        let mut next = match &write {
            Write::Replace(body) => {
                check_sent_resource_version(rt, name, body, current)?;
                body.clone()
            }
            Write::Patch(kind, patch) => {
                let patched = patch::apply_patch(*kind, current, patch)?;
                // A resourceVersion the patch sets is a precondition, as for a replace.
                check_sent_resource_version(rt, name, &patched, current)?;
                patched
            }
            Write::Apply { config, force } => {
                validate_apply_identity(rt, config, name)?;
                check_sent_resource_version(rt, name, config, current)?;
                apply::apply(current, config, manager, *force, scope, &now)?
            }
        };
        if !next.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request is not a JSON object",
            ));
        }
        if next["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(&next)
            )));
        }
        keep_server_owned(rt, current, &mut next, scope);
        check_no_new_finalizers(rt, name, current, &next)?;
        drop_empty_metadata(&mut next);
        if let Some(schema) = &rt.schema {
            schema.admit(&mut next, &rt.group, &rt.kind)?;
        }
        if rt.plural == "secrets" {
            fold_string_data(&mut next);
        }
        if !matches!(write, Write::Apply { .. }) {
            apply::record_update(current, &mut next, manager, scope, &now);
        }
        if rt.has_generation && spec_changed(current, &next) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            next["metadata"]["generation"] = json!(generation + 1);
        }
        if rt.plural == "customresourcedefinitions" {
            establish_crd(state, &mut next, writer.dry_run)?;
        }
        if next == *current {
            return Ok(None);
        }
        finalize = is_finalizable(&next);
        Ok(Some(next))
    };
    if writer.dry_run {
        let current = state
            .store
            .get(&table, namespace, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let next = change(&current)?;
        return Ok((next.map_or(current, Arc::new), false));
    }
    let updated = state
        .store
        .update(&table, namespace, name, &mut change)
        .map_err(store_error(rt, name))?;
    events::mirror_to_core(state, rt, &updated);
    if finalize {
        remove(state, rt, namespace, name)?;
    }
    Ok((updated, false))
}

/// As the real API server: a resourceVersion the client sends (in a replaced body, a patch or an
/// apply configuration) is a precondition, so a writer acting on a stale read gets 409 instead of
/// winning. Sending none makes the write unconditional.
fn check_sent_resource_version(
    rt: &ResourceType,
    name: &str,
    sent: &Value,
    current: &Value,
) -> Result<(), ApiError> {
    let sent_rv = sent["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    if !sent_rv.is_empty() && Some(sent_rv) != current["metadata"]["resourceVersion"].as_str() {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    Ok(())
}

fn validate_apply_identity(rt: &ResourceType, config: &Value, name: &str) -> Result<(), ApiError> {
    if config["apiVersion"].as_str().is_none() || config["kind"].as_str().is_none() {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an apply configuration",
        ));
    }
    if config["kind"].as_str() != Some(rt.kind.as_str()) {
        return Err(ApiError::bad_request(format!(
            "the kind of the apply configuration ({}) does not match the resource ({})",
            config["kind"].as_str().unwrap_or_default(),
            rt.kind
        )));
    }
    match config["metadata"]["name"].as_str() {
        Some(n) if n == name => Ok(()),
        _ => Err(ApiError::bad_request(format!(
            "metadata.name must be set to \"{name}\" in an apply configuration"
        ))),
    }
}

/// Keeps what a client may not change: identity, and the part of the object the write's scope
/// excludes (status on the main resource, everything else on the status subresource).
fn keep_server_owned(rt: &ResourceType, current: &Value, next: &mut Value, scope: Scope) {
    next["apiVersion"] = Value::String(rt.api_version());
    next["kind"] = Value::String(rt.kind.clone());
    match scope {
        Scope::Status => {
            let status = next.get("status").cloned();
            let managed = next["metadata"]["managedFields"].clone();
            *next = current.clone();
            set_or_remove(next, "status", status);
            next["metadata"]["managedFields"] = managed;
        }
        Scope::MainWithoutStatus => set_or_remove(next, "status", current.get("status").cloned()),
        Scope::Main => {}
    }
    if !next["metadata"].is_object() {
        next["metadata"] = json!({});
    }
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        set_or_remove(
            &mut next["metadata"],
            key,
            current["metadata"].get(key).cloned(),
        );
    }
}

/// A finalizer may not be added to an object that is being deleted (422, as the real server).
fn check_no_new_finalizers(
    rt: &ResourceType,
    name: &str,
    current: &Value,
    next: &Value,
) -> Result<(), ApiError> {
    if !current["metadata"]["deletionTimestamp"].is_string() {
        return Ok(());
    }
    let before = string_list(&current["metadata"]["finalizers"]);
    let added: Vec<String> = string_list(&next["metadata"]["finalizers"])
        .into_iter()
        .filter(|f| !before.contains(f))
        .map(|f| format!("{f:?}"))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &rt.kind,
        name,
        format!(
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
            added.join(", ")
        ),
    ))
}

/// Sets `object[key]` to `value`, or removes `key` when there is no value: copies an optional field
/// from another object, its absence included.
fn set_or_remove(object: &mut Value, key: &str, value: Option<Value>) {
    match value {
        Some(value) => object[key] = value,
        None => {
            if let Some(map) = object.as_object_mut() {
                map.remove(key);
            }
        }
    }
}

/// Kubernetes omits empty metadata lists and maps when it serialises an object (`omitempty`), so
/// `finalizers: []` reads back as no `finalizers` at all; clients rely on it (kube-rs' finalizer
/// helper tests `/metadata/finalizers` against `null`).
fn drop_empty_metadata(object: &mut Value) {
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.retain(|key, value| {
            !(matches!(
                key.as_str(),
                "finalizers" | "ownerReferences" | "labels" | "annotations" | "managedFields"
            ) && (value.as_array().is_some_and(Vec::is_empty)
                || value.as_object().is_some_and(Map::is_empty)
                || value.is_null()))
        });
    }
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Generation counts changes to anything but metadata and status.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut map = v.as_object().cloned().unwrap_or_default();
        map.remove("metadata");
        map.remove("status");
        map
    };
    strip(old) != strip(new)
}

fn is_finalizable(object: &Value) -> bool {
    // A namespace also waits for its `spec.finalizers` (the namespace controller's).
    object["metadata"]["deletionTimestamp"].is_string()
        && string_list(&object["metadata"]["finalizers"]).is_empty()
        && (object["kind"] != "Namespace" || string_list(&object["spec"]["finalizers"]).is_empty())
}

/// Deletes an object: at once, or by marking it when finalizers (or a propagation policy) hold it.
pub fn delete(
    state: &ServerState,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    options: &DeleteOptions,
) -> Result<Arc<Value>, ApiError> {
    let table = rt.storage_key();
    let current = state
        .store
        .get(&table, namespace, name)
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
    check_preconditions(rt, name, &current, options)?;
    if let Some(grace) = pod_grace_period(rt, &current, options) {
        return mark_pod_terminating(state, rt, namespace, name, grace);
    }
    let propagation = options.propagation.unwrap_or(match rt.plural.as_str() {
        // batch/v1 Jobs orphan their pods unless told otherwise, for compatibility.
        "jobs" => Propagation::Orphan,
        _ => Propagation::Background,
    });
    let policy_finalizer = match propagation {
        Propagation::Foreground => Some("foregroundDeletion"),
        Propagation::Orphan => Some("orphan"),
        Propagation::Background => None,
    };
    let mut finalizers = string_list(&current["metadata"]["finalizers"]);
    let is_namespace = rt.plural == "namespaces" && rt.group.is_empty();
    if finalizers.is_empty() && policy_finalizer.is_none() && !is_namespace {
        return if options.dry_run {
            Ok(current)
        } else {
            remove(state, rt, namespace, name)
        };
    }
    if let Some(f) = policy_finalizer
        && !current["metadata"]["deletionTimestamp"].is_string()
        && !finalizers.iter().any(|x| x == f)
    {
        finalizers.push(f.to_owned());
    }
    // Marked for deletion: finalizers (or the namespace controller) hold it until they are done.
    let mark = |current: &Value| {
        if current["metadata"]["deletionTimestamp"].is_string() {
            return Ok::<_, ApiError>(None);
        }
        let mut next = current.clone();
        next["metadata"]["deletionTimestamp"] = Value::String(now());
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        next["metadata"]["finalizers"] = json!(finalizers);
        drop_empty_metadata(&mut next);
        if is_namespace {
            next["status"]["phase"] = json!("Terminating");
        }
        Ok(Some(next))
    };
    if options.dry_run {
        return Ok(mark(&current)?.map_or(current, Arc::new));
    }
    let updated = state
        .store
        .update(&table, namespace, name, mark)
        .map_err(store_error(rt, name))?;
    state.gc_wake.notify_one();
    Ok(updated)
}

/// A pod's graceful deletion (the pod strategy's `CheckGracefulDelete`): the grace period its
/// kubelet gets before the object goes, `None` when it goes at once. Unscheduled and finished pods
/// have none; a second delete may only shorten the period.
fn pod_grace_period(rt: &ResourceType, pod: &Value, options: &DeleteOptions) -> Option<i64> {
    if !(rt.group.is_empty() && rt.plural == "pods") {
        return None;
    }
    let grace = options
        .grace_period_seconds
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
        .max(0);
    let unscheduled = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if grace == 0 || unscheduled || finished {
        return None;
    }
    match pod["metadata"]["deletionGracePeriodSeconds"].as_i64() {
        Some(current) if pod["metadata"]["deletionTimestamp"].is_string() => {
            Some(grace.min(current))
        }
        _ => Some(grace),
    }
}

/// Marks a pod Terminating: `deletionTimestamp` (when the grace period ends) and
/// `deletionGracePeriodSeconds`. Its kubelet stops the containers and then deletes it with grace 0.
fn mark_pod_terminating(
    state: &ServerState,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    grace: i64,
) -> Result<Arc<Value>, ApiError> {
    let updated = state
        .store
        .update(&rt.storage_key(), namespace, name, |current| {
            if current["metadata"]["deletionGracePeriodSeconds"].as_i64() == Some(grace) {
                return Ok::<_, ApiError>(None);
            }
            let mut next = current.clone();
            let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
            next["metadata"]["deletionTimestamp"] =
                Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            next["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            Ok(Some(next))
        })
        .map_err(store_error(rt, name))?;
    Ok(updated)
}

fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    current: &Value,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    let meta = &current["metadata"];
    // Checked in this order, as the real API server does: the first mismatch is the error.
    let preconditions = [
        ("UID", "uid", &options.precondition_uid),
        (
            "ResourceVersion",
            "resourceVersion",
            &options.precondition_rv,
        ),
    ];
    for (label, field, expected) in preconditions {
        if let Some(expected) = expected
            && meta[field].as_str() != Some(expected)
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: {label} in precondition: {expected}, {label} in object meta: {}",
                    meta[field].as_str().unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// Removes an object from storage (its finalizers are done, or it never had any).
pub fn remove(
    state: &ServerState,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
) -> Result<Arc<Value>, ApiError> {
    let removed = state
        .store
        .remove::<ApiError>(&rt.storage_key(), namespace, name, |_| Ok(()))
        .map_err(store_error(rt, name))?;
    if rt.plural == "customresourcedefinitions"
        && let Some(key) = crd_storage_key(&removed)
    {
        state.resources.unregister(&key);
        state.store.drop_table(&key);
    }
    state.gc_wake.notify_one();
    Ok(removed)
}

fn crd_storage_key(crd: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        crd["spec"]["group"].as_str()?,
        crd["spec"]["names"]["plural"].as_str()?
    ))
}

/// Serves a CRD's resource and reports it established, as the apiextensions controller does.
fn establish_crd(state: &ServerState, crd: &mut Value, dry_run: bool) -> Result<(), ApiError> {
    let name = name_of(crd).to_owned();
    let expected = crd_storage_key(crd)
        .map(|k| {
            let (group, plural) = k.split_once('/').unwrap_or_default();
            format!("{plural}.{group}")
        })
        .unwrap_or_default();
    if name != expected {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            &name,
            format!(
                "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
            ),
        ));
    }
    if !dry_run {
        state
            .resources
            .register_crd(crd)
            .map_err(|message| ApiError::invalid("CustomResourceDefinition", &name, message))?;
    }
    let now = now();
    crd["status"] = json!({
        "acceptedNames": crd["spec"]["names"].clone(),
        "storedVersions": crd["spec"]["versions"].as_array().map(|vs| vs.iter().filter(|v| v["storage"].as_bool() == Some(true)).map(|v| v["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
    Ok(())
}

/// Defaults the real API server applies to built-in kinds, where clients rely on them.
fn defaults(rt: &ResourceType, object: &mut Value, uid: &str) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            object["spec"]["finalizers"] = json!(["kubernetes"]);
            object["status"] = json!({"phase": "Active"});
            let name = name_of(object).to_owned();
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        ("", "secrets") => {
            fold_string_data(object);
            if object["type"].is_null() {
                object["type"] = json!("Opaque");
            }
        }
        ("", "pods") => {
            let spec = &mut object["spec"];
            if spec["restartPolicy"].is_null() {
                spec["restartPolicy"] = json!("Always");
            }
            if spec["terminationGracePeriodSeconds"].is_null() {
                spec["terminationGracePeriodSeconds"] = json!(30);
            }
            object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("", "services") => service_defaults(&mut object["spec"]),
        ("batch", "jobs") => {
            let name = name_of(object).to_owned();
            let spec = &mut object["spec"];
            for (field, value) in [("backoffLimit", 6), ("completions", 1), ("parallelism", 1)] {
                if spec[field].is_null() {
                    spec[field] = json!(value);
                }
            }
            if spec["selector"].is_null() {
                spec["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                let labels = &mut spec["template"]["metadata"]["labels"];
                for (key, value) in [
                    ("batch.kubernetes.io/controller-uid", uid),
                    ("controller-uid", uid),
                    ("batch.kubernetes.io/job-name", name.as_str()),
                    ("job-name", name.as_str()),
                ] {
                    labels[key] = json!(value);
                }
            }
            if spec["template"]["spec"]["restartPolicy"].is_null() {
                spec["template"]["spec"]["restartPolicy"] = json!("Never");
            }
        }
        _ => {}
    }
}

/// A Service's defaults: type ClusterIP, TCP ports whose `targetPort` is their `port`, and a
/// cluster IP. Cluster IPs are loopback addresses (127.128.0.0 - 127.254.255.255, drawn at random so
/// that simulators side by side rarely share one), where the simulated kube-proxy listens.
fn service_defaults(spec: &mut Value) {
    if spec["type"].is_null() {
        spec["type"] = json!("ClusterIP");
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for port in ports {
            if port["protocol"].is_null() {
                port["protocol"] = json!("TCP");
            }
            if port["targetPort"].is_null() {
                port["targetPort"] = port["port"].clone();
            }
        }
    }
    let external_name = spec["type"] == "ExternalName";
    if !external_name && spec["clusterIP"].as_str().is_none_or(str::is_empty) {
        let ip = std::net::Ipv4Addr::new(
            127,
            rand::random_range(128..=254),
            rand::random(),
            rand::random_range(1..=254),
        );
        spec["clusterIP"] = json!(ip.to_string());
    }
    if let Some(ip) = spec["clusterIP"].as_str().map(str::to_owned) {
        spec["clusterIPs"] = json!([ip]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
}

/// `stringData` is write-only: it is merged into `data`, base64-encoded.
fn fold_string_data(secret: &mut Value) {
    let Some(string_data) = secret.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    if let Some(entries) = string_data.as_object() {
        for (key, value) in entries {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(value.as_str().unwrap_or_default());
            secret["data"][key] = Value::String(encoded);
        }
    }
}

/// Object names: DNS-1123 labels for namespaces, subdomains for everything else.
fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let label = rt.plural == "namespaces";
    let max = if label { 63 } else { 253 };
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label && c == '.'));
    let ends_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    // Config Connector and RBAC objects allow ':' and upper case in some names; be lenient there.
    let lenient = rt.group.starts_with("rbac.") || rt.group.ends_with("cnrm.cloud.google.com");
    if name.len() > max || !(lenient || (chars_ok && ends_ok)) {
        let what = if label {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        return Err(ApiError::invalid(
            &rt.kind,
            name,
            format!("metadata.name: Invalid value: \"{name}\": {what}"),
        ));
    }
    Ok(())
}

/// Five characters from the alphabet Kubernetes uses for generated names (no vowels, no look-alikes).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}
