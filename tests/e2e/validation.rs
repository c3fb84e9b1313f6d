//! Invalid requests are refused with INVALID_ARGUMENT naming the field, and nothing is created.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use testcluster_api::errors::field_violations;
use testcluster_api::v1 as api;
use testcluster_resources::TestClusterGKE;
use tonic::Code;

use crate::support::{IMAGE, NAMESPACE, job_request, start};

fn spec(change: impl FnOnce(&mut api::TestClusterSpec)) -> api::CreateTestClusterRequest {
    let mut request = job_request("valid-name", 2, &["true"]);
    if let Some(spec) = request.spec.as_mut() {
        change(spec);
    }
    request
}

fn runner(request: &mut api::CreateTestClusterRequest) -> &mut api::JobRunnerSpec {
    request
        .spec
        .as_mut()
        .and_then(|spec| spec.job_spec.as_mut())
        .and_then(|job| job.runner.as_mut())
        .expect("runner")
}

#[tokio::test]
async fn each_invalid_request_names_its_field_and_creates_nothing() {
    let env = start().await;
    let mut no_image = job_request("valid-name", 1, &["sh", "-c", "true"]);
    runner(&mut no_image).image = None;
    let mut long_prefix = job_request("", 1, &["true"]);
    long_prefix.name_prefix = "p".repeat(30);
    let mut reserved_env = job_request("valid-name", 1, &["true"]);
    runner(&mut reserved_env).env.push(api::EnvVar {
        name: "KUBECONFIG".to_owned(),
        value: Some("/elsewhere".to_owned()),
        value_from: None,
    });
    let mut manifest_and_config_map = job_request("valid-name", 1, &["true"]);
    manifest_and_config_map.init_manifest = Some("kind: List".to_owned());
    runner(&mut manifest_and_config_map).config_map = Some("mine".to_owned());

    let cases = [
        (spec(|s| s.nodes = Some(0)), "spec.nodes"),
        (spec(|s| s.nodes = Some(-1)), "spec.nodes"),
        (
            spec(|s| s.config_template = Some("no-such-template".to_owned())),
            "spec.config_template",
        ),
        (job_request(&"a".repeat(35), 1, &["true"]), "name"),
        (job_request("Not_Valid", 1, &["true"]), "name"),
        (job_request("9starts-with-digit", 1, &["true"]), "name"),
        (job_request("", 1, &["true"]), "name"),
        (long_prefix, "name_prefix"),
        (no_image, "spec.job_spec.runner.image"),
        (reserved_env, "spec.job_spec.runner.env[0].name"),
        (manifest_and_config_map, "init_manifest"),
    ];
    for (request, field) in cases {
        let status = env
            .broker()
            .create_test_cluster(request.clone())
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let fields: Vec<String> = field_violations(&status)
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, [field], "{request:?}");
    }

    // Several problems at once are all named.
    let mut several = spec(|s| {
        s.nodes = Some(0);
        s.config_template = Some("nope".to_owned());
    });
    several.name = "UPPER".to_owned();
    let status = env
        .broker()
        .create_test_cluster(several)
        .await
        .expect_err("refused");
    let mut fields: Vec<String> = field_violations(&status)
        .into_iter()
        .map(|v| v.field)
        .collect();
    fields.sort();
    assert_eq!(fields, ["name", "spec.config_template", "spec.nodes"]);

    let client = env.suite.client().await.expect("client");
    let clusters: Api<TestClusterGKE> = Api::namespaced(client.clone(), NAMESPACE);
    assert!(
        clusters
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
    let user_config_maps = config_maps
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter(|cm| {
            cm.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-user"))
        })
        .count();
    assert_eq!(user_config_maps, 0);
    assert!(env.suite.simulator().inventory().all().is_empty());

    // A valid request with the same name still works afterwards: nothing half-created blocks it.
    let mut valid = job_request("valid-name", 1, &["true"]);
    runner(&mut valid).image = Some(IMAGE.to_owned());
    env.create(valid).await;
}
