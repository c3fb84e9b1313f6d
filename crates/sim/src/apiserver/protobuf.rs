//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! kubectl ≥ 1.32 sends `kubectl create namespace|configmap|secret|serviceaccount` as protobuf, without
//! asking discovery first, and a 415 is fatal to it. The body is the magic `k8s\0` followed by a
//! `runtime.Unknown {typeMeta = 1, raw = 2}` whose `raw` is the object's own protobuf encoding. This
//! decodes those simple kinds into the JSON the rest of the server works with; anything else stays
//! unsupported (the caller answers 415).

use base64::Engine as _;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// The JSON object encoded in a Kubernetes protobuf body, if it is of a kind this understands.
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
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    for field in Fields(raw) {
        let (number, wire) = field?;
        let Wire::Bytes(bytes) = wire else {
            match (kind.as_str(), number, wire) {
                ("ConfigMap", 4, Wire::Varint(v)) | ("Secret", 5, Wire::Varint(v)) => {
                    object.insert("immutable".into(), json!(v != 0));
                }
                ("ServiceAccount", 4, Wire::Varint(v)) => {
                    object.insert("automountServiceAccountToken".into(), json!(v != 0));
                }
                _ => {}
            }
            continue;
        };
        let (key, value) = match (api_version.as_str(), kind.as_str(), number) {
            (_, _, 1) => ("metadata", object_meta(bytes)?),
            ("v1", "Namespace", 2) => ("spec", namespace_spec(bytes)?),
            ("v1", "ConfigMap", 2) => ("data", map_entry(&object, "data", bytes, false)?),
            ("v1", "ConfigMap", 3) => {
                ("binaryData", map_entry(&object, "binaryData", bytes, true)?)
            }
            ("v1", "Secret", 2) => ("data", map_entry(&object, "data", bytes, true)?),
            ("v1", "Secret", 3) => ("type", json!(string(bytes)?)),
            ("v1", "Secret", 4) => (
                "stringData",
                map_entry(&object, "stringData", bytes, false)?,
            ),
            ("v1", "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount", _) => continue,
            _ => return None,
        };
        object.insert(key.into(), value);
    }
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace" | "ConfigMap" | "Secret" | "ServiceAccount") => {
            Some(Value::Object(object))
        }
        _ => None,
    }
}

/// `ObjectMeta`: the fields a client sets on create.
fn object_meta(bytes: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    for field in Fields(bytes) {
        match field? {
            (1, Wire::Bytes(v)) => _ = meta.insert("name".into(), json!(string(v)?)),
            (2, Wire::Bytes(v)) => _ = meta.insert("generateName".into(), json!(string(v)?)),
            (3, Wire::Bytes(v)) => _ = meta.insert("namespace".into(), json!(string(v)?)),
            (11, Wire::Bytes(v)) => {
                let labels = map_entry(&meta, "labels", v, false)?;
                meta.insert("labels".into(), labels);
            }
            (12, Wire::Bytes(v)) => {
                let annotations = map_entry(&meta, "annotations", v, false)?;
                meta.insert("annotations".into(), annotations);
            }
            (14, Wire::Bytes(v)) => push_string(&mut meta, "finalizers", v)?,
            _ => {}
        }
    }
    Some(Value::Object(meta))
}

fn namespace_spec(bytes: &[u8]) -> Option<Value> {
    let mut spec = Map::new();
    for field in Fields(bytes) {
        if let (1, Wire::Bytes(v)) = field? {
            push_string(&mut spec, "finalizers", v)?;
        }
    }
    Some(Value::Object(spec))
}

fn push_string(map: &mut Map<String, Value>, key: &str, bytes: &[u8]) -> Option<()> {
    let value = json!(string(bytes)?);
    match map.entry(key).or_insert_with(|| json!([])) {
        Value::Array(items) => items.push(value),
        _ => return None,
    }
    Some(())
}

/// One entry of a protobuf `map<string, string|bytes>` added to the map already at `parent[key]`.
fn map_entry(parent: &Map<String, Value>, key: &str, entry: &[u8], binary: bool) -> Option<Value> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for field in Fields(entry) {
        match field? {
            (1, Wire::Bytes(b)) => k = string(b)?,
            (2, Wire::Bytes(b)) if binary => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(b));
            }
            (2, Wire::Bytes(b)) => v = json!(string(b)?),
            _ => {}
        }
    }
    let mut map = parent.get(key).cloned().unwrap_or_else(|| json!({}));
    map.as_object_mut()?.insert(k, v);
    Some(map)
}

fn string(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
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
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            _ => return None,
        };
        Some((tag >> 3, wire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::try_from(number << 3 | 2).expect("small field number")];
        out.push(u8::try_from(payload.len()).expect("short payload"));
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_namespace_as_kubectl_create_sends_it() {
        let type_meta = [bytes_field(1, b"v1"), bytes_field(2, b"Namespace")].concat();
        let label = [bytes_field(1, b"team"), bytes_field(2, b"ci")].concat();
        let meta = [bytes_field(1, b"shop"), bytes_field(11, &label)].concat();
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
                "metadata": {"name": "shop", "labels": {"team": "ci"}},
                "spec": {},
            }))
        );
    }

    #[test]
    fn refuses_kinds_it_does_not_know() {
        let type_meta = [bytes_field(1, b"apps/v1"), bytes_field(2, b"Deployment")].concat();
        let raw = bytes_field(1, &bytes_field(1, b"web"));
        let body = [
            MAGIC.to_vec(),
            bytes_field(1, &type_meta),
            bytes_field(2, &raw),
        ]
        .concat();
        assert_eq!(decode(&body), None);
        assert_eq!(decode(b"{}"), None);
    }
}
