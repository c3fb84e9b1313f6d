//! The broker's use of the shared rules (`testcluster_resources::validation`): a request is
//! checked and defaulted there, and every problem becomes a field violation whose `field` is the
//! request's own proto path in snake_case (`name`, `spec.nodes`, `spec.job_spec.runner.image`,
//! `spec.job_spec.runner.env[0].name`). The provisioner is asked only what it alone knows: which
//! templates exist.

use testcluster_api::errors::invalid_argument;
use testcluster_api::v1 as api;
use testcluster_resources::validation::{self as rules, Naming, Templates, Violations};
use tonic::Status;
use tonic_types::FieldViolation;

pub use rules::{CheckedRequest as CreatePlan, RequestedName};

/// Checks and defaults `request` by every rule but template existence (the provisioner's).
pub fn check(
    request: api::CreateTestClusterRequest,
    default_namespace: &str,
) -> (CreatePlan, Violations) {
    rules::check_create(request, default_namespace, Templates::Any)
}

/// Adds a violation when the plan's template is not among `known`, the provisioner's templates.
pub fn check_template(plan: &CreatePlan, known: &[String], violations: &mut Violations) {
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    rules::check_template(violations, &plan.spec, &known);
}

/// Checks the namespace (after defaulting) and name of a request about one existing test
/// cluster (Get, Watch, Delete, StreamLogs): both go into URL paths.
pub fn check_object_ref(namespace: &str, name: &str) -> Result<(), Status> {
    into_result(rules::check_object_ref(namespace, name))
}

/// Checks a List request's namespace: empty (every namespace) or a valid namespace name.
pub fn check_list_namespace(namespace: &str) -> Result<(), Status> {
    into_result(rules::check_list_namespace(namespace))
}

/// INVALID_ARGUMENT with a `google.rpc.BadRequest` naming the request's fields, or `Ok`.
pub fn into_result(violations: Violations) -> Result<(), Status> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(invalid_argument(
            violations
                .render(Naming::Proto)
                .into_iter()
                .map(FieldViolation::from)
                .collect(),
        ))
    }
}
