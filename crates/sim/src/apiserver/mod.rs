//! A Kubernetes API server that keeps everything in memory.
//!
//! It serves the REST and watch protocol that kube-rs and kubectl speak, for any group, version and
//! resource: the built-in kinds listed in [`resources`] and every CustomResourceDefinition as soon as it
//! is created. Plain HTTP is open (kubectl sends no token over plain HTTP); HTTPS, with a CA of its own,
//! demands a bearer token. Each token stands for a user, whose requests the RBAC authoriser
//! decides ([`auth`]); custom resources are validated against their CRD's schema ([`schema`]).

mod apply;
mod auth;
mod discovery;
mod errors;
mod event_ttl;
mod events;
mod eviction;
mod faults;
mod gc;
mod handlers;
mod objects;
mod openapi;
mod patch;
mod protobuf;
mod proxy;
pub mod resources;
mod scale;
mod schema;
mod selectors;
mod store;
mod table;
mod tls;
mod watch;

pub use errors::ApiError;
pub use faults::{ApiFaultSettings, ApiFaults, CountedRequest, RequestCounters};
pub use proxy::ServiceResolver;
pub use selectors::selector_query;

// The public API of the server handle lives in `server.rs`.
mod server;
pub use server::{ApiServer, ApiServerConfig, kubeconfig_for};
