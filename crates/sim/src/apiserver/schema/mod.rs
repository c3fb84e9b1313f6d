//! Structural schemas of custom resources, applied as the API server applies them on every write
//! (create, update, patch, apply; status included): unknown fields are pruned ([`prune`]),
//! missing fields with a `default` are filled in, and what is left is validated ([`validate`]),
//! each violation a cause of one 422 naming its field.
//!
//! A CRD version's `openAPIV3Schema` is compiled once, when the CRD is registered, into a
//! [`Schema`] tree (patterns as compiled regular expressions) that every write then walks.

mod formats;
mod prune;
mod validate;

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use super::errors::{ApiError, Cause};

/// The JSON types a schema may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
}

impl Type {
    fn parse(name: &str) -> Option<Type> {
        Some(match name {
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Type::Object => "object",
            Type::Array => "array",
            Type::String => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
        }
    }
}

/// `additionalProperties`: absent, `true` (any value), or a schema for every value.
#[derive(Debug, Default)]
pub enum Additional {
    #[default]
    Absent,
    Any,
    Schema(Box<Schema>),
}

/// One compiled node of a structural schema.
#[derive(Debug, Default)]
pub struct Schema {
    pub kind: Option<Type>,
    pub nullable: bool,
    pub properties: BTreeMap<String, Schema>,
    pub required: Vec<String>,
    pub additional: Additional,
    pub items: Option<Box<Schema>>,
    /// `x-kubernetes-preserve-unknown-fields`.
    pub preserve_unknown: bool,
    /// `x-kubernetes-int-or-string`.
    pub int_or_string: bool,
    /// `x-kubernetes-embedded-resource`: `apiVersion`, `kind` and `metadata` are kept.
    pub embedded_resource: bool,
    pub default: Option<Value>,
    pub enumeration: Vec<Value>,
    pub format: Option<String>,
    pub pattern: Option<Regex>,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub multiple_of: Option<f64>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub min_items: Option<usize>,
    pub max_items: Option<usize>,
    pub min_properties: Option<usize>,
    pub max_properties: Option<usize>,
    pub one_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub all_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
}

impl Schema {
    /// Compiles an `openAPIV3Schema`. Keywords it does not know are ignored; a pattern that is not
    /// a valid regular expression is dropped (the real API server refuses such a CRD).
    pub fn compile(schema: &Value) -> Schema {
        let flag = |key: &str| schema[key].as_bool() == Some(true);
        let number = |key: &str| schema[key].as_f64();
        let count = |key: &str| schema[key].as_u64().and_then(|n| usize::try_from(n).ok());
        let all = |key: &str| -> Vec<Schema> {
            schema[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(Schema::compile)
                .collect()
        };
        Schema {
            kind: schema["type"].as_str().and_then(Type::parse),
            nullable: flag("nullable"),
            properties: schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, child)| (name.clone(), Schema::compile(child)))
                .collect(),
            required: schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            additional: match &schema["additionalProperties"] {
                Value::Bool(true) => Additional::Any,
                child @ Value::Object(_) => Additional::Schema(Box::new(Schema::compile(child))),
                _ => Additional::Absent,
            },
            items: schema
                .get("items")
                .filter(|i| i.is_object())
                .map(|i| Box::new(Schema::compile(i))),
            preserve_unknown: flag("x-kubernetes-preserve-unknown-fields"),
            int_or_string: flag("x-kubernetes-int-or-string"),
            embedded_resource: flag("x-kubernetes-embedded-resource"),
            default: schema.get("default").cloned(),
            enumeration: schema["enum"].as_array().cloned().unwrap_or_default(),
            format: schema["format"].as_str().map(str::to_owned),
            pattern: schema["pattern"].as_str().and_then(|p| Regex::new(p).ok()),
            minimum: number("minimum"),
            exclusive_minimum: flag("exclusiveMinimum"),
            maximum: number("maximum"),
            exclusive_maximum: flag("exclusiveMaximum"),
            multiple_of: number("multipleOf"),
            min_length: count("minLength"),
            max_length: count("maxLength"),
            min_items: count("minItems"),
            max_items: count("maxItems"),
            min_properties: count("minProperties"),
            max_properties: count("maxProperties"),
            one_of: all("oneOf"),
            any_of: all("anyOf"),
            all_of: all("allOf"),
            not: schema
                .get("not")
                .filter(|n| n.is_object())
                .map(|n| Box::new(Schema::compile(n))),
        }
    }

    /// Prunes, defaults and validates a whole custom resource of `kind` in `group`; the 422 lists
    /// every violation.
    pub fn admit(&self, object: &mut Value, group: &str, kind: &str) -> Result<(), ApiError> {
        prune::prune_and_default(object, self);
        let causes = validate::object(object, self);
        if causes.is_empty() {
            return Ok(());
        }
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        Err(ApiError::invalid_causes(group, kind, name, causes))
    }
}

/// The names of the JSON types, as the real validator names the type it found.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The value as the real API server prints it in a field error: strings quoted, numbers and
/// booleans bare, anything else as JSON.
fn printed(value: &Value) -> String {
    match value {
        Value::Null => "\"null\"".to_owned(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn cause(reason: &'static str, field: &str, message: String) -> Cause {
    Cause {
        reason,
        field: field.to_owned(),
        message,
    }
}
