//! A simulated GKE management cluster on one machine.
//!
//! Nothing real can be provisioned where testcluster is developed and tested, so this crate plays every
//! remote party the services talk to, over the same protocols they use in production:
//!
//! - [`apiserver`]: a Kubernetes API server (REST, watch, discovery, apply, finalizers, garbage
//!   collection, `pods/log`, service proxy) over HTTP and HTTPS with its own CA, with bearer-token
//!   identities and the RBAC authoriser, and custom resources validated against their CRD's schema.
//!   Both the management cluster and every test cluster are instances of it.
//! - [`cloud`]: the cloud behind it — simulated Config Connector controllers, a GKE REST API fake, an
//!   inventory of every cloud cluster ever created, and per-zone faults (stockouts, quota).
//! - [`workloads`]: a Job controller and a kubelet that runs containers as local processes.
//!
//! [`metrics`] renders its request counters (per verb, resource, user and response code) and cloud
//! cluster counts for Prometheus.
//!
//! [`Simulator::start`] composes the three on free loopback ports; the `testcluster-sim` binary does the
//! same and writes a kubeconfig file.

pub mod apiserver;
pub mod cloud;
pub mod metrics;
mod simulator;
pub mod workloads;

pub use simulator::{SimConfig, Simulator};
