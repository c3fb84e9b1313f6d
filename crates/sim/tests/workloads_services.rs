//! Deployments of images mapped to local binaries, Ready through their probes, reached by other pods
//! through a Service's name.

mod common;

use std::time::Duration;

use common::{create_namespace, init, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, LogParams, PostParams};
use kube::{Api, Client};
use testcluster_sim::workloads::{Backoff, WorkloadConfig};
use testcluster_sim::{SimConfig, Simulator};

const NAMESPACE: &str = "shop";

async fn start() -> (Simulator, Client) {
    init();
    let mut workloads = WorkloadConfig {
        backoff: Backoff {
            initial: Duration::from_millis(300),
            max: Duration::from_secs(2),
        },
        sync_interval: Duration::from_millis(300),
        ..WorkloadConfig::default()
    };
    // Without a tag: every tag of the repository runs the demo app.
    workloads.image_binaries.insert(
        "registry.example.com/demo-app",
        env!("CARGO_BIN_EXE_testcluster-sim-demo-app"),
    );
    let sim = Simulator::start(SimConfig {
        workloads,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let client = sim.api().client().await.expect("client");
    create_namespace(&client, NAMESPACE).await;
    (sim, client)
}

async fn create<K>(client: &Client, yaml: &str) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let object: K = yaml_serde::from_str(yaml).expect("manifest");
    Api::<K>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &object)
        .await
        .expect("create")
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: registry.example.com/demo-app:1.0
        args: [serve, "--grpc-listen=$(POD_IP):9090", "--http-listen=$(POD_IP):8080", --ready-after=1500ms]
        env:
        - name: POD_IP
          valueFrom:
            fieldRef: {fieldPath: status.podIP}
        ports:
        - {name: grpc, containerPort: 9090}
        - {name: http, containerPort: 8080}
        readinessProbe:
          grpc: {port: 9090}
          periodSeconds: 1
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
"#;

const CLIENT: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  restartPolicy: Never
  containers:
  - name: fetch
    image: registry.example.com/demo-app:2.0
    args: [fetch, "http://web.shop.svc:80/"]
"#;

#[tokio::test]
async fn a_mapped_image_is_ready_through_its_grpc_probe_and_reached_by_service_name() {
    let (_sim, client) = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    create::<Deployment>(&client, DEPLOYMENT).await;
    create::<Service>(&client, SERVICE).await;

    let deployment = wait_for(&deployments, "web", |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            == Some(1)
    })
    .await;
    let status = deployment.status.expect("status");
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas
        ),
        (Some(1), Some(1), Some(1))
    );

    let web = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items
        .remove(0);
    let web_name = web.metadata.name.clone().expect("name");
    let web_status = web.status.expect("status");
    let pod_ip = web_status.pod_ip.clone().expect("pod IP");
    assert!(
        pod_ip.starts_with("127.") && pod_ip != "127.0.0.1",
        "{pod_ip}"
    );
    let container = &web_status.container_statuses.expect("statuses")[0];
    assert_eq!((container.ready, container.started), (true, Some(true)));
    let ready = web_status
        .conditions
        .expect("conditions")
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "True");
    // Ready came from the probe: the app said NOT_SERVING first.
    let warnings = common::core_warnings(&client, NAMESPACE).await;
    assert!(
        warnings.iter().any(|w| w.reason == "Unhealthy"
            && w.object == web_name
            && w.note
                == "Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"),
        "{warnings:?}"
    );

    // Endpoints and the EndpointSlice name the ready pod.
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), NAMESPACE);
    let pod_ip_for = pod_ip.clone();
    let ep = wait_for(&endpoints, "web", move |e: Option<&Endpoints>| {
        e.and_then(|e| e.subsets.as_ref())
            .and_then(|s| s.first())
            .and_then(|s| s.addresses.as_ref())
            .is_some_and(|a| a.iter().any(|a| a.ip == pod_ip_for))
    })
    .await;
    let subset = &ep.subsets.expect("subsets")[0];
    let port = &subset.ports.as_ref().expect("ports")[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let slice = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .expect("slices")
        .items
        .remove(0);
    assert_eq!(slice.address_type, "IPv4");
    let endpoint = &slice.endpoints[0];
    assert_eq!(endpoint.addresses, vec![pod_ip.clone()]);
    assert_eq!(
        endpoint.conditions.as_ref().and_then(|c| c.ready),
        Some(true)
    );
    assert_eq!(
        endpoint.target_ref.as_ref().and_then(|r| r.name.clone()),
        Some(web_name.clone())
    );

    // Another pod reaches it as http://web.shop.svc:80/.
    create::<Pod>(&client, CLIENT).await;
    let finished = wait_for(&pods, "client", |p: Option<&Pod>| {
        matches!(
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    })
    .await;
    let log = pods
        .logs("client", &LogParams::default())
        .await
        .expect("client log");
    assert_eq!(
        finished.status.and_then(|s| s.phase).as_deref(),
        Some("Succeeded"),
        "{log}"
    );
    assert_eq!(log, format!("hello from {web_name}\n"));
}

#[tokio::test]
async fn service_variables_point_at_the_service_and_the_api_server() {
    let (sim, client) = start().await;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let service = create::<Service>(&client, SERVICE).await;
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a cluster IP");
    assert!(cluster_ip.starts_with("127."), "{cluster_ip}");
    // The proxy serves the Service once the endpoints controller has seen it.
    wait_for(
        &Api::<Endpoints>::namespaced(client.clone(), NAMESPACE),
        "web",
        |e: Option<&Endpoints>| e.is_some(),
    )
    .await;
    drop(services);
    create::<Pod>(
        &client,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: env}
spec:
  restartPolicy: Never
  containers:
  - name: env
    image: busybox:1.36
    command: [sh, -c, 'echo "$WEB_SERVICE_HOST $WEB_PORT_80_TCP_ADDR $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"']
"#,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for(&pods, "env", |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Succeeded")
    })
    .await;
    let log = pods.logs("env", &LogParams::default()).await.expect("log");
    let api = url::Url::parse(&sim.api().https_url()).expect("url");
    assert_eq!(
        log,
        format!(
            "{cluster_ip} {cluster_ip} {}:{}\n",
            api.host_str().expect("host"),
            api.port().expect("port")
        )
    );
}

#[tokio::test]
async fn a_pod_gets_a_token_for_its_service_account() {
    let (sim, client) = start().await;
    create::<k8s_openapi::api::core::v1::ServiceAccount>(
        &client,
        "{apiVersion: v1, kind: ServiceAccount, metadata: {name: reader}}",
    )
    .await;
    let pod = create::<Pod>(
        &client,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sa}
spec:
  serviceAccountName: reader
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1.36
    command: [sh, -c, 'cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo; ls /var/run/secrets/kubernetes.io/serviceaccount']
"#,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for(&pods, "sa", |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Succeeded")
    })
    .await;
    let log = pods.logs("sa", &LogParams::default()).await.expect("log");
    assert_eq!(log, "shop\nca.crt\nnamespace\ntoken\n");

    // The token is one the API server accepts, as the pod's ServiceAccount.
    let uid = pod.metadata.uid.expect("uid");
    let pod_dir = sim
        .workloads()
        .pods_root()
        .join(format!("{NAMESPACE}_sa_{uid}"));
    let token =
        std::fs::read_to_string(pod_dir.join(".volumes/kube-api-access/token")).expect("token");
    let kubeconfig = testcluster_sim::apiserver::kubeconfig_for(
        "pod",
        &sim.api().https_url(),
        sim.api().ca_pem(),
        &token,
    );
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let as_pod = Client::try_from(config).expect("client");
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(as_pod, NAMESPACE);
    // It authenticates as the pod's ServiceAccount, which no Role lets read anything.
    let refused = accounts.get("reader").await.expect_err("no RBAC allows it");
    let kube::Error::Api(status) = refused else {
        panic!("an API answer: {refused}");
    };
    assert_eq!(
        (status.code, status.message.as_str()),
        (
            403,
            "serviceaccounts \"reader\" is forbidden: User \"system:serviceaccount:shop:reader\" cannot get resource \"serviceaccounts\" in API group \"\" in the namespace \"shop\""
        )
    );
    // The same, as a kubeconfig in the pod's HOME (where kube-rs looks before in-cluster files).
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(pod_dir.join(".kube/config"))
            .expect("kubeconfig")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}
