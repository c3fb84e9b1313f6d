//! Installs the Config Connector CRDs, as the Config Connector operator does before its
//! controllers start.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::wait::{await_condition, conditions};

use super::kinds::Kind;

/// The real CRDs (from Config Connector's release), so that kubectl and clients see the schemas,
/// printer columns and pruning they would see on GKE.
const CRDS: [&str; 7] = [
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/computenetworks.compute.cnrm.cloud.google.com.yaml"
    )),
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/computesubnetworks.compute.cnrm.cloud.google.com.yaml"
    )),
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/containerclusters.container.cnrm.cloud.google.com.yaml"
    )),
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/containernodepools.container.cnrm.cloud.google.com.yaml"
    )),
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/iampolicymembers.iam.cnrm.cloud.google.com.yaml"
    )),
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/iamserviceaccountkeys.iam.cnrm.cloud.google.com.yaml"
    )),
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/iamserviceaccounts.iam.cnrm.cloud.google.com.yaml"
    )),
];

/// How long the API server may take to establish a CRD.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates every CRD that does not exist yet, then waits until each is Established and its
/// resource is served.
pub(crate) async fn install(client: &kube::Client) -> anyhow::Result<()> {
    // Posted as untyped objects so that no field of the large schemas is lost in a typed round trip.
    let crd_resource = ApiResource::erase::<CustomResourceDefinition>(&());
    let untyped: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource);
    for yaml in CRDS {
        let crd: DynamicObject = yaml_serde::from_str(yaml).context("parsing an embedded CRD")?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        match untyped.create(&PostParams::default(), &crd).await {
            Ok(_) => tracing::debug!(%name, "created CRD"),
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                tracing::debug!(%name, "CRD already exists");
            }
            Err(error) => return Err(error).with_context(|| format!("creating CRD {name}")),
        }
    }
    let typed: Api<CustomResourceDefinition> = Api::all(client.clone());
    for kind in Kind::ALL {
        let name = kind.crd_name();
        tokio::time::timeout(
            ESTABLISH_TIMEOUT,
            await_condition(typed.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} was not established in time"))?
        .with_context(|| format!("watching CRD {name}"))?;
        let served: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        served
            .list(&ListParams::default().limit(1))
            .await
            .with_context(|| format!("{} is not served", kind.plural()))?;
    }
    Ok(())
}
