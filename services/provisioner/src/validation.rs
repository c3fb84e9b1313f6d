//! The provisioner's use of the shared rules (`testcluster_resources::validation`): it supplies
//! what only it knows, its templates, and reports paths in the object's camelCase names, for
//! `ValidateSpec` and for objects created with kubectl (which no admission webhook checked).

use testcluster_api::internal::v1::FieldViolation;
use testcluster_resources::validation::{
    self as rules, Naming, ObjectParts, Templates, Violations,
};
use testcluster_resources::{TestClusterGKE, TestClusterGKESpec};

use crate::template;

/// Length of the random suffix of `status.clusterName` (`<name>-<suffix>`).
pub const CLUSTER_NAME_SUFFIX_LEN: usize = rules::limits::NAME_SUFFIX_LEN;

/// Every problem with an object, in field order; empty when it is valid.
pub fn validate(tc: &TestClusterGKE) -> Violations {
    let empty = Default::default();
    let names = template::names();
    rules::validate_object(
        ObjectParts {
            name: tc.metadata.name.as_deref().unwrap_or_default(),
            labels: tc.metadata.labels.as_ref().unwrap_or(&empty),
            annotations: tc.metadata.annotations.as_ref().unwrap_or(&empty),
            spec: &tc.spec,
        },
        Templates::OneOf(&names),
    )
}

/// `ValidateSpec`: a name (possibly empty) and a spec on their own, with camelCase paths.
pub fn validate_spec(name: &str, spec: &TestClusterGKESpec) -> Vec<FieldViolation> {
    let empty = Default::default();
    let names = template::names();
    rules::validate_object(
        ObjectParts {
            name,
            labels: &empty,
            annotations: &empty,
            spec,
        },
        Templates::OneOf(&names),
    )
    .render(Naming::Crd)
}

/// One line for a condition message or an Event: `field: description; field: description`.
pub fn summary(violations: &Violations) -> String {
    violations.summary(Naming::Crd)
}
