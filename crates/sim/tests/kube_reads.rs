//! kube-rs conformance: typed and dynamic reads and writes, discovery, a CRD registered at runtime,
//! label and field selectors, and list paging.

mod common;

use std::collections::BTreeMap;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Expression, GroupVersionKind, Selector};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::json;

fn configmap(name: &str, labels: serde_json::Value, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data,
    }))
    .expect("configmap")
}

#[tokio::test]
async fn typed_crud_with_kubernetes_errors() {
    let (_api, client) = start("typed", "typed").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "typed");

    let created = cms
        .create(
            &PostParams::default(),
            &configmap("alpha", json!({"app": "x"}), json!({"k": "v"})),
        )
        .await
        .expect("create");
    assert_eq!(created.namespace().as_deref(), Some("typed"));
    assert!(created.uid().is_some_and(|u| !u.is_empty()));
    assert!(created.resource_version().is_some_and(|rv| !rv.is_empty()));
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(
        created.data,
        Some(BTreeMap::from([("k".to_owned(), "v".to_owned())]))
    );

    let fetched = cms.get("alpha").await.expect("get");
    assert_eq!(fetched, created);

    assert_status(
        cms.create(
            &PostParams::default(),
            &configmap("alpha", json!({}), json!({})),
        )
        .await,
        409,
        "AlreadyExists",
        "configmaps \"alpha\" already exists",
    );
    assert_status(
        cms.get("missing").await,
        404,
        "NotFound",
        "configmaps \"missing\" not found",
    );
    assert_eq!(cms.get_opt("missing").await.expect("get_opt"), None);
    assert_status(
        cms.create(
            &PostParams::default(),
            &configmap("Bad_Name", json!({}), json!({})),
        )
        .await,
        422,
        "Invalid",
        "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
    );
    // Objects in a namespace that does not exist.
    assert_status(
        Api::<ConfigMap>::namespaced(client.clone(), "nowhere")
            .create(
                &PostParams::default(),
                &configmap("x", json!({}), json!({})),
            )
            .await,
        404,
        "NotFound",
        "namespaces \"nowhere\" not found",
    );

    let mut changed = fetched.clone();
    changed.data = Some(BTreeMap::from([("k".to_owned(), "w".to_owned())]));
    let replaced = cms
        .replace("alpha", &PostParams::default(), &changed)
        .await
        .expect("replace");
    assert_eq!(replaced.data.as_ref().expect("data")["k"], "w");
    assert_ne!(replaced.resource_version(), created.resource_version());
    assert_eq!(replaced.uid(), created.uid());

    let deleted = cms
        .delete("alpha", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(
        deleted.left().map(|cm| cm.name_any()).as_deref(),
        Some("alpha")
    );
    assert_status(
        cms.get("alpha").await,
        404,
        "NotFound",
        "configmaps \"alpha\" not found",
    );
    assert_status(
        cms.delete("alpha", &DeleteParams::default()).await,
        404,
        "NotFound",
        "configmaps \"alpha\" not found",
    );

    // Defaults the real server applies to built-in kinds.
    let jobs: Api<Job> = Api::namespaced(client.clone(), "typed");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "batch"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }))
    .expect("job");
    let job = jobs
        .create(&PostParams::default(), &job)
        .await
        .expect("create job");
    let spec = job.spec.as_ref().expect("spec");
    assert_eq!(
        (spec.backoff_limit, spec.completions, spec.parallelism),
        (Some(6), Some(1), Some(1))
    );
    let uid = job.uid().expect("uid");
    assert_eq!(
        spec.selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .and_then(|l| l.get("batch.kubernetes.io/controller-uid")),
        Some(&uid)
    );
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .expect("template labels");
    assert_eq!(template_labels["job-name"], "batch");
    assert_eq!(
        spec.template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref()),
        Some("Never")
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "typed");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .expect("pod");
    let pod = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()),
        Some("Always")
    );
}

#[tokio::test]
async fn discovery_finds_builtins_and_a_crd_and_the_dynamic_api_uses_them() {
    let (_api, client) = start("discovery", "dyn").await;
    let crd = register_crd::<Gadget>(&client).await;
    assert_eq!(crd.name_any(), "gadgets.conformance.testcluster.dev");

    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_owned()).collect();
    for group in ["", "apps", "batch", "conformance.testcluster.dev"] {
        assert!(groups.iter().any(|g| g == group), "{group:?} in {groups:?}");
    }
    let (cm_resource, cm_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
        .expect("ConfigMap discovered");
    assert_eq!(
        (
            cm_resource.plural.as_str(),
            cm_resource.api_version.as_str()
        ),
        ("configmaps", "v1")
    );
    assert_eq!(cm_caps.scope, Scope::Namespaced);
    for verb in [verbs::LIST, verbs::WATCH, verbs::PATCH, verbs::CREATE] {
        assert!(cm_caps.supports_operation(verb), "{verb}");
    }
    let (deploy, deploy_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("Deployment discovered");
    assert_eq!(deploy.plural, "deployments");
    assert!(
        deploy_caps
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status"),
        "{:?}",
        deploy_caps.subresources
    );
    let (ns, ns_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
        .expect("Namespace discovered");
    assert_eq!(ns.plural, "namespaces");
    assert_eq!(ns_caps.scope, Scope::Cluster);

    let (gadget, gadget_caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(
            "conformance.testcluster.dev",
            "v1",
            "Gadget",
        ))
        .expect("the CRD's kind is discovered");
    assert_eq!(
        (gadget.plural.as_str(), gadget.api_version.as_str()),
        ("gadgets", "conformance.testcluster.dev/v1")
    );
    assert_eq!(gadget_caps.scope, Scope::Namespaced);
    assert!(
        gadget_caps
            .subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status")
    );

    // The dynamic API with what discovery found: a custom resource and a built-in.
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), "dyn", &gadget);
    let object = DynamicObject::new("g1", &gadget).data(json!({"spec": {"size": 3}}));
    let created = dynamic
        .create(&PostParams::default(), &object)
        .await
        .expect("create dynamic");
    assert_eq!(created.data["spec"]["size"], 3);
    assert_eq!(
        created.types.as_ref().map(|t| t.kind.as_str()),
        Some("Gadget")
    );
    let typed: Api<Gadget> = Api::namespaced(client.clone(), "dyn");
    assert_eq!(typed.get("g1").await.expect("typed get").spec.size, 3);
    let listed = dynamic.list(&ListParams::default()).await.expect("list");
    assert_eq!(names(listed), ["g1"]);

    let dynamic_cms: Api<DynamicObject> = Api::namespaced_with(client.clone(), "dyn", &cm_resource);
    dynamic_cms
        .create(
            &PostParams::default(),
            &DynamicObject::new("from-dynamic", &cm_resource).data(json!({"data": {"a": "b"}})),
        )
        .await
        .expect("create dynamic configmap");
    let typed_cm = Api::<ConfigMap>::namespaced(client.clone(), "dyn")
        .get("from-dynamic")
        .await
        .expect("typed get");
    assert_eq!(typed_cm.data.expect("data")["a"], "b");

    // The apiVersion on the wire is the one the path names.
    let deployments: Api<DynamicObject> = Api::namespaced_with(client.clone(), "dyn", &deploy);
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .expect("list deployments")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn a_crd_registered_at_runtime_is_served_with_a_status_subresource() {
    let (_api, client) = start("crd", "crd").await;
    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "crd");
    // Not served before its CRD exists.
    assert_eq!(
        status_of(gadgets.list(&ListParams::default()).await).code,
        404
    );

    let crd = register_crd::<Gadget>(&client).await;
    let status = crd.status.expect("CRD status");
    let conditions: BTreeMap<String, String> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert_eq!(
        conditions,
        BTreeMap::from([
            ("Established".to_owned(), "True".to_owned()),
            ("NamesAccepted".to_owned(), "True".to_owned()),
        ])
    );
    assert_eq!(status.stored_versions, Some(vec!["v1".to_owned()]));
    assert_eq!(
        status.accepted_names.and_then(|n| n.short_names),
        Some(vec!["gd".to_owned()])
    );

    // A status in the create body is ignored: status belongs to the subresource.
    let mut sneaky = gadget("g", 1);
    sneaky.status = Some(GadgetStatus {
        phase: "Sneaky".into(),
        observed_generation: None,
    });
    let created = gadgets
        .create(&PostParams::default(), &sneaky)
        .await
        .expect("create gadget");
    assert_eq!(created.status, None);
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        gadgets.get("g").await.expect("get").spec,
        GadgetSpec {
            size: 1,
            color: None
        }
    );

    let with_status = gadgets
        .patch_status(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready", "observedGeneration": 1}})),
        )
        .await
        .expect("patch status");
    assert_eq!(
        with_status.status,
        Some(GadgetStatus {
            phase: "Ready".into(),
            observed_generation: Some(1)
        })
    );
    assert_eq!(
        gadgets.get_status("g").await.expect("get status").status,
        with_status.status
    );

    // Deleting the CRD stops serving the resource and drops its objects.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete(&crd.metadata.name.expect("name"), &DeleteParams::default())
        .await
        .expect("delete CRD");
    wait_deleted(&crds, "gadgets.conformance.testcluster.dev").await;
    assert_eq!(status_of(gadgets.get("g").await).code, 404);
}

async fn selected(api: &Api<ConfigMap>, params: &ListParams) -> Vec<String> {
    let mut found = names(api.list(params).await.expect("list"));
    found.sort();
    found
}

#[tokio::test]
async fn label_and_field_selectors() {
    let (_api, client) = start("selectors", "sel").await;
    create_namespace(&client, "sel-other").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "sel");
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "web", "tier": "back"})),
        ("c", json!({"app": "db", "tier": "back"})),
        ("d", json!({"app": "cache"})),
        ("e", json!({})),
    ] {
        cms.create(&PostParams::default(), &configmap(name, labels, json!({})))
            .await
            .expect("create");
    }
    Api::<ConfigMap>::namespaced(client.clone(), "sel-other")
        .create(
            &PostParams::default(),
            &configmap("a", json!({"app": "web"}), json!({})),
        )
        .await
        .expect("create elsewhere");

    for (selector, expected) in [
        ("app=web", vec!["a", "b"]),
        ("app==web", vec!["a", "b"]),
        ("app!=web", vec!["c", "d", "e"]),
        ("app in (web,db)", vec!["a", "b", "c"]),
        ("app notin (web,db)", vec!["d", "e"]),
        ("tier", vec!["a", "b", "c"]),
        ("!tier", vec!["d", "e"]),
        ("app=web,tier=back", vec!["b"]),
        ("app in (web),tier notin (front)", vec!["b"]),
        ("app=nothing", vec![]),
    ] {
        assert_eq!(
            selected(&cms, &ListParams::default().labels(selector)).await,
            expected,
            "labelSelector {selector}"
        );
    }
    // kube's typed selector expressions render the same syntax.
    let selector = Selector::from_iter([
        Expression::In("app".into(), ["web".into(), "db".into()].into()),
        Expression::DoesNotExist("missing".into()),
        Expression::NotEqual("tier".into(), "front".into()),
    ]);
    assert_eq!(
        selected(&cms, &ListParams::default().labels_from(&selector)).await,
        ["b", "c"]
    );
    let bad = status_of(cms.list(&ListParams::default().labels("app in web")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));

    for (selector, expected) in [
        ("metadata.name=b", vec!["b"]),
        ("metadata.name==c", vec!["c"]),
        ("metadata.name!=b", vec!["a", "c", "d", "e"]),
        ("metadata.namespace=sel", vec!["a", "b", "c", "d", "e"]),
        ("metadata.namespace!=sel", vec![]),
        ("metadata.name=b,metadata.namespace=sel", vec!["b"]),
    ] {
        assert_eq!(
            selected(&cms, &ListParams::default().fields(selector)).await,
            expected,
            "fieldSelector {selector}"
        );
    }
    // Across namespaces.
    let all: Api<ConfigMap> = Api::all(client.clone());
    let everywhere = all
        .list(&ListParams::default().fields("metadata.name=a"))
        .await
        .expect("list all");
    let mut where_a: Vec<String> = everywhere
        .items
        .iter()
        .filter_map(|cm| cm.namespace())
        .collect();
    where_a.sort();
    assert_eq!(where_a, ["sel", "sel-other"]);
    let other = all
        .list(&ListParams::default().fields("metadata.namespace=sel-other"))
        .await
        .expect("list other");
    assert_eq!(names(other.items.clone()), ["a"]);
    assert_eq!(other.items[0].namespace().as_deref(), Some("sel-other"));
    // Labels and fields together.
    assert_eq!(
        selected(
            &cms,
            &ListParams::default()
                .labels("app=web")
                .fields("metadata.name!=a")
        )
        .await,
        ["b"]
    );
}

#[tokio::test]
async fn list_paging_returns_every_item_once_in_order() {
    let (_api, client) = start("paging", "paging").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "paging");
    let mut expected = Vec::new();
    // Created out of order: lists are in name order whatever the creation order.
    for i in (0..12).rev() {
        let name = format!("cm-{i:02}");
        cms.create(
            &PostParams::default(),
            &configmap(&name, json!({"page": "yes"}), json!({})),
        )
        .await
        .expect("create");
        expected.push(name);
    }
    expected.sort();
    cms.create(
        &PostParams::default(),
        &configmap("zz-unlabelled", json!({}), json!({})),
    )
    .await
    .expect("create");

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().labels("page=yes").limit(5);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = cms.list(&params).await.expect("page");
        assert!(
            page.metadata
                .resource_version
                .as_deref()
                .is_some_and(|rv| !rv.is_empty())
        );
        pages.push((page.items.len(), page.metadata.remaining_item_count));
        seen.extend(names(page.items));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, [(5, Some(7)), (5, Some(2)), (2, None)]);

    // A limit larger than the list: one page, no continue token.
    let whole = cms
        .list(&ListParams::default().limit(100))
        .await
        .expect("list");
    assert_eq!(whole.items.len(), 13);
    assert_eq!(whole.metadata.continue_, None);

    let bad = status_of(
        cms.list(&ListParams::default().limit(5).continue_token("garbage!"))
            .await,
    );
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));

    // An empty list pages too.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "paging");
    assert!(
        deployments
            .list(&ListParams::default().limit(1))
            .await
            .expect("empty list")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn server_sets_identity_and_generate_name_and_deletes_collections() {
    let (_api, client) = start("identity", "ids").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(client, "ids");
    let mut made = Vec::new();
    for _ in 0..3 {
        let generated: ConfigMap = serde_json::from_value(json!({
            "metadata": {"generateName": "run-", "labels": {"batch": "one"}},
        }))
        .expect("configmap");
        made.push(
            configmaps
                .create(&PostParams::default(), &generated)
                .await
                .expect("create with generateName"),
        );
    }
    for cm in &made {
        let name = cm.name_any();
        assert!(
            name.starts_with("run-") && name.len() == "run-".len() + 5,
            "{name}"
        );
        assert!(cm.uid().is_some_and(|uid| uid.len() == 36), "{cm:?}");
        assert!(cm.resource_version().is_some(), "{cm:?}");
        assert!(cm.creation_timestamp().is_some(), "{cm:?}");
    }
    let mut names = names(made);
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "generated names are unique: {names:?}");

    configmaps
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("batch=one"),
        )
        .await
        .expect("deletecollection");
    assert_eq!(
        selected(&configmaps, &ListParams::default().labels("batch=one")).await,
        Vec::<String>::new()
    );
}
