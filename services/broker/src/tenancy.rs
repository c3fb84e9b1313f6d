//! What a caller may do: the tenant the policy puts them in (`testcluster_auth::policy`), applied to
//! each call. The authentication layer has already put the caller's [`Identity`] into the request.
//!
//! - A caller in no tenant gets PERMISSION_DENIED; so does a create in a namespace or with a
//!   template the tenant may not use.
//! - A create beyond a quota gets RESOURCE_EXHAUSTED with a `google.rpc.QuotaFailure` whose
//!   violation's subject is the tenant and whose description names the quota.
//! - A test cluster is the tenant's when its `clusters.ci.cilium.io/tenant` annotation (written by
//!   the broker at create, reserved to it) names it; one without (made with kubectl) is seen by
//!   tenants with `seesUntenanted` only. Others' clusters do not exist for the caller:
//!   NOT_FOUND, and List leaves them out, so a caller learns nothing of other tenants.
//!
//! Without a policy (`--policy-config-map` unset) every authenticated caller is unrestricted: a
//! single-tenant installation.

use std::collections::HashMap;
use std::sync::Arc;

use kube::Api;
use testcluster_auth::Identity;
use testcluster_auth::policy::{PolicySource, Tenant};
use testcluster_resources::TestClusterGKE;
use testcluster_resources::metadata::{ANNOTATION_TENANT, DEFAULT_NODES};
use testcluster_service::kube_errors::kube_status;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::cache::ClusterCache;

/// What the caller may do.
#[derive(Clone, Debug)]
pub enum Grant {
    /// Anything (no policy).
    Unrestricted,
    /// What the tenant may.
    Tenant(Arc<Tenant>),
}

/// The policy and what applying it needs across calls.
pub struct Tenancy {
    policy: Option<PolicySource>,
    /// One lock per tenant, held from a create's quota check until the informer has the new object,
    /// so that concurrent creates of one tenant on this broker cannot all pass the same check.
    create_locks: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The caller of a request: who, and what they may do.
#[derive(Clone, Debug)]
pub struct Caller {
    pub identity: Identity,
    pub grant: Grant,
}

impl Tenancy {
    pub fn new(policy: Option<PolicySource>) -> Tenancy {
        Tenancy {
            policy,
            create_locks: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The caller of `request`, or PERMISSION_DENIED when the policy has no tenant for them.
    pub async fn caller<T>(&self, request: &tonic::Request<T>) -> Result<Caller, Status> {
        let identity = request
            .extensions()
            .get::<Identity>()
            .cloned()
            .unwrap_or(Identity::Anonymous);
        let Some(policy) = &self.policy else {
            return Ok(Caller {
                identity,
                grant: Grant::Unrestricted,
            });
        };
        match policy.tenant_of(&identity).await {
            Some(tenant) => Ok(Caller {
                identity,
                grant: Grant::Tenant(tenant),
            }),
            None => Err(Status::permission_denied(format!(
                "{identity} belongs to no tenant of the testcluster policy"
            ))),
        }
    }

    /// Holds `caller`'s tenant's create lock (nothing to hold when unrestricted).
    pub async fn create_lock(&self, caller: &Caller) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let Grant::Tenant(tenant) = &caller.grant else {
            return None;
        };
        let lock = self
            .create_locks
            .lock()
            .entry(tenant.name.clone())
            .or_default()
            .clone();
        Some(lock.lock_owned().await)
    }
}

impl Caller {
    /// The tenant's name, for the object's annotation; `None` when unrestricted.
    pub fn tenant_name(&self) -> Option<&str> {
        match &self.grant {
            Grant::Unrestricted => None,
            Grant::Tenant(tenant) => Some(&tenant.name),
        }
    }

    /// Whether the caller may see (and so act on) `object`.
    pub fn sees(&self, object: &TestClusterGKE) -> bool {
        match &self.grant {
            Grant::Unrestricted => true,
            Grant::Tenant(tenant) => {
                let owner = tenant_of(object);
                (owner == Some(tenant.name.as_str()) || (owner.is_none() && tenant.sees_untenanted))
                    && tenant
                        .allows_namespace(object.metadata.namespace.as_deref().unwrap_or_default())
            }
        }
    }

    /// NOT_FOUND, worded as for a cluster that does not exist, when the caller may not see it.
    pub fn visible(&self, object: TestClusterGKE) -> Result<TestClusterGKE, Status> {
        if self.sees(&object) {
            Ok(object)
        } else {
            Err(not_found(
                object.metadata.namespace.as_deref().unwrap_or_default(),
                object.metadata.name.as_deref().unwrap_or_default(),
            ))
        }
    }

    /// The checks a create passes before anything is written: namespace and template allowed,
    /// nodes per cluster, and, against `existing` (every test cluster the broker knows), the
    /// tenant's concurrent clusters and total nodes.
    pub fn check_create(
        &self,
        namespace: &str,
        template: &str,
        nodes: i32,
        existing: &[Arc<TestClusterGKE>],
    ) -> Result<(), Status> {
        let Grant::Tenant(tenant) = &self.grant else {
            return Ok(());
        };
        if !tenant.allows_namespace(namespace) {
            return Err(Status::permission_denied(format!(
                "tenant {:?} ({}) may not create test clusters in namespace {namespace:?}; it may in: {}",
                tenant.name,
                self.identity,
                listed(&tenant.namespaces)
            )));
        }
        if !tenant.allows_template(template) {
            return Err(Status::permission_denied(format!(
                "tenant {:?} ({}) may not use template {template:?}; it may use: {}",
                tenant.name,
                self.identity,
                listed(&tenant.templates)
            )));
        }
        let nodes = u64::try_from(nodes).unwrap_or_default();
        if let Some(max) = tenant.max_nodes_per_cluster
            && nodes > u64::from(max)
        {
            return Err(quota_exceeded(
                tenant,
                "maxNodesPerCluster",
                format!("{nodes} nodes asked, at most {max} per cluster"),
            ));
        }
        let live: Vec<&TestClusterGKE> = existing
            .iter()
            .map(|object| &**object)
            .filter(|object| {
                tenant_of(object) == Some(tenant.name.as_str()) && holds_resources(object)
            })
            .collect();
        if let Some(max) = tenant.max_concurrent_clusters
            && live.len() >= usize::try_from(max).unwrap_or(usize::MAX)
        {
            return Err(quota_exceeded(
                tenant,
                "maxConcurrentClusters",
                format!("{} test clusters live, at most {max}", live.len()),
            ));
        }
        if let Some(max) = tenant.max_total_nodes {
            let used: u64 = live
                .iter()
                .map(|object| {
                    u64::try_from(object.spec.nodes.unwrap_or(DEFAULT_NODES)).unwrap_or_default()
                })
                .sum();
            if used + nodes > u64::from(max) {
                return Err(quota_exceeded(
                    tenant,
                    "maxTotalNodes",
                    format!("{used} nodes in use and {nodes} asked, at most {max} in all"),
                ));
            }
        }
        Ok(())
    }
}

/// The test cluster `namespace/name` as `caller` may see it: from the informer, or, when it misses
/// (created moments ago through another replica, or the informer lags or is not up yet), from the
/// API server (`clusters`), which alone may say NOT_FOUND. Someone else's cluster is NOT_FOUND too.
pub async fn find_visible(
    cache: &ClusterCache,
    clusters: &Api<TestClusterGKE>,
    caller: &Caller,
    namespace: &str,
    name: &str,
) -> Result<TestClusterGKE, Status> {
    let cached = match cache.ready().await {
        true => cache.get(namespace, name),
        false => None,
    };
    let object = match cached {
        Some(object) => (*object).clone(),
        None => clusters
            .get_opt(name)
            .await
            .map_err(|e| kube_status(&format!("TestClusterGKE {name}"), e))?
            .ok_or_else(|| not_found(namespace, name))?,
    };
    caller.visible(object)
}

/// The NOT_FOUND a caller gets for a cluster that is not there or not theirs, the same either way.
pub fn not_found(namespace: &str, name: &str) -> Status {
    Status::not_found(format!("TestClusterGKE {namespace}/{name} not found"))
}

fn tenant_of(object: &TestClusterGKE) -> Option<&str> {
    object
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_TENANT)
        .map(String::as_str)
}

/// Whether `object` still counts against quotas: not yet ended (a run that ended has given its
/// cloud resources back; a deleting one has not yet).
fn holds_resources(object: &TestClusterGKE) -> bool {
    !object
        .status
        .as_ref()
        .and_then(|status| status.phase)
        .is_some_and(|phase| phase.is_terminal())
}

fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// RESOURCE_EXHAUSTED with a `google.rpc.QuotaFailure`: subject `tenant:NAME`, description
/// `QUOTA: detail`.
fn quota_exceeded(tenant: &Tenant, quota: &str, detail: String) -> Status {
    let description = format!("{quota}: {detail}");
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("tenant {:?} is over its quota {description}", tenant.name),
        ErrorDetails::with_quota_failure_violation(format!("tenant:{}", tenant.name), description),
    )
}
