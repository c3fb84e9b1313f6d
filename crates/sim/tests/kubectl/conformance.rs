//! What a new user does with kubectl, each step checked by what it leaves behind: typed creates
//! (sent as protobuf by kubectl ≥ 1.32), server-side dry runs that change nothing, `diff`, `scale`,
//! `rollout status` and `get all`.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use serde_json::json;

use super::Sim;

#[tokio::test]
async fn typed_creates_make_the_objects_they_say() {
    let sim = Sim::start().await;
    let client = sim.client().await;

    assert_eq!(
        sim.ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
            "--port=8080",
            "-n",
            "default"
        ])
        .await,
        "deployment.apps/web created\n"
    );
    let deployment = Api::<Deployment>::default_namespaced(client.clone())
        .get("web")
        .await
        .expect("the deployment");
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.containers[0].image.as_deref(), Some("nginx:1.27"));
    let ports = pod.containers[0].ports.clone().unwrap_or_default();
    assert_eq!(ports[0].container_port, 8080);
    assert_eq!(spec.selector.match_labels.expect("selector")["app"], "web");

    assert_eq!(
        sim.ok(&[
            "create",
            "job",
            "once",
            "-n",
            "default",
            "--image=busybox",
            "--",
            "true"
        ])
        .await,
        "job.batch/once created\n"
    );
    let job = Api::<Job>::default_namespaced(client.clone())
        .get("once")
        .await
        .expect("the job");
    let container = &job
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0];
    assert_eq!(container.command, Some(vec!["true".to_owned()]));

    assert_eq!(
        sim.ok(&[
            "create",
            "service",
            "clusterip",
            "web",
            "--tcp=80:8080",
            "-n",
            "default"
        ])
        .await,
        "service/web created\n"
    );
    let service = Api::<Service>::default_namespaced(client.clone())
        .get("web")
        .await
        .expect("the service");
    let port = &service.spec.expect("spec").ports.expect("ports")[0];
    assert_eq!(port.port, 80);
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );

    assert_eq!(
        sim.ok(&[
            "create",
            "role",
            "reader",
            "--verb=get",
            "--resource=configmaps",
            "-n",
            "default"
        ])
        .await,
        "role.rbac.authorization.k8s.io/reader created\n"
    );
    let role = Api::<Role>::default_namespaced(client.clone())
        .get("reader")
        .await
        .expect("the role");
    let rule = &role.rules.expect("rules")[0];
    assert_eq!(rule.api_groups, Some(vec![String::new()]));
    assert_eq!(rule.resources, Some(vec!["configmaps".to_owned()]));
    assert_eq!(rule.verbs, vec!["get".to_owned()]);

    assert_eq!(
        sim.ok(&[
            "create",
            "rolebinding",
            "reader",
            "--role=reader",
            "--serviceaccount=default:robot",
            "-n",
            "default"
        ])
        .await,
        "rolebinding.rbac.authorization.k8s.io/reader created\n"
    );
    let binding = Api::<RoleBinding>::default_namespaced(client.clone())
        .get("reader")
        .await
        .expect("the binding");
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.role_ref.name, "reader");
    let subject = &binding.subjects.expect("subjects")[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "robot", Some("default"))
    );

    let pdb = [
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=1",
        "-n",
        "default",
    ];
    if sim.minor < 21 {
        // kubectl 1.20 writes policy/v1beta1, which API servers stopped serving in 1.25; a real
        // current cluster refuses it just so.
        let (status, _, stderr) = sim.run(&pdb, None).await;
        assert!(!status.success());
        assert_eq!(
            stderr,
            "error: no matches for kind \"PodDisruptionBudget\" in version \"policy/v1beta1\"\n"
        );
    } else {
        assert_eq!(
            sim.ok(&pdb).await,
            "poddisruptionbudget.policy/web created\n"
        );
        let pdb = Api::<PodDisruptionBudget>::default_namespaced(client.clone())
            .get("web")
            .await
            .expect("the pdb");
        assert_eq!(
            pdb.spec.expect("spec").min_available,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
        );
    }

    // kubectl get all: the kinds in the `all` category, each under its own heading.
    let all = sim.ok(&["get", "all", "-o", "name", "-n", "default"]).await;
    for name in ["deployment.apps/web", "service/web", "job.batch/once"] {
        assert!(all.lines().any(|line| line == name), "{name} in:\n{all}");
    }
}

#[tokio::test]
async fn server_side_dry_runs_change_nothing() {
    let sim = Sim::start().await;
    let configmaps = Api::<ConfigMap>::default_namespaced(sim.client().await);
    let manifest = |value: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"}, "data": {"level": value}})
            .to_string()
    };

    // Nothing is created by a dry-run create or apply.
    assert_eq!(
        sim.ok(&[
            "create",
            "configmap",
            "settings",
            "-n",
            "default",
            "--from-literal=level=1",
            "--dry-run=server"
        ])
        .await,
        "configmap/settings created (server dry run)\n"
    );
    assert_eq!(
        sim.ok_with(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&manifest("1"))
        )
        .await,
        "configmap/settings created (server dry run)\n"
    );
    assert!(configmaps.get_opt("settings").await.expect("get").is_none());

    sim.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "default",
        "--from-literal=level=1",
    ])
    .await;

    // diff shows the change and makes none.
    let (status, diff, stderr) = sim.run(&["diff", "-f", "-"], Some(&manifest("2"))).await;
    assert_eq!(
        status.code(),
        Some(1),
        "diff exits 1 when there is a difference: {stderr}"
    );
    assert!(
        diff.lines().any(|l| l.trim() == "-  level: \"1\""),
        "{diff}"
    );
    assert!(
        diff.lines().any(|l| l.trim() == "+  level: \"2\""),
        "{diff}"
    );
    let level = |cm: ConfigMap| cm.data.unwrap_or_default()["level"].clone();
    assert_eq!(level(configmaps.get("settings").await.expect("get")), "1");

    // A dry-run apply of a change answers with the change, and stores nothing.
    assert_eq!(
        sim.ok_with(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--dry-run=server",
                "-f",
                "-"
            ],
            Some(&manifest("3"))
        )
        .await,
        "configmap/settings serverside-applied (server dry run)\n"
    );
    assert_eq!(level(configmaps.get("settings").await.expect("get")), "1");

    // A dry-run delete says it deleted, and the object survives.
    assert_eq!(
        sim.ok(&[
            "delete",
            "configmap",
            "settings",
            "-n",
            "default",
            "--dry-run=server"
        ])
        .await,
        "configmap \"settings\" deleted (server dry run)\n"
    );
    assert_eq!(level(configmaps.get("settings").await.expect("get")), "1");
}
