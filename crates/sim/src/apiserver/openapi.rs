//! `GET /openapi/v2`: just enough of the OpenAPI document for kubectl to know every built-in kind
//! takes a server-side dry run.
//!
//! kubectl 1.20 refuses `--dry-run=server` and `diff` ("doesn't support dry-run") unless the
//! document's PATCH operation for the kind, tagged `x-kubernetes-group-version-kind`, declares the
//! `dryRun` query parameter; for custom resources it checks `Namespace` and then the CRD. Newer
//! kubectls only read the document for client-side validation, which skips kinds it has no
//! definitions for, so the document has paths and no definitions.
//!
//! kubectl asks for it as protobuf: a gnostic `openapi_v2.Document`, encoded here field by field.

use super::resources::ResourceType;

/// The document for the built-in kinds in `types`, protobuf-encoded.
pub fn document(types: &[ResourceType]) -> Vec<u8> {
    let mut paths = Vec::new();
    for rt in types.iter().filter(|rt| !rt.custom) {
        paths.extend(bytes(2, &named_path_item(rt)));
    }
    [string(1, "2.0"), bytes(8, &paths)].concat()
}

/// `NamedPathItem {name = 1, value = 2: PathItem {patch = 8: Operation}}`.
fn named_path_item(rt: &ResourceType) -> Vec<u8> {
    let prefix = if rt.group.is_empty() {
        format!("/api/{}", rt.version)
    } else {
        format!("/apis/{}/{}", rt.group, rt.version)
    };
    let scope = if rt.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let path = format!("{prefix}{scope}/{}/{{name}}", rt.plural);
    let gvk = format!(
        "group: \"{}\"\nkind: {}\nversion: {}\n",
        rt.group, rt.kind, rt.version
    );
    // Operation {parameters = 8: [ParametersItem {parameter = 1: Parameter {non_body_parameter = 2:
    // NonBodyParameter {query_parameter_sub_schema = 3: {in = 2, name = 4}}}}], vendor_extension =
    // 13: [NamedAny {name = 1, value = 2: Any {yaml = 2}}]}
    let dry_run = bytes(
        1,
        &bytes(
            2,
            &bytes(3, &[string(2, "query"), string(4, "dryRun")].concat()),
        ),
    );
    let extension = [
        string(1, "x-kubernetes-group-version-kind"),
        bytes(2, &string(2, &gvk)),
    ]
    .concat();
    let patch = [bytes(8, &dry_run), bytes(13, &extension)].concat();
    [string(1, &path), bytes(2, &bytes(8, &patch))].concat()
}

fn string(number: u64, text: &str) -> Vec<u8> {
    bytes(number, text.as_bytes())
}

/// A length-delimited field.
fn bytes(number: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(number << 3 | 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(2);
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}
