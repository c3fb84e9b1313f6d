//! Validation of a pruned and defaulted object against its schema, with the real API server's
//! field paths, reasons and messages (kube-openapi's validators as apiextensions reports them):
//! per node the type, then `allOf`/`oneOf`/`anyOf`/`not`, string limits, format, number limits,
//! items, `enum`, and last an object's properties (in name order) and `required` fields.

use serde_json::{Map, Value};

use super::{Additional, Schema, Type, cause, formats, printed, type_name};
use crate::apiserver::errors::Cause;

const REQUIRED: &str = "FieldValueRequired";
const INVALID: &str = "FieldValueInvalid";
const TYPE_INVALID: &str = "FieldValueTypeInvalid";
const NOT_SUPPORTED: &str = "FieldValueNotSupported";
const TOO_LONG: &str = "FieldValueTooLong";
const TOO_MANY: &str = "FieldValueTooMany";

/// Every violation in a whole object; its `apiVersion`, `kind` and `metadata` are the server's to
/// check, not the schema's.
pub fn object(object: &Value, schema: &Schema) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(map) = object.as_object() {
        fields(map, schema, "", true, &mut causes);
    }
    causes
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// An `Invalid value: <value>: <detail>` cause.
fn invalid(reason: &'static str, path: &str, value: &str, detail: String) -> Cause {
    cause(reason, path, format!("Invalid value: {value}: {detail}"))
}

fn node(value: &Value, schema: &Schema, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() && schema.nullable {
        return;
    }
    if !type_matches(value, schema) {
        let actual = type_name(value);
        let wanted = if schema.int_or_string {
            "integer,string".to_owned()
        } else {
            schema.kind.map_or("", Type::name).to_owned()
        };
        causes.push(invalid(
            TYPE_INVALID,
            path,
            &format!("{actual:?}"),
            format!("{path} in body must be of type {wanted}: {actual:?}"),
        ));
        return;
    }
    composites(value, schema, path, causes);
    match value {
        Value::String(text) => string(text, schema, path, causes),
        Value::Number(number) => {
            if let Some(n) = number.as_f64() {
                self::number(n, &printed(value), schema, path, causes);
            }
        }
        Value::Array(items) => array(items, schema, path, causes),
        _ => {}
    }
    if !schema.enumeration.is_empty() && !schema.enumeration.contains(value) {
        let supported: Vec<String> = schema
            .enumeration
            .iter()
            .map(|v| match v {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        causes.push(cause(
            NOT_SUPPORTED,
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                printed(value),
                supported.join(", ")
            ),
        ));
    }
    if let Value::Object(map) = value {
        fields(map, schema, path, schema.embedded_resource, causes);
    }
}

fn type_matches(value: &Value, schema: &Schema) -> bool {
    if schema.int_or_string {
        return matches!(type_name(value), "integer" | "string");
    }
    match schema.kind {
        None => true,
        Some(Type::Object) => value.is_object(),
        Some(Type::Array) => value.is_array(),
        Some(Type::String) => value.is_string(),
        Some(Type::Integer) => type_name(value) == "integer",
        Some(Type::Number) => value.is_number(),
        Some(Type::Boolean) => value.is_boolean(),
    }
}

/// Whether `value` satisfies `schema` without a single violation.
fn satisfies(value: &Value, schema: &Schema, path: &str) -> Result<(), Vec<Cause>> {
    let mut causes = Vec::new();
    node(value, schema, path, &mut causes);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

/// `allOf`, `oneOf`, `anyOf`, `not`. When no alternative of a `oneOf` or `anyOf` fits, the
/// violations of the closest one follow the summary, as in the real validator.
fn composites(value: &Value, schema: &Schema, path: &str, causes: &mut Vec<Cause>) {
    let summary = |what: String| invalid(INVALID, path, "\"\"", format!("\"{path}\" {what}"));
    let mut failures: Vec<Vec<Cause>> = Vec::new();
    for branch in &schema.all_of {
        if let Err(found) = satisfies(value, branch, path) {
            failures.push(found);
        }
    }
    if !failures.is_empty() {
        causes.push(summary("must validate all the schemas (allOf)".into()));
        causes.extend(failures.drain(..).flatten());
    }
    let closest = |failures: Vec<Vec<Cause>>| failures.into_iter().min_by_key(Vec::len);
    if !schema.one_of.is_empty() {
        let mut valid = 0;
        for branch in &schema.one_of {
            match satisfies(value, branch, path) {
                Ok(()) => valid += 1,
                Err(found) => failures.push(found),
            }
        }
        match valid {
            1 => {}
            0 => {
                causes.push(summary(
                    "must validate one and only one schema (oneOf). Found none valid".into(),
                ));
                causes.extend(closest(std::mem::take(&mut failures)).into_iter().flatten());
            }
            n => causes.push(summary(format!(
                "must validate one and only one schema (oneOf). Found {n} valid alternatives"
            ))),
        }
        failures.clear();
    }
    if !schema.any_of.is_empty() {
        for branch in &schema.any_of {
            match satisfies(value, branch, path) {
                Ok(()) => {
                    failures.clear();
                    break;
                }
                Err(found) => failures.push(found),
            }
        }
        if !failures.is_empty() {
            causes.push(summary("must validate at least one schema (anyOf)".into()));
            causes.extend(closest(failures).into_iter().flatten());
        }
    }
    if let Some(not) = &schema.not
        && satisfies(value, not, path).is_ok()
    {
        causes.push(summary("must not validate the schema (not)".into()));
    }
}

fn string(text: &str, schema: &Schema, path: &str, causes: &mut Vec<Cause>) {
    let quoted = format!("{text:?}");
    let length = text.chars().count();
    if let Some(max) = schema.max_length
        && length > max
    {
        let unit = if max == 1 { "byte" } else { "bytes" };
        causes.push(cause(
            TOO_LONG,
            path,
            format!("Too long: may not be more than {max} {unit}"),
        ));
    }
    if let Some(min) = schema.min_length
        && length < min
    {
        causes.push(invalid(
            INVALID,
            path,
            &quoted,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = &schema.pattern
        && !pattern.is_match(text)
    {
        causes.push(invalid(
            INVALID,
            path,
            &quoted,
            format!("{path} in body should match '{}'", pattern.as_str()),
        ));
    }
    if let Some(format) = &schema.format
        && !formats::accepts(format, text)
    {
        causes.push(invalid(
            TYPE_INVALID,
            path,
            &quoted,
            format!("{path} in body must be of type {format}: {quoted}"),
        ));
    }
}

fn number(n: f64, shown: &str, schema: &Schema, path: &str, causes: &mut Vec<Cause>) {
    let mut check = |fails: bool, what: String| {
        if fails {
            causes.push(invalid(
                INVALID,
                path,
                shown,
                format!("{path} in body should be {what}"),
            ));
        }
    };
    if let Some(multiple) = schema.multiple_of.filter(|m| *m > 0.0) {
        check(
            (n / multiple).fract() != 0.0,
            format!("a multiple of {multiple}"),
        );
    }
    if let Some(max) = schema.maximum {
        if schema.exclusive_maximum {
            check(n >= max, format!("less than {max}"));
        } else {
            check(n > max, format!("less than or equal to {max}"));
        }
    }
    if let Some(min) = schema.minimum {
        if schema.exclusive_minimum {
            check(n <= min, format!("greater than {min}"));
        } else {
            check(n < min, format!("greater than or equal to {min}"));
        }
    }
}

/// `maxItems`/`minItems` and `maxProperties`/`minProperties`: the real messages differ only in
/// what the lower bound counts (`items`, `properties`).
fn size_limits(
    size: usize,
    (max, min): (Option<usize>, Option<usize>),
    counted: &str,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if let Some(max) = max
        && size > max
    {
        causes.push(cause(
            TOO_MANY,
            path,
            format!("Too many: {size}: must have at most {max} items"),
        ));
    }
    if let Some(min) = min
        && size < min
    {
        causes.push(invalid(
            INVALID,
            path,
            &size.to_string(),
            format!("{path} in body should have at least {min} {counted}"),
        ));
    }
}

fn array(items: &[Value], schema: &Schema, path: &str, causes: &mut Vec<Cause>) {
    let limits = (schema.max_items, schema.min_items);
    size_limits(items.len(), limits, "items", path, causes);
    if let Some(item_schema) = &schema.items {
        for (i, item) in items.iter().enumerate() {
            node(item, item_schema, &format!("{path}[{i}]"), causes);
        }
    }
}

/// An object's declared fields, then its additional ones, then what is missing.
fn fields(
    map: &Map<String, Value>,
    schema: &Schema,
    path: &str,
    skip_identity: bool,
    causes: &mut Vec<Cause>,
) {
    let is_identity =
        |key: &str| skip_identity && matches!(key, "apiVersion" | "kind" | "metadata");
    let limits = (schema.max_properties, schema.min_properties);
    size_limits(map.len(), limits, "properties", path, causes);
    for (key, child) in &schema.properties {
        if let Some(value) = map.get(key).filter(|_| !is_identity(key)) {
            node(value, child, &child_path(path, key), causes);
        }
    }
    if let Additional::Schema(values) = &schema.additional {
        for (key, value) in map
            .iter()
            .filter(|(k, _)| !schema.properties.contains_key(*k))
        {
            node(value, values, &child_path(path, key), causes);
        }
    }
    for key in &schema.required {
        if !map.contains_key(key) && !is_identity(key) {
            causes.push(cause(
                REQUIRED,
                &child_path(path, key),
                "Required value".into(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(schema: Value, object: Value) -> Vec<(String, String, String)> {
        object_causes(&Schema::compile(&schema), &object)
    }

    fn object_causes(schema: &Schema, value: &Value) -> Vec<(String, String, String)> {
        super::object(value, schema)
            .into_iter()
            .map(|c| (c.reason.to_owned(), c.field, c.message))
            .collect()
    }

    fn one(reason: &str, field: &str, message: &str) -> (String, String, String) {
        (reason.to_owned(), field.to_owned(), message.to_owned())
    }

    #[test]
    fn each_keyword_gives_the_real_reason_and_message() {
        let schema = json!({"type": "object", "required": ["spec"], "properties": {"spec": {
            "type": "object",
            "required": ["location"],
            "properties": {
                "location": {"type": "string"},
                "nodes": {"type": "integer", "minimum": 1, "maximum": 5},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$"},
                "port": {"x-kubernetes-int-or-string": true},
                "when": {"type": "string", "format": "date-time"},
                "maybe": {"type": "string", "nullable": true},
                "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
            }
        }}});
        let got = messages(
            schema.clone(),
            json!({"metadata": {"name": "x"}, "spec": {"nodes": 9, "mode": "c", "name": "ABCD",
                "port": true, "when": "soon", "maybe": null, "tags": ["a", 2]}}),
        );
        assert_eq!(
            got,
            vec![
                one(
                    "FieldValueNotSupported",
                    "spec.mode",
                    "Unsupported value: \"c\": supported values: \"a\", \"b\""
                ),
                one(
                    "FieldValueTooLong",
                    "spec.name",
                    "Too long: may not be more than 3 bytes"
                ),
                one(
                    "FieldValueInvalid",
                    "spec.name",
                    "Invalid value: \"ABCD\": spec.name in body should match '^[a-z]+$'"
                ),
                one(
                    "FieldValueInvalid",
                    "spec.nodes",
                    "Invalid value: 9: spec.nodes in body should be less than or equal to 5"
                ),
                one(
                    "FieldValueTypeInvalid",
                    "spec.port",
                    "Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
                ),
                one(
                    "FieldValueTooMany",
                    "spec.tags",
                    "Too many: 2: must have at most 1 items"
                ),
                one(
                    "FieldValueTypeInvalid",
                    "spec.tags[1]",
                    "Invalid value: \"integer\": spec.tags[1] in body must be of type string: \"integer\""
                ),
                one(
                    "FieldValueTypeInvalid",
                    "spec.when",
                    "Invalid value: \"soon\": spec.when in body must be of type date-time: \"soon\""
                ),
                one("FieldValueRequired", "spec.location", "Required value"),
            ]
        );
        assert_eq!(
            messages(schema.clone(), json!({"metadata": {"name": "x"}})),
            vec![one("FieldValueRequired", "spec", "Required value")]
        );
        assert!(
            messages(
                schema,
                json!({"spec": {"location": "l", "nodes": 2, "port": "http", "when": "2026-12-02T05:00:00Z"}})
            )
            .is_empty()
        );
    }

    #[test]
    fn one_of_as_config_connector_references_use_it() {
        let reference = json!({"type": "object", "properties": {"ref": {
            "type": "object",
            "oneOf": [
                {"not": {"required": ["external"]}, "required": ["name"]},
                {"not": {"anyOf": [{"required": ["name"]}, {"required": ["namespace"]}]}, "required": ["external"]}
            ],
            "properties": {"external": {"type": "string"}, "name": {"type": "string"}, "namespace": {"type": "string"}}
        }}});
        assert!(messages(reference.clone(), json!({"ref": {"name": "n"}})).is_empty());
        assert!(messages(reference.clone(), json!({"ref": {"external": "e"}})).is_empty());
        assert_eq!(
            messages(reference, json!({"ref": {"name": "n", "external": "e"}})),
            vec![
                one(
                    "FieldValueInvalid",
                    "ref",
                    "Invalid value: \"\": \"ref\" must validate one and only one schema (oneOf). Found none valid"
                ),
                one(
                    "FieldValueInvalid",
                    "ref",
                    "Invalid value: \"\": \"ref\" must not validate the schema (not)"
                ),
            ]
        );
    }
}
