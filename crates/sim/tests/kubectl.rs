//! The real `kubectl` against the standalone `testcluster-sim` binary.
//!
//! The kubectl binary is `$KUBECTL`, else `kubectl` on `PATH`. The project must work with Debian's
//! kubectl 1.20 (package `kubernetes-client`) and a current one, so CI runs this file with both; see
//! the README for how to get Debian's without replacing another `kubectl`.
//!
//! Every kubectl command runs with its own discovery cache directory and a time limit, and its output
//! is compared exactly (only the AGE column of human-readable tables is left out).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};

#[path = "kubectl/conformance.rs"]
mod conformance;

/// The longest any single step may take.
const STEP: Duration = Duration::from_secs(30);

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    kind: Widget
    listKind: WidgetList
    plural: widgets
    singular: widget
    shortNames: [wd]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

fn widget(size: i64) -> String {
    format!(
        r#"
apiVersion: example.com/v1
kind: Widget
metadata:
  name: gear
  namespace: shop
  labels: {{app: gears}}
spec:
  size: {size}
  color: blue
"#
    )
}

/// One `testcluster-sim` process, killed when dropped.
struct Sim {
    child: Child,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    /// Client minor version of `kubectl`, e.g. 20 or 32.
    minor: u32,
}

impl Sim {
    async fn start() -> Sim {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("sim.kubeconfig");
        let log = std::fs::File::create(dir.path().join("sim.log")).expect("log file");
        let out = std::fs::File::create(dir.path().join("sim.out")).expect("out file");
        let child = Command::new(env!("CARGO_BIN_EXE_testcluster-sim"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .env("TESTCLUSTER_SIM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawning testcluster-sim");
        let kubectl = std::env::var_os("KUBECTL")
            .filter(|k| !k.is_empty())
            .map_or_else(|| PathBuf::from("kubectl"), PathBuf::from);
        let mut sim = Sim {
            child,
            dir,
            kubeconfig,
            kubectl,
            minor: 0,
        };
        sim.minor = sim.client_minor().await;

        // The binary renames a complete kubeconfig into place once the server listens.
        let deadline = tokio::time::Instant::now() + STEP;
        while !sim.kubeconfig.exists() {
            if let Ok(Some(status)) = sim.child.try_wait() {
                panic!("testcluster-sim exited early ({status}):\n{}", sim.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no kubeconfig after {STEP:?}:\n{}",
                sim.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&sim.kubeconfig)
                .expect("kubeconfig")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds a token");
        sim
    }

    fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "--- stdout\n{}--- stderr\n{}",
            read("sim.out").unwrap_or_default(),
            read("sim.log").unwrap_or_default()
        )
    }

    async fn client_minor(&self) -> u32 {
        let output = tokio::time::timeout(
            STEP,
            Command::new(&self.kubectl)
                .args(["version", "--client", "-o", "json"])
                .output(),
        )
        .await
        .expect("kubectl version in time")
        .unwrap_or_else(|e| {
            panic!(
                "running {}: {e} (set KUBECTL to a kubectl binary; the README says how to get Debian's)",
                self.kubectl.display()
            )
        });
        let version: Value = serde_json::from_slice(&output.stdout).expect("kubectl version JSON");
        version["clientVersion"]["minor"]
            .as_str()
            .expect("minor")
            .trim_end_matches('+')
            .parse()
            .expect("numeric minor")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.kubectl);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs kubectl to its end: (exit status, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (ExitStatus, String, String) {
        use tokio::io::AsyncWriteExt as _;
        let mut child = self.command(args).spawn().expect("spawning kubectl");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.expect("stdin");
        }
        drop(input);
        let output = tokio::time::timeout(STEP, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in {STEP:?}"))
            .expect("kubectl output");
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs kubectl, which must succeed, and returns its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None).await
    }

    async fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (status, stdout, stderr) = self.run(args, stdin).await;
        assert!(
            status.success(),
            "kubectl {args:?} failed ({status}):\nstdout: {stdout}\nstderr: {stderr}\n{}",
            self.log()
        );
        stdout
    }

    async fn apply(&self, manifest: &str) -> String {
        self.ok_with(&["apply", "-f", "-"], Some(manifest)).await
    }

    /// Starts a long-running kubectl (watch, follow) whose stdout is read line by line.
    fn spawn(&self, args: &[&str]) -> (Child, Lines<BufReader<impl AsyncRead + use<>>>) {
        let mut child = self.command(args).spawn().expect("spawning kubectl");
        drop(child.stdin.take());
        let stdout = child.stdout.take().expect("stdout");
        (child, BufReader::new(stdout).lines())
    }

    async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("client config");
        Client::try_from(config).expect("client")
    }
}

/// The next line of a long-running kubectl's stdout, within [`STEP`].
async fn next_line(lines: &mut Lines<BufReader<impl AsyncRead + Unpin>>) -> Option<String> {
    tokio::time::timeout(STEP, lines.next_line())
        .await
        .expect("a line in time")
        .expect("reading kubectl output")
}

/// A human-readable table without its last (AGE) column, cells separated by one space.
fn without_age(table: &str) -> Vec<String> {
    table
        .lines()
        .map(|line| {
            let mut cells: Vec<&str> = line.split_whitespace().collect();
            cells.pop();
            cells.join(" ")
        })
        .collect()
}

#[tokio::test]
async fn custom_resources_with_kubectl() {
    let sim = Sim::start().await;

    assert_eq!(
        sim.ok(&["create", "namespace", "shop"]).await,
        "namespace/shop created\n"
    );
    assert_eq!(
        sim.apply(CRD).await,
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created\n"
    );
    // A kind unknown a moment ago is found through discovery at once.
    assert_eq!(
        sim.apply(&widget(3)).await,
        "widget.example.com/gear created\n"
    );
    assert_eq!(
        sim.apply(&widget(3)).await,
        "widget.example.com/gear unchanged\n"
    );
    assert_eq!(
        sim.apply(&widget(4)).await,
        "widget.example.com/gear configured\n"
    );

    // Human output: the server's table with the CRD's printer columns; short names work.
    assert_eq!(
        without_age(&sim.ok(&["get", "wd", "-n", "shop"]).await),
        vec!["NAME SIZE", "gear 4"]
    );
    assert_eq!(
        without_age(&sim.ok(&["get", "widgets", "-A", "-l", "app=gears"]).await),
        vec!["NAMESPACE NAME SIZE", "shop gear 4"]
    );
    assert_eq!(
        sim.ok(&[
            "get",
            "widgets",
            "-n",
            "shop",
            "-l",
            "app=other",
            "-o",
            "name"
        ])
        .await,
        ""
    );

    let yaml = sim
        .ok(&["get", "widget", "gear", "-n", "shop", "-o", "yaml"])
        .await;
    let object: Value = yaml_serde::from_str(&yaml).expect("YAML");
    assert_eq!(object["apiVersion"], "example.com/v1");
    assert_eq!(object["kind"], "Widget");
    assert_eq!(object["metadata"]["name"], "gear");
    assert_eq!(object["metadata"]["namespace"], "shop");
    assert_eq!(object["metadata"]["labels"], json!({"app": "gears"}));
    assert_eq!(object["metadata"]["generation"], 2);
    assert!(
        object["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    let last_applied: Value = serde_json::from_str(
        object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .expect("last-applied annotation"),
    )
    .expect("last-applied JSON");
    assert_eq!(last_applied["spec"], json!({"size": 4, "color": "blue"}));
    assert_eq!(object["spec"], json!({"size": 4, "color": "blue"}));

    // get -w: the current state, then each change as it happens.
    let (mut watch, mut lines) = sim.spawn(&[
        "get",
        "widget",
        "gear",
        "-n",
        "shop",
        "-w",
        "-o",
        "jsonpath={.metadata.name} size={.spec.size}{\"\\n\"}",
    ]);
    assert_eq!(next_line(&mut lines).await.as_deref(), Some("gear size=4"));
    assert_eq!(
        sim.ok(&[
            "patch",
            "widget",
            "gear",
            "-n",
            "shop",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":5}}"#
        ])
        .await,
        "widget.example.com/gear patched\n"
    );
    assert_eq!(next_line(&mut lines).await.as_deref(), Some("gear size=5"));
    watch.kill().await.expect("stopping the watch");

    // wait --for=condition=Ready: satisfied once the status says so, not before.
    let (mut wait, mut wait_lines) = sim.spawn(&[
        "wait",
        "--for=condition=Ready",
        "widget/gear",
        "-n",
        "shop",
        "--timeout=30s",
    ]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        wait.try_wait().expect("wait status").is_none(),
        "kubectl wait ended before the condition was set"
    );
    let status = json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "Done", "message": "all set",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }]}});
    if sim.minor >= 24 {
        // kubectl patch --subresource exists since 1.24.
        assert_eq!(
            sim.ok(&[
                "patch",
                "widget",
                "gear",
                "-n",
                "shop",
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ])
            .await,
            "widget.example.com/gear patched\n"
        );
    } else {
        let widgets: Api<DynamicObject> = Api::namespaced_with(
            sim.client().await,
            "shop",
            &ApiResource {
                group: "example.com".into(),
                version: "v1".into(),
                api_version: "example.com/v1".into(),
                kind: "Widget".into(),
                plural: "widgets".into(),
            },
        );
        widgets
            .patch_status("gear", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("status patch");
    }
    assert_eq!(
        next_line(&mut wait_lines).await.as_deref(),
        Some("widget.example.com/gear condition met")
    );
    let waited = tokio::time::timeout(STEP, wait.wait())
        .await
        .expect("kubectl wait ends")
        .expect("wait status");
    assert!(waited.success(), "kubectl wait: {waited}");
    // A status write leaves the spec and its generation alone.
    assert_eq!(
        sim.ok(&[
            "get",
            "widget",
            "gear",
            "-n",
            "shop",
            "-o",
            "jsonpath={.metadata.generation} {.spec.size} {.status.conditions[0].reason}",
        ])
        .await,
        "3 5 Done"
    );

    // Server-side apply creates what is missing.
    let bolt = widget(1).replace("name: gear", "name: bolt");
    assert_eq!(
        sim.ok_with(&["apply", "--server-side", "-f", "-"], Some(&bolt))
            .await,
        "widget.example.com/bolt serverside-applied\n"
    );
    assert_eq!(
        sim.ok(&["get", "widgets", "-n", "shop", "-o", "name"])
            .await,
        "widget.example.com/bolt\nwidget.example.com/gear\n"
    );

    assert_eq!(
        sim.ok(&["delete", "widgets", "--all", "-n", "shop"]).await,
        "widget.example.com \"bolt\" deleted\nwidget.example.com \"gear\" deleted\n"
    );
    let (status, stdout, stderr) = sim
        .run(&["get", "widget", "gear", "-n", "shop"], None)
        .await;
    assert_eq!(
        (status.code(), stdout.as_str(), stderr.as_str()),
        (
            Some(1),
            "",
            "Error from server (NotFound): widgets.example.com \"gear\" not found\n"
        )
    );
    assert_eq!(
        sim.ok(&["delete", "crd", "widgets.example.com"]).await,
        "customresourcedefinition.apiextensions.k8s.io \"widgets.example.com\" deleted\n"
    );
    assert_eq!(
        sim.ok(&["delete", "namespace", "shop"]).await,
        "namespace \"shop\" deleted\n"
    );
}

#[tokio::test]
async fn logs_follow_streams_until_the_container_exits() {
    let sim = Sim::start().await;
    let gate = sim.dir.path().join("go");
    let script = format!(
        "echo first; while [ ! -e {} ]; do sleep 0.1; done; echo second; echo third",
        gate.display()
    );
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "talker", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}],
        },
    });
    assert_eq!(sim.apply(&pod.to_string()).await, "pod/talker created\n");
    assert_eq!(
        sim.ok(&[
            "wait",
            "--for=condition=Ready",
            "pod/talker",
            "--timeout=30s"
        ])
        .await,
        "pod/talker condition met\n"
    );

    let (mut logs, mut lines) = sim.spawn(&["logs", "-f", "talker"]);
    // Output written so far arrives while the container still runs...
    assert_eq!(next_line(&mut lines).await.as_deref(), Some("first"));
    assert!(logs.try_wait().expect("logs status").is_none());
    std::fs::write(&gate, "").expect("opening the gate");
    // ...then the rest, and the stream ends with the container.
    assert_eq!(next_line(&mut lines).await.as_deref(), Some("second"));
    assert_eq!(next_line(&mut lines).await.as_deref(), Some("third"));
    assert_eq!(next_line(&mut lines).await, None);
    let ended = tokio::time::timeout(STEP, logs.wait())
        .await
        .expect("kubectl logs ends")
        .expect("logs status");
    assert!(ended.success(), "kubectl logs -f: {ended}");

    assert_eq!(
        sim.ok(&["logs", "talker", "-c", "main"]).await,
        "first\nsecond\nthird\n"
    );
    assert_eq!(
        sim.ok(&["get", "pod", "talker", "-o", "jsonpath={.status.phase}"])
            .await,
        "Succeeded"
    );
    assert_eq!(
        sim.ok(&["delete", "pod", "talker"]).await,
        "pod \"talker\" deleted\n"
    );
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: busybox:1.36
        command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
"#;

#[tokio::test]
async fn deployments_scale_and_roll_out() {
    let sim = Sim::start().await;
    assert_eq!(
        sim.apply(DEPLOYMENT).await,
        "deployment.apps/web created
"
    );
    let rolled_out = "deployment \"web\" successfully rolled out\n";
    let status = ["rollout", "status", "deployment/web", "--timeout=30s"];
    assert!(sim.ok(&status).await.ends_with(rolled_out));

    assert_eq!(
        sim.ok(&["scale", "deployment", "web", "--replicas=3"])
            .await,
        "deployment.apps/web scaled\n"
    );
    assert!(sim.ok(&status).await.ends_with(rolled_out));
    assert_eq!(
        sim.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.replicas} {.status.updatedReplicas} {.status.readyReplicas} {.status.availableReplicas}"
        ])
        .await,
        "3 3 3 3"
    );

    // A new pod template rolls out a new ReplicaSet; the old one is scaled to zero.
    sim.ok(&["set", "env", "deployment/web", "COLOR=blue"])
        .await;
    assert!(sim.ok(&status).await.ends_with(rolled_out));
    let client = sim.client().await;
    let replica_sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), "default");
    let mut sets: Vec<(String, i32, String)> = replica_sets
        .list(&Default::default())
        .await
        .expect("replica sets")
        .items
        .into_iter()
        .map(|rs| {
            let revision = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision").cloned())
                .unwrap_or_default();
            let hash = rs
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash").cloned())
                .unwrap_or_default();
            let name = rs.metadata.name.clone().unwrap_or_default();
            assert_eq!(name, format!("web-{hash}"));
            (
                revision,
                rs.spec.and_then(|s| s.replicas).unwrap_or(-1),
                name,
            )
        })
        .collect();
    sets.sort();
    assert_eq!(
        sets.iter()
            .map(|(r, n, _)| (r.as_str(), *n))
            .collect::<Vec<_>>(),
        vec![("1", 0), ("2", 3)],
        "{sets:?}"
    );
    assert_eq!(
        sim.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision} {.status.conditions[?(@.type==\"Progressing\")].reason} {.status.conditions[?(@.type==\"Available\")].reason}"
        ])
        .await,
        "2 NewReplicaSetAvailable MinimumReplicasAvailable"
    );
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, "default");
    let new_hash = sets[1].2.trim_start_matches("web-").to_owned();
    let listed = pods.list(&Default::default()).await.expect("pods").items;
    let live: Vec<_> = listed
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert!(
        live.iter().all(|p| p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"))
            == Some(&new_hash)),
        "{live:?}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_simulator_and_removes_its_kubeconfig() {
    let mut sim = Sim::start().await;
    assert_eq!(
        sim.ok(&["get", "namespace", "default", "-o", "name"]).await,
        "namespace/default\n"
    );
    let stdout = std::fs::read_to_string(sim.dir.path().join("sim.out")).expect("stdout");
    let kubeconfig = std::fs::read_to_string(&sim.kubeconfig).expect("kubeconfig");
    let config: Value = yaml_serde::from_str(&kubeconfig).expect("kubeconfig YAML");
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("server");
    let token = config["users"][0]["user"]["token"].as_str().expect("token");
    assert!(
        stdout.contains(&format!("API server:    {server}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("kubeconfig:    {}\n", sim.kubeconfig.display())),
        "{stdout}"
    );
    assert!(!sim.log().contains(token), "the token was printed");

    let pid = sim.child.id().expect("pid");
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = tokio::time::timeout(STEP, sim.child.wait())
        .await
        .expect("the simulator stops")
        .expect("exit status");
    assert!(status.success(), "{status}:\n{}", sim.log());
    assert!(!Path::new(&sim.kubeconfig).exists());
}

const READER: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: front}}
- {apiVersion: v1, kind: Namespace, metadata: {name: back}}
- {apiVersion: v1, kind: ServiceAccount, metadata: {name: reader, namespace: front}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: settings, namespace: front}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: settings, namespace: back}}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: Role
  metadata: {name: reader, namespace: front}
  rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: reader, namespace: front}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
  subjects: [{kind: ServiceAccount, name: reader, namespace: front}]
"#;

#[tokio::test]
async fn a_service_account_token_gets_the_real_forbidden_error() {
    let sim = Sim::start().await;
    sim.apply(READER).await;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(sim.client().await, "front");
    let token = accounts
        .create_token_request(
            "reader",
            &Default::default(),
            &k8s_openapi::api::authentication::v1::TokenRequest::default(),
        )
        .await
        .expect("token request")
        .status
        .expect("token")
        .token;
    let as_reader = |args: &[&'static str]| -> Vec<&str> {
        let mut all = vec!["--token", token.as_str()];
        all.extend_from_slice(args);
        all
    };
    assert_eq!(
        sim.ok(&as_reader(&[
            "get",
            "configmap",
            "settings",
            "-n",
            "front",
            "-o",
            "name"
        ]))
        .await,
        "configmap/settings\n"
    );
    let (status, stdout, stderr) = sim
        .run(
            &as_reader(&["get", "configmap", "settings", "-n", "back"]),
            None,
        )
        .await;
    assert_eq!(status.code(), Some(1), "{stdout}");
    assert_eq!(
        stderr,
        "Error from server (Forbidden): configmaps \"settings\" is forbidden: User \"system:serviceaccount:front:reader\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"back\"\n"
    );
}
