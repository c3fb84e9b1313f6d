//! A simulated GKE management cluster on one machine.
//!
//! Nothing real can be provisioned where testcluster is developed and tested, so this crate plays every
//! remote party the services talk to, over the same protocols they use in production:
//!
//! - [`apiserver`]: a Kubernetes API server (REST, watch, discovery, apply, finalizers, garbage
//!   collection, graceful pod deletion, `pods/log`, `pods/eviction`, `scale`, service proxy) over
//!   HTTPS with its own CA, with bearer-token identities and the RBAC authoriser, and custom
//!   resources validated against their CRD's schema. Both the management cluster and every test
//!   cluster are instances of it.
//! - [`cloud`]: the cloud behind it — one model of its clusters and node pools, seen and changed
//!   through both simulated Config Connector controllers and a GKE REST API fake, an inventory of
//!   every cloud cluster ever created, and per-zone faults (stockouts, quota).
//! - [`workloads`]: Job, ReplicaSet and Deployment controllers, Services (endpoints and a proxy on
//!   loopback cluster IPs), and a kubelet that runs containers as local processes (images optionally
//!   mapped to local executables), with probes, memory limits, eviction and graceful deletion.
//!
//! [`metrics`] renders its request counters (per verb, resource, user and response code) and cloud
//! cluster counts for Prometheus; [`admin`] holds the flags and the HTTP endpoint that turn its
//! faults on and off from outside.
//!
//! [`Simulator::start`] composes the three on free loopback ports; the `testcluster-sim` binary does the
//! same and writes a kubeconfig file.

pub mod admin;
pub mod apiserver;
pub mod cloud;
pub mod metrics;
pub mod private_file;
mod simulator;
pub mod workloads;

pub use simulator::{SimConfig, Simulator};
