//! What every test crate of this workspace shares, so that no test crate carries its own copy:
//!
//! - [`init`]: rustls with ring, and test logging (`RUST_LOG`, default `warn`);
//! - [`within`]: a future, bounded by [`WAIT`], failing the test with what it waited for;
//! - [`wait_for`] and [`wait_deleted`]: bounded waits on a watch, never a sleep;
//! - [`create_namespace`] and [`install_crd`]: the setup most tests start with.
//!
//! It knows nothing of the simulator or the services, so every crate (the simulator's tests
//! too) may use it.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

/// The longest any one wait in a test may take. Generous, since CI machines are slow and
/// shared; a test that passes takes a small part of it.
pub const WAIT: Duration = Duration::from_secs(60);

/// Installs ring as rustls' provider (kube-rs and the simulator's TLS both need one) and logs to
/// the test's output at `RUST_LOG` (default `warn`). Idempotent: every test calls it.
pub fn init() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Runs `future`, failing the test with `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
}

/// Waits on a watch until the object `name` satisfies `condition`; returns it then.
pub async fn wait_for<K>(api: &Api<K>, name: &str, condition: impl Condition<K>) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    within(
        &format!("{name} to reach the expected state"),
        await_condition(api.clone(), name, condition),
    )
    .await
    .expect("watch")
    .unwrap_or_else(|| panic!("{name} does not exist"))
}

/// Waits on a watch until the object `name` (as it is now) is gone.
pub async fn wait_deleted<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let uid = match api.get_opt(name).await.expect("get") {
        Some(object) => object.uid().expect("uid"),
        None => return,
    };
    within(
        &format!("{name} to be deleted"),
        await_condition(api.clone(), name, conditions::is_deleted(&uid)),
    )
    .await
    .expect("watch");
}

/// Creates the namespace `name`.
pub async fn create_namespace(client: &Client, name: &str) -> Namespace {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.to_owned());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace")
}

/// Creates `crd` and waits until the API server serves it.
pub async fn install_crd(client: &Client, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), crd)
        .await
        .expect("create CRD");
    wait_for(&crds, &crd.name_any(), conditions::is_crd_established()).await;
}
