//! Regenerates `data/k8s-protobuf.fields`, the field table the API server decodes Kubernetes protobuf
//! request bodies with (`src/apiserver/protobuf.rs`).
//!
//! Field numbers and types come from `k8s-pb` (prost types generated from Kubernetes'
//! `generated.proto` files); the JSON names come from `k8s-openapi` (whose serde code spells every
//! field as the API does: `podIP`, not `podIp`). Run with both crates' sources unpacked (`cargo info
//! k8s-pb@0.9.0` fetches k8s-pb into the registry; k8s-openapi is a workspace dependency):
//!
//! ```text
//! K8S_PB_SRC=~/.cargo/registry/src/index.crates.io-*/k8s-pb-0.9.0/src \
//! K8S_OPENAPI_SRC=~/.cargo/registry/src/index.crates.io-*/k8s-openapi-0.29.0/src/v1_35 \
//!   cargo test -p testcluster-sim --test protobuf_table -- --ignored
//! ```
//!
//! One line per message: its name (the k8s-pb module path, dotted), then `tag:jsonName:type` per
//! field, where type is a scalar (`string`, `int32`, `int64`, `bool`, `double`, `bytes`) or a message
//! name, prefixed `*` when repeated, `%` for a map from string to it, and `^` (with an empty JSON
//! name) for a Go struct embedded in its parent, whose fields JSON inlines.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The API groups whose kinds the simulator serves, plus the shared machinery.
const MODULES: [&str; 17] = [
    "api.core.",
    "api.apps.",
    "api.batch.",
    "api.rbac.",
    "api.policy.",
    "api.scheduling.",
    "api.networking.",
    "api.coordination.",
    "api.discovery.",
    "api.events.",
    "api.autoscaling.",
    "api.storage.",
    "api.certificates.",
    "api.authentication.",
    "api.authorization.",
    "apimachinery.",
    "apiextensions_apiserver.",
];

#[test]
#[ignore = "needs the k8s-pb and k8s-openapi sources; see the module doc"]
fn regenerate() {
    let pb = PathBuf::from(std::env::var("K8S_PB_SRC").expect("K8S_PB_SRC"));
    let openapi = PathBuf::from(std::env::var("K8S_OPENAPI_SRC").expect("K8S_OPENAPI_SRC"));
    let mut json_names = openapi_json_names(&openapi);
    let messages: BTreeMap<String, Vec<Field>> = prost_messages(&pb)
        .into_iter()
        .filter(|(m, _)| MODULES.iter().any(|p| m.starts_with(p)) && served_version(m))
        .collect();
    // A Go struct embedded in another is a field of its own in protobuf, but its fields are the
    // parent's in JSON (`Volume.volumeSource`'s `configMap` is `Volume.configMap`): such a field has
    // no JSON name of its own, and the embedded message takes its names from the parent.
    let key = |m: &str| m.to_lowercase();
    let mut inline: HashSet<(String, u32)> = HashSet::new();
    let mut embedded_in: HashMap<String, String> = HashMap::new();
    for (message, fields) in &messages {
        let Some(names) = json_names.get(&key(message)) else {
            continue;
        };
        for field in fields {
            if !names.contains_key(&field.rust_name.replace('_', ""))
                && messages.contains_key(&field.kind)
            {
                inline.insert((message.clone(), field.tag));
                embedded_in.insert(field.kind.clone(), message.clone());
            }
        }
    }
    for (child, parent) in &embedded_in {
        if !json_names.contains_key(&key(child))
            && let Some(names) = json_names.get(&key(parent)).cloned()
        {
            json_names.insert(key(child), names);
        }
    }
    let mut table = String::new();
    for (message, fields) in &messages {
        // prost spells acronyms in type names as words (`HostIp` for `HostIP`).
        let names = json_names.get(&key(message));
        let _ = write!(table, "{message}");
        for field in fields {
            // prost and k8s-openapi split acronyms in field names differently (`u_id`, `uid`).
            let json = names.and_then(|n| n.get(&field.rust_name.replace('_', "")));
            let (json, kind) = match json {
                Some(json) => (json.clone(), field.kind.clone()),
                None if inline.contains(&(message.clone(), field.tag)) => {
                    (String::new(), format!("^{}", field.kind))
                }
                None => (camel_case(&field.rust_name), field.kind.clone()),
            };
            let _ = write!(table, " {}:{json}:{kind}", field.tag);
        }
        table.push('\n');
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/k8s-protobuf.fields");
    std::fs::write(&out, table).expect("writing the table");
}

/// Only the versions an API server serves by default: no alpha or beta kinds.
fn served_version(message: &str) -> bool {
    !message
        .split('.')
        .any(|part| part.starts_with('v') && (part.contains("alpha") || part.contains("beta")))
}

struct Field {
    tag: u32,
    rust_name: String,
    kind: String,
}

/// Every prost message in k8s-pb: dotted module path + name → fields.
fn prost_messages(src: &Path) -> BTreeMap<String, Vec<Field>> {
    let mut messages = BTreeMap::new();
    for file in rust_files(src) {
        let module: Vec<String> = file
            .strip_prefix(src)
            .expect("under src")
            .parent()
            .expect("a directory")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let text = std::fs::read_to_string(&file).expect("reading k8s-pb");
        let mut current: Option<(String, Vec<Field>)> = None;
        let mut attribute: Option<String> = None;
        let mut pending: Option<(String, String)> = None; // (attribute, declaration so far)
        for line in text.lines().map(str::trim) {
            if let Some((attr, mut decl)) = pending.take() {
                decl.push_str(line);
                finish_field(&module, &mut current, attr, decl, &mut pending);
                continue;
            }
            if let Some(name) = line
                .strip_prefix("pub struct ")
                .and_then(|r| r.strip_suffix(" {"))
            {
                current = Some((name.to_owned(), Vec::new()));
            } else if line.starts_with("#[prost(") && current.is_some() {
                attribute = Some(line.to_owned());
            } else if line.starts_with("pub ") && current.is_some() {
                if let Some(attr) = attribute.take() {
                    finish_field(&module, &mut current, attr, line.to_owned(), &mut pending);
                }
            } else if line == "}"
                && let Some((name, fields)) = current.take()
            {
                messages.insert(format!("{}.{name}", module.join(".")), fields);
            }
        }
    }
    messages
}

/// Adds the field declared by `decl` (complete once it ends with a comma) under `attr`.
fn finish_field(
    module: &[String],
    current: &mut Option<(String, Vec<Field>)>,
    attr: String,
    decl: String,
    pending: &mut Option<(String, String)>,
) {
    let open = decl.matches('<').count() > decl.matches('>').count();
    if !decl.ends_with(',') || open {
        *pending = Some((attr, decl));
        return;
    }
    let Some((_, fields)) = current else { return };
    let (name, ty) = decl
        .trim_start_matches("pub ")
        .split_once(':')
        .expect("name: type");
    let rust_name = name.trim().trim_start_matches("r#").to_owned();
    let tag = attr
        .split("tag = \"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .and_then(|t| t.parse().ok())
        .expect("a tag");
    let inner = attr.trim_start_matches("#[prost(");
    let repeated = inner.contains(", repeated");
    let kind = if let Some(map) = inner
        .strip_prefix("btree_map = \"")
        .or_else(|| inner.strip_prefix("map = \""))
    {
        let value = map.split('"').next().unwrap_or_default();
        match value.split(", ").nth(1) {
            Some("message") => format!("%{}", resolve(module, last_type(ty, true))),
            Some(scalar) => format!("%{scalar}"),
            None => panic!("map without value type: {attr}"),
        }
    } else {
        let scalar = inner
            .split([',', ' ', '='])
            .next()
            .expect("a type")
            .to_owned();
        let base = if scalar == "message" {
            resolve(module, last_type(ty, false))
        } else {
            scalar
        };
        if repeated { format!("*{base}") } else { base }
    };
    fields.push(Field {
        tag,
        rust_name,
        kind,
    });
}

/// The message type a field declaration names: the innermost type path (a map's value type).
fn last_type(ty: &str, map_value: bool) -> &str {
    let ty = ty.trim().trim_end_matches([',', '>', ' ']);
    let ty = if map_value {
        ty.rsplit_once(',').map_or(ty, |(_, v)| v)
    } else {
        ty
    };
    let start = ty.rfind('<').map_or(0, |i| i + 1);
    ty[start..].trim()
}

/// A type path relative to `module` (`super::super::x::Y`, or a bare `Y`) as a dotted message name.
fn resolve(module: &[String], path: &str) -> String {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    while let Some(r) = rest.strip_prefix("super::") {
        base.pop();
        rest = r;
    }
    let rest = rest.trim_start_matches("crate::");
    if path.starts_with("crate::") {
        base.clear();
    }
    base.extend(rest.split("::").map(str::to_owned));
    base.join(".")
}

/// JSON field names per message, from k8s-openapi's deserialisers (`"podIP" => Field::Key_pod_ip`).
fn openapi_json_names(src: &Path) -> HashMap<String, HashMap<String, String>> {
    let mut names = HashMap::new();
    for file in rust_files(src) {
        let text = std::fs::read_to_string(&file).expect("reading k8s-openapi");
        let Some(strukt) = text.lines().find_map(|l| {
            l.trim()
                .strip_prefix("pub struct ")
                .and_then(|r| r.split([' ', '{', '<']).next())
        }) else {
            continue;
        };
        let module: Vec<String> = file
            .strip_prefix(src)
            .expect("under src")
            .parent()
            .expect("a directory")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let mut fields = HashMap::new();
        for line in text.lines().map(str::trim) {
            if let Some((json, key)) = line.split_once("\" => Field::Key_")
                && let Some(json) = json.strip_prefix('"')
            {
                let rust = key.trim_end_matches(',').trim_end_matches('_');
                fields.insert(rust.replace('_', ""), json.to_owned());
            }
        }
        let openapi_name = format!("{}.{strukt}", module.join(".")).to_lowercase();
        names.insert(openapi_name, fields);
    }
    names
}

fn camel_case(snake: &str) -> String {
    let mut out = String::new();
    for (i, part) in snake.split('_').enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("reading a directory")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
