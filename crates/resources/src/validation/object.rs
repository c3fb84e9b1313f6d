//! A `TestClusterGKE` object as it is stored, which may have been created with kubectl and so
//! checked by no one: its name, its labels and annotations, and its spec.

use std::collections::BTreeMap;

use super::names::check_name;
use super::object_meta;
use super::path::{FieldPath, fields};
use super::spec::{self, SpecContext, Templates};
use super::violation::Violations;
use crate::spec::TestClusterGKESpec;

/// The parts of an object the rules look at.
#[derive(Clone, Copy, Debug)]
pub struct ObjectParts<'a> {
    /// `metadata.name`; empty when there is none yet (a spec checked on its own).
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    pub spec: &'a TestClusterGKESpec,
}

/// Every problem with the object, in field order; empty when it is valid.
pub fn validate_object(object: ObjectParts<'_>, templates: Templates<'_>) -> Violations {
    let mut violations = Violations::default();
    if !object.name.is_empty() {
        check_name(&mut violations, FieldPath::of(fields::NAME), object.name);
    }
    object_meta::check_object(&mut violations, object.labels, object.annotations);
    spec::check(
        &mut violations,
        object.spec,
        SpecContext {
            templates,
            pending_config_map: None,
        },
    );
    violations
}
