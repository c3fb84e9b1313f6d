//! Validation, defaulting and input limits for test cluster requests and objects: every rule in
//! one place, for the broker (gRPC requests) and the provisioner (objects created with kubectl,
//! and its internal `ValidateSpec`).
//!
//! - [`check_create`] checks and defaults a `CreateTestClusterRequest`;
//!   [`check_object_ref`] and [`check_list_namespace`] the names other calls put into URLs.
//! - [`validate_object`] checks a stored `TestClusterGKE` (name, labels, annotations, spec).
//! - Each problem is a [`Violation`] whose [`FieldPath`] renders in either [`Naming`]: the
//!   request's snake_case (`spec.job_spec.runner.env[0].name`, what the broker reports) or the
//!   object's camelCase (`spec.jobSpec.runner.env[0].name`, what the provisioner reports).
//! - [`limits`] holds every limit; the proto comments quote them.
//!
//! Every check is linear in the input's size: counts are compared before any per-item work, and
//! duplicates are found with a set.
//!
//! Inside: [`path`] and [`violation`] (what is reported), `text` (lengths and control
//! characters), `names`, `location` (GCP shapes), `image`, `env` (including what `valueFrom` may
//! read, which keeps other runs' credentials out of reach), `spec`, `object_meta`, `request` and
//! `object`.

mod env;
mod image;
pub mod limits;
mod location;
mod names;
mod object;
mod object_meta;
pub mod path;
mod request;
mod spec;
mod text;
pub mod violation;

pub use env::RESERVED_ENV;
pub use names::{name_problem, prefix_problem};
pub use object::{ObjectParts, validate_object};
pub use path::{Field, FieldPath, Naming, fields};
pub use request::{
    CheckedRequest, RequestedName, check_create, check_list_namespace, check_object_ref,
};
pub use spec::{SpecContext, Templates, apply_defaults, check_template};
pub use violation::{Message, Reason, Violation, Violations};

#[cfg(test)]
mod tests;
