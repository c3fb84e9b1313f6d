//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl ≥ 1.32 sends its typed creates (`kubectl create namespace|configmap|deployment|job|service|
//! role|rolebinding|pdb|priorityclass|...`) as protobuf, without asking discovery first, and a 415 is
//! fatal to it. The body is the magic `k8s\0` followed by a `runtime.Unknown {typeMeta = 1, raw = 2}`
//! whose `raw` is the object's own protobuf encoding.
//!
//! One generic decoder turns any built-in kind into the JSON the rest of the server works with. It
//! is driven by a field table (`data/k8s-protobuf.fields`: per message, each field's number, JSON
//! name and type), generated from `k8s-pb`'s prost types and `k8s-openapi`'s JSON names by
//! `tests/protobuf_table.rs`. The few messages whose JSON form is not an object (times, quantities,
//! int-or-string, raw JSON) are converted as the Kubernetes JSON encoding writes them.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine as _;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";
/// Messages nested deeper than this are refused, so a hostile body cannot recurse without end.
const MAX_DEPTH: usize = 64;

static TABLE: LazyLock<HashMap<&'static str, Vec<FieldSpec>>> =
    LazyLock::new(|| parse_table(include_str!("../../data/k8s-protobuf.fields")));

/// One field of a message, from the table.
struct FieldSpec {
    number: u64,
    json: &'static str,
    shape: Shape,
    /// A scalar (`string`, `int32`, `int64`, `bool`, `double`, `bytes`) or a message name.
    ty: &'static str,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Single,
    Repeated,
    /// A map from string keys.
    Map,
    /// A Go struct embedded in its parent: its fields are the parent's in JSON.
    Inline,
}

fn parse_table(text: &'static str) -> HashMap<&'static str, Vec<FieldSpec>> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            let message = words.next()?;
            let fields = words
                .filter_map(|word| {
                    let mut parts = word.splitn(3, ':');
                    let number = parts.next()?.parse().ok()?;
                    let json = parts.next()?;
                    let ty = parts.next()?;
                    let (shape, ty) = match ty.split_at_checked(1) {
                        Some(("*", ty)) => (Shape::Repeated, ty),
                        Some(("%", ty)) => (Shape::Map, ty),
                        Some(("^", ty)) => (Shape::Inline, ty),
                        _ => (Shape::Single, ty),
                    };
                    Some(FieldSpec {
                        number,
                        json,
                        shape,
                        ty,
                    })
                })
                .collect();
            Some((message, fields))
        })
        .collect()
}

/// The JSON object encoded in a Kubernetes protobuf body; `None` when the body is malformed or of a
/// kind the table does not hold (the caller answers 415).
pub fn decode(body: &[u8]) -> Option<Value> {
    let unknown = body.strip_prefix(MAGIC)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for field in Fields(unknown) {
        match field? {
            (1, Wire::Bytes(type_meta)) => {
                for field in Fields(type_meta) {
                    match field? {
                        (1, Wire::Bytes(v)) => api_version = string(v)?,
                        (2, Wire::Bytes(k)) => kind = string(k)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let Value::Object(mut object) = message(&message_name(&api_version, &kind)?, raw, 0)? else {
        return None;
    };
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    Some(Value::Object(object))
}

/// The table's name for a kind: `apps/v1` `Deployment` is `api.apps.v1.Deployment`.
fn message_name(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let name = match group {
        "" => format!("api.core.{version}.{kind}"),
        "apiextensions.k8s.io" => {
            format!("apiextensions_apiserver.pkg.apis.apiextensions.{version}.{kind}")
        }
        group => format!("api.{}.{version}.{kind}", group.split('.').next()?),
    };
    TABLE.contains_key(name.as_str()).then_some(name)
}

/// Decodes one message of type `name`.
fn message(name: &str, bytes: &[u8], depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    if let Some(converted) = special(name, bytes) {
        return converted;
    }
    let specs = TABLE.get(name)?;
    let mut object = Map::new();
    for field in Fields(bytes) {
        let (number, wire) = field?;
        // Fields this table does not know (newer than it) are skipped, as proto decoders do.
        let Some(spec) = specs.iter().find(|s| s.number == number) else {
            continue;
        };
        match spec.shape {
            // Go's protobuf encoding sends every non-pointer string, empty ones too, where its
            // JSON encoding leaves them out (`omitempty`): empty strings are left out here too, so
            // that `""` never stands for "not set". Zero numbers and `false` are kept: a pointer
            // field set to 0 (`replicas: 0`) means what it says.
            Shape::Single if spec.ty == "string" && wire_is_empty(wire) => {}
            Shape::Single => {
                object.insert(spec.json.into(), value(spec.ty, wire, depth)?);
            }
            Shape::Inline => {
                let Value::Object(fields) = value(spec.ty, wire, depth)? else {
                    return None;
                };
                object.extend(fields);
            }
            Shape::Repeated => {
                let list = object
                    .entry(spec.json)
                    .or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(list) = list else {
                    return None;
                };
                match wire {
                    // Packed scalars: one length-delimited run of varints.
                    Wire::Bytes(run) if matches!(spec.ty, "int32" | "int64" | "bool") => {
                        let mut run = Fields(run);
                        while !run.0.is_empty() {
                            list.push(value(spec.ty, Wire::Varint(run.varint()?), depth)?);
                        }
                    }
                    wire => list.push(value(spec.ty, wire, depth)?),
                }
            }
            Shape::Map => {
                let Wire::Bytes(entry) = wire else {
                    return None;
                };
                let (mut key, mut entry_value) = (String::new(), None);
                for field in Fields(entry) {
                    match field? {
                        (1, Wire::Bytes(k)) => key = string(k)?,
                        (2, wire) => entry_value = Some(value(spec.ty, wire, depth)?),
                        _ => {}
                    }
                }
                let map = object
                    .entry(spec.json)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(key, entry_value.unwrap_or_else(|| empty(spec.ty)));
                }
            }
        }
    }
    Some(Value::Object(object))
}

fn wire_is_empty(wire: Wire) -> bool {
    matches!(wire, Wire::Bytes(b) if b.is_empty())
}

/// A map value left out of its entry is the type's empty value.
fn empty(ty: &str) -> Value {
    match ty {
        "string" | "bytes" => json!(""),
        "int32" | "int64" | "double" => json!(0),
        "bool" => json!(false),
        _ => json!({}),
    }
}

fn value(ty: &str, wire: Wire, depth: usize) -> Option<Value> {
    Some(match (ty, wire) {
        ("string", Wire::Bytes(b)) => json!(string(b)?),
        ("bytes", Wire::Bytes(b)) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        // Varints carry negative int32s sign-extended to 64 bits: the cast recovers them.
        ("int32", Wire::Varint(v)) => json!(v as i64 as i32),
        ("int64", Wire::Varint(v)) => json!(v as i64),
        ("bool", Wire::Varint(v)) => json!(v != 0),
        ("double", Wire::Fixed64(bits)) => json!(f64::from_bits(bits)),
        (name, Wire::Bytes(b)) => message(name, b, depth + 1)?,
        _ => return None,
    })
}

/// The messages whose JSON form is not an object of their fields; `None` for every other.
fn special(name: &str, bytes: &[u8]) -> Option<Option<Value>> {
    let field = |wanted: u64| {
        Fields(bytes)
            .flatten()
            .find(|(number, _)| *number == wanted)
            .map(|(_, wire)| wire)
    };
    let varint = |wanted| match field(wanted) {
        Some(Wire::Varint(v)) => v as i64,
        _ => 0,
    };
    let raw = |wanted| match field(wanted) {
        Some(Wire::Bytes(b)) => b,
        _ => &[][..],
    };
    Some(match name {
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime" => {
            let nanos = u32::try_from(varint(2)).unwrap_or(0);
            if varint(1) == 0 && nanos == 0 {
                // The zero time, which Go's JSON encoding writes as null.
                return Some(Some(Value::Null));
            }
            chrono::DateTime::from_timestamp(varint(1), nanos).map(|t| {
                let precision = if name.ends_with("MicroTime") {
                    chrono::SecondsFormat::Micros
                } else {
                    chrono::SecondsFormat::Secs
                };
                json!(t.to_rfc3339_opts(precision, true))
            })
        }
        "apimachinery.pkg.apis.meta.v1.Duration" => Some(json!(go_duration(varint(1)))),
        "apimachinery.pkg.util.intstr.IntOrString" => Some(match varint(1) {
            0 => json!(varint(2) as i32),
            _ => json!(string(raw(3))?),
        }),
        "apimachinery.pkg.api.resource.Quantity" => Some(json!(string(raw(1))?)),
        // A user's extra attributes: a list of strings in JSON.
        "api.authentication.v1.ExtraValue"
        | "api.authorization.v1.ExtraValue"
        | "api.certificates.v1.ExtraValue" => Some(Value::Array(
            Fields(bytes)
                .flatten()
                .filter_map(|(number, wire)| match (number, wire) {
                    (1, Wire::Bytes(item)) => string(item).map(Value::String),
                    _ => None,
                })
                .collect(),
        )),
        "apimachinery.pkg.runtime.RawExtension"
        | "apimachinery.pkg.apis.meta.v1.FieldsV1"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON" => {
            serde_json::from_slice(raw(1)).ok()
        }
        _ => return None,
    })
}

/// Nanoseconds as Go prints a `time.Duration` (`1h2m3.5s`), which is what `metav1.Duration` holds.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    if nanos < 1_000_000_000 {
        return match nanos {
            n if n % 1_000_000 == 0 => format!("{sign}{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{sign}{}µs", n / 1_000),
            n => format!("{sign}{n}ns"),
        };
    }
    let (hours, rest) = (nanos / 3_600_000_000_000, nanos % 3_600_000_000_000);
    let (minutes, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let seconds = format!("{}.{:09}", rest / 1_000_000_000, rest % 1_000_000_000);
    let seconds = seconds.trim_end_matches('0').trim_end_matches('.');
    let mut out = sign.to_owned();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

fn string(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed64(u64),
    /// No Kubernetes field is a 32-bit fixed or float; skipped.
    Fixed32,
}

/// The fields of one protobuf message, in order; `None` for malformed input.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Option<(u64, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_none() {
            self.0 = &[];
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first()?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(taken)
    }

    fn field(&mut self) -> Option<(u64, Wire<'a>)> {
        let tag = self.varint()?;
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            _ => return None,
        };
        Some((tag >> 3, wire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
        out
    }

    fn bytes_field(number: u64, payload: &[u8]) -> Vec<u8> {
        [
            varint(number << 3 | 2),
            varint(payload.len() as u64),
            payload.to_vec(),
        ]
        .concat()
    }

    fn varint_field(number: u64, value: u64) -> Vec<u8> {
        [varint(number << 3), varint(value)].concat()
    }

    #[test]
    fn decodes_a_namespace_as_kubectl_create_sends_it() {
        let type_meta = [bytes_field(1, b"v1"), bytes_field(2, b"Namespace")].concat();
        let label = [bytes_field(1, b"team"), bytes_field(2, b"ci")].concat();
        // As Go encodes it: the empty generateName and the zero creationTimestamp are sent.
        let meta = [
            bytes_field(1, b"shop"),
            bytes_field(2, b""),
            bytes_field(8, &[]),
            bytes_field(11, &label),
        ]
        .concat();
        let raw = [
            bytes_field(1, &meta),
            bytes_field(2, &[]),
            bytes_field(3, &[]),
        ]
        .concat();
        let body = [
            MAGIC.to_vec(),
            bytes_field(1, &type_meta),
            bytes_field(2, &raw),
            bytes_field(3, b""),
            bytes_field(4, b""),
        ]
        .concat();
        assert_eq!(
            decode(&body),
            Some(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "shop", "creationTimestamp": null, "labels": {"team": "ci"}},
                "spec": {},
                "status": {},
            }))
        );
    }

    fn body(api_version: &[u8], kind: &[u8], raw: &[u8]) -> Vec<u8> {
        let type_meta = [bytes_field(1, api_version), bytes_field(2, kind)].concat();
        [
            MAGIC.to_vec(),
            bytes_field(1, &type_meta),
            bytes_field(2, raw),
        ]
        .concat()
    }

    #[test]
    fn decodes_any_built_in_kind_from_the_table() {
        // apps/v1 Deployment, as `kubectl create deployment` builds it, with the messages whose
        // JSON form is special: a Time, an IntOrString, a Quantity, and an embedded struct
        // (ConfigMapVolumeSource's LocalObjectReference, VolumeSource in Volume).
        let time = [varint_field(1, 1_700_000_000)].concat();
        let meta = [bytes_field(1, b"web"), bytes_field(8, &time)].concat();
        let max_surge = [varint_field(1, 1), bytes_field(3, b"25%")].concat();
        let max_unavailable = [varint_field(1, 0), varint_field(2, 1)].concat();
        let rolling = [bytes_field(1, &max_unavailable), bytes_field(2, &max_surge)].concat();
        let strategy = [bytes_field(1, b"RollingUpdate"), bytes_field(2, &rolling)].concat();
        let quantity = bytes_field(1, b"64Mi");
        let limits = bytes_field(
            1,
            &[bytes_field(1, b"memory"), bytes_field(2, &quantity)].concat(),
        );
        let container = [
            bytes_field(1, b"web"),
            bytes_field(2, b"nginx"),
            bytes_field(8, &limits),
        ]
        .concat();
        let config_map = bytes_field(1, &bytes_field(1, b"settings"));
        let volume = [
            bytes_field(1, b"config"),
            bytes_field(2, &bytes_field(19, &config_map)),
        ]
        .concat();
        let pod_spec = [bytes_field(1, &volume), bytes_field(2, &container)].concat();
        let template = bytes_field(2, &pod_spec);
        let spec = [
            varint_field(1, 3),
            bytes_field(3, &template),
            bytes_field(4, &strategy),
        ]
        .concat();
        let raw = [bytes_field(1, &meta), bytes_field(2, &spec)].concat();
        assert_eq!(
            decode(&body(b"apps/v1", b"Deployment", &raw)),
            Some(json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "creationTimestamp": "2023-11-14T22:13:20Z"},
                "spec": {
                    "replicas": 3,
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"},
                    },
                    "template": {"spec": {
                        "volumes": [{"name": "config", "configMap": {"name": "settings"}}],
                        "containers": [{
                            "name": "web",
                            "image": "nginx",
                            "resources": {"limits": {"memory": "64Mi"}},
                        }],
                    }},
                },
            }))
        );
    }

    #[test]
    fn refuses_kinds_it_does_not_know() {
        let raw = bytes_field(1, &bytes_field(1, b"w"));
        assert_eq!(decode(&body(b"example.com/v1", b"Widget", &raw)), None);
        assert_eq!(decode(b"not protobuf"), None);
        // A length that runs past the end of the body.
        assert_eq!(
            decode(&body(b"v1", b"ConfigMap", &[0x0a, 0x7f, 0x01])),
            None
        );
    }
}
