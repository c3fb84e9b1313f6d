//! Authentication and RBAC over HTTPS with ServiceAccount tokens minted by TokenRequest: what a
//! Role allows, the real 403 for everything else, and the request counters per user and code.

mod common;

use std::collections::BTreeMap;

use common::{create_namespace, start, status_of};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::config::KubeConfigOptions;
use serde_json::json;
use testcluster_sim::apiserver::{ApiServer, kubeconfig_for};

/// A ServiceAccount `namespace/name` and a token for it.
async fn service_account(admin: &Client, namespace: &str, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).expect("account"),
        )
        .await
        .expect("create account");
    accounts
        .create_token_request(name, &PostParams::default(), &TokenRequest::default())
        .await
        .expect("token request")
        .status
        .expect("token")
        .token
}

/// A client over HTTPS with `token`.
async fn client_with(api: &ApiServer, token: &str) -> Client {
    let kubeconfig = kubeconfig_for("sa", &api.https_url(), api.ca_pem(), token);
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

async fn create<K>(admin: &Client, namespace: &str, object: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(admin.clone(), namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(object).expect("object"),
        )
        .await
        .expect("create");
}

/// A RoleBinding `namespace/name` of `role` (kind, name) to the ServiceAccount `account` of the
/// same namespace.
async fn bind(admin: &Client, namespace: &str, name: &str, role: (&str, &str), account: &str) {
    let (kind, role) = role;
    create::<RoleBinding>(
        admin,
        namespace,
        json!({"metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]}),
    )
    .await;
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, message: &str) {
    let status = status_of(result);
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (403, "Forbidden", message),
        "{status:?}"
    );
}

const READER: &str = "system:serviceaccount:team-a:reader";

#[tokio::test]
async fn a_service_account_may_do_what_its_role_allows_and_nothing_else() {
    let (api, admin) = start("rbac", "team-a").await;
    create_namespace(&admin, "team-b").await;
    for namespace in ["team-a", "team-b"] {
        create::<ConfigMap>(&admin, namespace, json!({"metadata": {"name": "settings"}})).await;
    }
    for name in ["visible", "hidden"] {
        create::<Secret>(&admin, "team-a", json!({"metadata": {"name": name}})).await;
    }
    create::<Role>(
        &admin,
        "team-a",
        json!({"metadata": {"name": "reader"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["visible"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]}),
    )
    .await;
    bind(&admin, "team-a", "reader", ("Role", "reader"), "reader").await;
    let token = service_account(&admin, "team-a", "reader").await;
    let reader = client_with(&api, &token).await;
    api.counters().reset();

    // Discovery works for every authenticated user (system:discovery).
    reader.list_api_groups().await.expect("discovery");
    reader.apiserver_version().await.expect("version");

    let configmaps = |ns: &str| Api::<ConfigMap>::namespaced(reader.clone(), ns);
    configmaps("team-a")
        .get("settings")
        .await
        .expect("allowed get");
    assert_forbidden(
        configmaps("team-b").get("settings").await,
        "configmaps \"settings\" is forbidden: User \"system:serviceaccount:team-a:reader\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"team-b\"",
    );
    assert_forbidden(
        configmaps("team-a").list(&ListParams::default()).await,
        "configmaps is forbidden: User \"system:serviceaccount:team-a:reader\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team-a\"",
    );
    assert_forbidden(
        Api::<ConfigMap>::all(reader.clone())
            .list(&ListParams::default())
            .await,
        "configmaps is forbidden: User \"system:serviceaccount:team-a:reader\" cannot list resource \"configmaps\" in API group \"\" at the cluster scope",
    );

    // resourceNames: one Secret, not the other.
    let secrets: Api<Secret> = Api::namespaced(reader.clone(), "team-a");
    secrets.get("visible").await.expect("the named secret");
    assert_forbidden(
        secrets.get("hidden").await,
        "secrets \"hidden\" is forbidden: User \"system:serviceaccount:team-a:reader\" cannot get resource \"secrets\" in API group \"\" in the namespace \"team-a\"",
    );

    // A subresource rule: pods/log passes the authoriser (the pod does not exist), pods do not.
    let pods: Api<Pod> = Api::namespaced(reader.clone(), "team-a");
    let log = status_of(pods.logs("web", &LogParams::default()).await);
    assert_eq!(
        (log.code, log.message.as_str()),
        (404, "pods \"web\" not found")
    );
    assert_forbidden(
        pods.get("web").await,
        "pods \"web\" is forbidden: User \"system:serviceaccount:team-a:reader\" cannot get resource \"pods\" in API group \"\" in the namespace \"team-a\"",
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(reader.clone(), "team-a");
    let denied = accounts
        .create_token_request("reader", &PostParams::default(), &TokenRequest::default())
        .await;
    let status = status_of(denied);
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            403,
            "serviceaccounts \"reader\" is forbidden: User \"system:serviceaccount:team-a:reader\" cannot create resource \"serviceaccounts/token\" in API group \"\" in the namespace \"team-a\""
        )
    );
    let details = status.details.expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("reader", "", "serviceaccounts")
    );

    // The counters show who asked what and how it ended; the reads that were allowed are the
    // only 200s.
    let expected: BTreeMap<(String, String, u16), u64> = [
        (("get", "configmaps", 200), 1),
        (("get", "configmaps", 403), 1),
        (("list", "configmaps", 403), 2),
        (("get", "secrets", 200), 1),
        (("get", "secrets", 403), 1),
        (("get", "pods/log", 404), 1),
        (("get", "pods", 403), 1),
        (("create", "serviceaccounts/token", 403), 1),
    ]
    .into_iter()
    .map(|((verb, resource, code), n)| ((verb.to_owned(), resource.to_owned(), code), n))
    .collect();
    assert_eq!(api.counters().of_user(READER), expected);
    assert!(
        api.counters().requests().keys().all(|r| r.user == READER),
        "{:?}",
        api.counters().requests()
    );
}

#[tokio::test]
async fn bindings_to_cluster_roles_aggregation_and_missing_roles() {
    let (api, admin) = start("rbac-cluster", "apps").await;
    let token = service_account(&admin, "apps", "viewer").await;
    let viewer = client_with(&api, &token).await;
    let pods: Api<Pod> = Api::namespaced(viewer.clone(), "apps");

    // A binding to a Role that does not exist: denied, and the 403 says why.
    bind(&admin, "apps", "ghost", ("Role", "ghost"), "viewer").await;
    assert_forbidden(
        pods.list(&ListParams::default()).await,
        "pods is forbidden: User \"system:serviceaccount:apps:viewer\" cannot list resource \"pods\" in API group \"\" in the namespace \"apps\": RBAC: role.rbac.authorization.k8s.io \"ghost\" not found",
    );

    // The default `view` ClusterRole, aggregated from system:aggregate-to-view, bound in one
    // namespace: reads there, no writes, nothing cluster-wide.
    bind(&admin, "apps", "view", ("ClusterRole", "view"), "viewer").await;
    assert!(
        pods.list(&ListParams::default())
            .await
            .expect("view lists pods")
            .items
            .is_empty()
    );
    let configmaps: Api<ConfigMap> = Api::namespaced(viewer.clone(), "apps");
    assert_forbidden(
        configmaps
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("cm"),
            )
            .await,
        // The broken binding in the namespace is still reported.
        "configmaps is forbidden: User \"system:serviceaccount:apps:viewer\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"apps\": RBAC: role.rbac.authorization.k8s.io \"ghost\" not found",
    );
    assert_forbidden(
        Api::<ClusterRole>::all(viewer.clone()).get("view").await,
        "clusterroles.rbac.authorization.k8s.io \"view\" is forbidden: User \"system:serviceaccount:apps:viewer\" cannot get resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope",
    );

    // A new ClusterRole labelled for aggregation into `view` widens it at once.
    Api::<ClusterRole>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "secret-reader",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]}))
            .expect("role"),
        )
        .await
        .expect("create cluster role");
    Api::<Secret>::namespaced(viewer.clone(), "apps")
        .list(&ListParams::default())
        .await
        .expect("aggregated rule");

    // kubectl auth can-i asks with a SelfSubjectAccessReview.
    let review = |verb: &str, resource: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("apps".into()),
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(viewer.clone());
    let allowed = reviews
        .create(&PostParams::default(), &review("list", "pods"))
        .await
        .expect("review")
        .status
        .expect("status");
    assert!(allowed.allowed);
    assert_eq!(
        allowed.reason.as_deref(),
        Some(
            "RBAC: allowed by RoleBinding \"view/apps\" of ClusterRole \"view\" to ServiceAccount \"viewer/apps\""
        )
    );
    let denied = reviews
        .create(&PostParams::default(), &review("delete", "pods"))
        .await
        .expect("review")
        .status
        .expect("status");
    assert!(!denied.allowed);
}

#[tokio::test]
async fn tokens_are_reviewed_and_die_with_their_service_account() {
    let (api, admin) = start("tokens", "ci").await;
    let token = service_account(&admin, "ci", "runner").await;

    let reviews: Api<TokenReview> = Api::all(admin.clone());
    let review = |token: &str| TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let status = reviews
        .create(&PostParams::default(), &review(&token))
        .await
        .expect("token review")
        .status
        .expect("status");
    let uid = Api::<ServiceAccount>::namespaced(admin.clone(), "ci")
        .get("runner")
        .await
        .expect("account")
        .metadata
        .uid;
    assert_eq!(status.authenticated, Some(true));
    let user = status.user.expect("user");
    assert_eq!(
        (user.username.as_deref(), user.uid, user.groups),
        (
            Some("system:serviceaccount:ci:runner"),
            uid,
            Some(vec![
                "system:serviceaccounts".to_owned(),
                "system:serviceaccounts:ci".to_owned(),
                "system:authenticated".to_owned(),
            ])
        )
    );
    let admin_review = reviews
        .create(&PostParams::default(), &review(api.admin_token()))
        .await
        .expect("token review")
        .status
        .expect("status");
    assert_eq!(
        admin_review.user.and_then(|u| u.groups),
        Some(vec![
            "system:masters".to_owned(),
            "system:authenticated".to_owned()
        ])
    );

    // A token works until its ServiceAccount is deleted, and not for a new one of the same name.
    let runner = client_with(&api, &token).await;
    runner.apiserver_version().await.expect("the token works");
    Api::<ServiceAccount>::namespaced(admin.clone(), "ci")
        .delete("runner", &DeleteParams::default())
        .await
        .expect("delete account");
    Api::<ServiceAccount>::namespaced(admin.clone(), "ci")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "runner"}})).expect("account"),
        )
        .await
        .expect("same name again");
    let status = status_of(runner.apiserver_version().await);
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
    let gone = reviews
        .create(&PostParams::default(), &review(&token))
        .await
        .expect("token review")
        .status
        .expect("status");
    assert_eq!(gone.authenticated, None);
    assert_eq!(gone.error.as_deref(), Some("invalid bearer token"));
}
