//! Who may call the broker, and what each caller may see and do: GitHub Actions tokens verified
//! against a local JWKS server with its own keys, static tokens from a Secret, ServiceAccount
//! tokens through the simulator's TokenReview, and the tenancy policy from a ConfigMap.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use serde_json::json;
use testcluster_api::v1 as api;
use testcluster_api::v1::log_service_client::LogServiceClient;
use testcluster_api::v1::test_cluster_service_client::TestClusterServiceClient;
use testcluster_auth::AuthArgs;
use testcluster_auth::client::{AuthorizedChannel, Bearer};
use testcluster_resources::TestClusterGKE;
use testcluster_resources::metadata::{
    ANNOTATION_CREATED_BY, ANNOTATION_GITHUB_REPO_NAME, ANNOTATION_GITHUB_REPO_OWNER,
    ANNOTATION_TENANT, LABEL_GITHUB_COMMIT_HASH,
};
use testcluster_service::metrics::Metrics;
use testcluster_sim::{SimConfig, Simulator};
use testcluster_testkit as testkit;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

mod fakes;
use fakes::FakeProvisioner;

const NAMESPACE: &str = "test-clusters";
const SYSTEM: &str = "testcluster-system";
const AUDIENCE: &str = "testcluster.example";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// An OIDC issuer of the test's own: its JWKS at `/.well-known/jwks`, keys switchable, fetches
/// counted.
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
}

/// A signing key and its kid.
struct Key {
    kid: String,
    encoding: EncodingKey,
}

impl Key {
    fn new(kid: &str) -> Key {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        Key {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, Algorithm::ES256).expect("jwk");
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    /// A token signed by this key, claiming to be kid `kid`.
    fn sign_as(&self, kid: &str, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}

type IssuerState = (Arc<Mutex<Vec<Jwk>>>, Arc<AtomicUsize>);

async fn jwks(State((keys, fetches)): State<IssuerState>) -> axum::Json<JwkSet> {
    fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(JwkSet {
        keys: keys.lock().clone(),
    })
}

impl Issuer {
    async fn start(keys: Vec<Jwk>) -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/.well-known/jwks", axum::routing::get(jwks))
            .with_state((keys.clone(), fetches.clone()));
        tokio::spawn(axum::serve(listener, app).into_future());
        Issuer { url, keys, fetches }
    }

    /// Claims of a valid token from this issuer for the broker's audience.
    fn claims(&self) -> serde_json::Value {
        let now = now();
        json!({
            "iss": self.url, "aud": AUDIENCE, "iat": now, "nbf": now - 5, "exp": now + 600,
            "sub": "repo:cilium/cilium:ref:refs/heads/main",
            "repository": "cilium/cilium", "repository_owner": "cilium",
            "ref": "refs/heads/main", "sha": COMMIT, "workflow": "conformance", "actor": "octocat",
        })
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn with(mut claims: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    claims[key] = value;
    claims
}

struct Env {
    _sim: Simulator,
    _dir: tempfile::TempDir,
    client: kube::Client,
    channel: Channel,
    stop: CancellationToken,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The simulator, and the broker authenticating with `auth` (its Secret and ConfigMap names in
/// [`SYSTEM`], created by `setup` before the broker starts).
async fn start<F: std::future::Future<Output = ()>>(
    auth: AuthArgs,
    setup: impl FnOnce(kube::Client) -> F,
) -> Env {
    testkit::init();
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let client = testcluster_service::kube_client(Some(&kubeconfig))
        .await
        .expect("client");
    testkit::install_crd(&client, &testcluster_resources::crd::crd()).await;
    for namespace in [NAMESPACE, SYSTEM, "other"] {
        testkit::create_namespace(&client, namespace).await;
    }
    setup(client.clone()).await;
    let stop = CancellationToken::new();
    let provisioner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let provisioner_address = provisioner.local_addr().expect("address");
    let server = testcluster_service::grpc::GrpcServer::new(&Metrics::new()).add_service(
        testcluster_api::internal::v1::provisioner_service_server::ProvisionerServiceServer::new(
            FakeProvisioner,
        ),
    );
    tokio::spawn(server.serve(provisioner, stop.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let settings = testcluster_broker::Settings {
        provisioner_endpoint: format!("http://{provisioner_address}"),
        // Nothing listens there: logs of visible clusters answer UNAVAILABLE, invisible NOT_FOUND.
        logview_endpoint: "http://127.0.0.1:9".to_owned(),
        auth,
        ..testcluster_broker::Settings::default()
    };
    tokio::spawn(testcluster_broker::run(
        client.clone(),
        listener,
        settings,
        Metrics::new(),
        stop.clone(),
    ));
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    Env {
        _sim: sim,
        _dir: dir,
        client,
        channel,
        stop,
    }
}

impl Env {
    fn as_(&self, token: Option<&str>) -> AuthorizedChannel {
        Bearer::new(token).expect("token").on(self.channel.clone())
    }

    fn broker(&self, token: Option<&str>) -> TestClusterServiceClient<AuthorizedChannel> {
        TestClusterServiceClient::new(self.as_(token))
    }

    async fn list(&self, token: Option<&str>) -> Result<Vec<String>, tonic::Status> {
        let response = self
            .broker(token)
            .list_test_clusters(api::ListTestClustersRequest::default())
            .await?;
        Ok(response
            .into_inner()
            .test_clusters
            .into_iter()
            .map(|c| c.name)
            .collect())
    }

    async fn create(
        &self,
        token: Option<&str>,
        namespace: &str,
        name: &str,
        nodes: i32,
    ) -> Result<api::TestCluster, tonic::Status> {
        let request = api::CreateTestClusterRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            spec: Some(api::TestClusterSpec {
                nodes: Some(nodes),
                ..Default::default()
            }),
            github: Some(api::GitHubInfo {
                repo_owner: "someone-else".to_owned(),
                repo_name: "elsewhere".to_owned(),
                commit_hash: "ffffffff".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let response = self.broker(token).create_test_cluster(request).await?;
        Ok(response.into_inner().test_cluster.expect("test cluster"))
    }
}

fn unauthenticated(result: Result<Vec<String>, tonic::Status>) -> String {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    status.message().to_owned()
}

#[tokio::test]
async fn github_actions_tokens_are_verified_against_the_issuers_keys() {
    let first = Key::new("first");
    let issuer = Issuer::start(vec![first.jwk()]).await;
    let auth = AuthArgs {
        oidc_audience: Some(AUDIENCE.to_owned()),
        oidc_issuer: Some(issuer.url.clone()),
        oidc_jwks_min_refresh: Duration::from_secs(300),
        ..AuthArgs::default()
    };
    let env = start(auth, |_| async {}).await;
    let valid = issuer.claims();

    assert!(
        unauthenticated(env.list(None).await).starts_with("no credentials"),
        "a call without a token"
    );
    assert_eq!(
        unauthenticated(env.list(Some("not-a-token")).await),
        "the bearer token is not a known static token or a GitHub Actions token from the trusted issuer"
    );
    // Another issuer's token is not even tried against this issuer's keys.
    let elsewhere = first.sign(&with(valid.clone(), "iss", json!("https://issuer.example")));
    assert_eq!(
        unauthenticated(env.list(Some(&elsewhere)).await),
        "the bearer token is not a known static token or a GitHub Actions token from the trusted issuer"
    );
    let refused = |reason: &str| format!("GitHub Actions token refused: {reason}");
    let audience = first.sign(&with(valid.clone(), "aud", json!("someone-else")));
    assert_eq!(
        unauthenticated(env.list(Some(&audience)).await),
        refused("the token is for another audience")
    );
    let forged = Key::new("forger").sign_as("first", &valid);
    assert_eq!(
        unauthenticated(env.list(Some(&forged)).await),
        refused("the token's signature does not verify")
    );
    let expired = first.sign(&with(valid.clone(), "exp", json!(now() - 3600)));
    assert_eq!(
        unauthenticated(env.list(Some(&expired)).await),
        refused("the token has expired")
    );
    let early = first.sign(&with(valid.clone(), "nbf", json!(now() + 3600)));
    assert_eq!(
        unauthenticated(env.list(Some(&early)).await),
        refused("the token is not valid yet")
    );
    let no_expiry = {
        let mut claims = valid.clone();
        claims.as_object_mut().expect("object").remove("exp");
        first.sign(&claims)
    };
    assert_eq!(
        unauthenticated(env.list(Some(&no_expiry)).await),
        refused("the token lacks the exp claim")
    );

    // A valid token is accepted; the repository and commit come from its claims, not the request.
    let token = first.sign(&valid);
    let created = env
        .create(Some(&token), NAMESPACE, "from-actions", 1)
        .await
        .expect("created");
    let object = Api::<TestClusterGKE>::namespaced(env.client.clone(), NAMESPACE)
        .get(&created.name)
        .await
        .expect("object");
    let annotations = object.metadata.annotations.clone().unwrap_or_default();
    let labels = object.metadata.labels.clone().unwrap_or_default();
    assert_eq!(annotations[ANNOTATION_GITHUB_REPO_OWNER], "cilium");
    assert_eq!(annotations[ANNOTATION_GITHUB_REPO_NAME], "cilium");
    assert_eq!(labels[LABEL_GITHUB_COMMIT_HASH], COMMIT);
    assert_eq!(
        annotations[ANNOTATION_CREATED_BY],
        "github:cilium/cilium@refs/heads/main"
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "keys are cached");

    // The issuer rotates: only `second` from now on. A token naming it makes the broker fetch
    // the keys once; the withdrawn key's tokens then fail, and made-up kids fetch nothing more.
    let second = Key::new("second");
    *issuer.keys.lock() = vec![second.jwk()];
    let rotated = second.sign(&valid);
    assert_eq!(
        env.list(Some(&rotated))
            .await
            .expect("the new key is fetched"),
        ["from-actions"]
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
    assert_eq!(
        unauthenticated(env.list(Some(&token)).await),
        refused("the token's key \"first\" is not among the issuer's keys")
    );
    let made_up = second.sign_as("made-up", &valid);
    assert_eq!(
        unauthenticated(env.list(Some(&made_up)).await),
        refused("the token's key \"made-up\" is not among the issuer's keys")
    );
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        2,
        "unknown kids refresh at most once per interval"
    );
}

/// Static tokens: alice and carol in tenant `a`... see [`POLICY`].
const TOKENS: [(&str, &str); 3] = [
    ("alice", "tc_alice-secret"),
    ("bob", "tc_bob-secret"),
    ("mallory", "tc_mallory-secret"),
];

const POLICY: &str = r#"
tenants:
- name: a
  match:
  - {staticToken: alice}
  - {serviceAccount: ci/runner}
  namespaces: [test-clusters]
  maxConcurrentClusters: 1
- name: b
  match:
  - {staticToken: bob}
  namespaces: [test-clusters]
  templates: [basic]
  maxNodesPerCluster: 2
  maxTotalNodes: 3
"#;

async fn tenancy_setup(client: kube::Client) {
    let data = TOKENS
        .iter()
        .map(|(name, token)| {
            let entry = testcluster_auth::static_tokens::digest_entry(token);
            (name.to_string(), ByteString(entry.into_bytes()))
        })
        .collect::<BTreeMap<_, _>>();
    let mut secret = Secret {
        data: Some(data),
        ..Secret::default()
    };
    secret.metadata.name = Some("tokens".to_owned());
    Api::<Secret>::namespaced(client.clone(), SYSTEM)
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let mut policy = ConfigMap {
        data: Some(BTreeMap::from([(
            "policy.yaml".to_owned(),
            POLICY.to_owned(),
        )])),
        ..ConfigMap::default()
    };
    policy.metadata.name = Some("policy".to_owned());
    Api::<ConfigMap>::namespaced(client, SYSTEM)
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
}

fn quota(status: &tonic::Status) -> (String, String) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let failure = status.get_details_quota_failure().expect("a QuotaFailure");
    let violation = failure.violations.first().expect("a violation");
    (violation.subject.clone(), violation.description.clone())
}

#[tokio::test]
async fn tenants_see_and_touch_only_their_own_clusters() {
    let auth = AuthArgs {
        static_tokens_secret: Some(format!("{SYSTEM}/tokens")),
        token_review: true,
        policy_config_map: Some(format!("{SYSTEM}/policy")),
        ..AuthArgs::default()
    };
    let env = start(auth, tenancy_setup).await;
    let [alice, bob, mallory] = TOKENS.map(|(_, token)| Some(token));

    // A cluster made with kubectl has no tenant: no tenant here sees it (none has seesUntenanted).
    Api::<TestClusterGKE>::namespaced(env.client.clone(), NAMESPACE)
        .create(
            &PostParams::default(),
            &TestClusterGKE::new("by-kubectl", Default::default()),
        )
        .await
        .expect("created with kubectl's rights");
    let a1 = env.create(alice, NAMESPACE, "a1", 1).await.expect("a1");
    let object = Api::<TestClusterGKE>::namespaced(env.client.clone(), NAMESPACE)
        .get("a1")
        .await
        .expect("object");
    let annotations = object.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations[ANNOTATION_TENANT], "a");
    assert_eq!(annotations[ANNOTATION_CREATED_BY], "token:alice");
    assert_eq!(
        annotations[ANNOTATION_GITHUB_REPO_OWNER], "someone-else",
        "without claims, the request's GitHub metadata stands"
    );

    // Bob (tenant b) cannot see or touch a1 on any RPC: it does not exist for him.
    let not_found = |result: Result<(), tonic::Status>, rpc: &str| {
        let status = result.expect_err(rpc);
        assert_eq!(status.code(), Code::NotFound, "{rpc}: {status:?}");
        assert_eq!(
            status.message(),
            "TestClusterGKE test-clusters/a1 not found",
            "{rpc}"
        );
    };
    let named = |namespace: &str| (namespace.to_owned(), a1.name.clone());
    let (namespace, name) = named(NAMESPACE);
    let mut as_bob = env.broker(bob);
    not_found(
        as_bob
            .get_test_cluster(api::GetTestClusterRequest {
                namespace: namespace.clone(),
                name: name.clone(),
            })
            .await
            .map(drop),
        "Get",
    );
    not_found(
        as_bob
            .watch_test_cluster(api::WatchTestClusterRequest {
                namespace: namespace.clone(),
                name: name.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        "Watch",
    );
    not_found(
        as_bob
            .delete_test_cluster(api::DeleteTestClusterRequest {
                namespace: namespace.clone(),
                name: name.clone(),
            })
            .await
            .map(drop),
        "Delete",
    );
    not_found(
        LogServiceClient::new(env.as_(bob))
            .stream_logs(api::StreamLogsRequest {
                namespace: namespace.clone(),
                name: name.clone(),
                follow: true,
            })
            .await
            .map(drop),
        "StreamLogs",
    );
    assert_eq!(env.list(bob).await.expect("list"), Vec::<String>::new());
    assert_eq!(env.list(alice).await.expect("list"), ["a1"]);
    // Alice reaches her logs (logview is down here, so UNAVAILABLE: past the visibility check).
    let logs = LogServiceClient::new(env.as_(alice))
        .stream_logs(api::StreamLogsRequest {
            namespace: namespace.clone(),
            name: name.clone(),
            follow: false,
        })
        .await
        .expect_err("logview is down");
    assert_eq!(logs.code(), Code::Unavailable, "{logs:?}");

    // Quotas, each named.
    let over = env
        .create(alice, NAMESPACE, "a2", 1)
        .await
        .expect_err("over");
    assert_eq!(
        quota(&over),
        (
            "tenant:a".to_owned(),
            "maxConcurrentClusters: 1 test clusters live, at most 1".to_owned()
        )
    );
    let big = env
        .create(bob, NAMESPACE, "b0", 3)
        .await
        .expect_err("too big");
    assert_eq!(
        quota(&big),
        (
            "tenant:b".to_owned(),
            "maxNodesPerCluster: 3 nodes asked, at most 2 per cluster".to_owned()
        )
    );
    env.create(bob, NAMESPACE, "b1", 2).await.expect("b1");
    let total = env.create(bob, NAMESPACE, "b2", 2).await.expect_err("over");
    assert_eq!(
        quota(&total),
        (
            "tenant:b".to_owned(),
            "maxTotalNodes: 2 nodes in use and 2 asked, at most 3 in all".to_owned()
        )
    );
    let elsewhere = env.create(bob, "other", "b3", 1).await.expect_err("denied");
    assert_eq!(elsewhere.code(), Code::PermissionDenied);
    assert_eq!(
        elsewhere.message(),
        "tenant \"b\" (token:bob) may not create test clusters in namespace \"other\"; it may in: test-clusters"
    );

    // A known token of someone in no tenant, and an unknown token.
    let nobody = env.list(mallory).await.expect_err("no tenant");
    assert_eq!(nobody.code(), Code::PermissionDenied);
    assert_eq!(
        nobody.message(),
        "token:mallory belongs to no tenant of the testcluster policy"
    );
    let unknown = env.list(Some("tc_guess")).await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::Unauthenticated);

    // A ServiceAccount's token, accepted through the simulator's TokenReview: tenant a.
    testkit::create_namespace(&env.client, "ci").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(env.client.clone(), "ci");
    let mut account = ServiceAccount::default();
    account.metadata.name = Some("runner".to_owned());
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("service account");
    let minted = accounts
        .create_token_request(
            "runner",
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    expiration_seconds: Some(600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .expect("token");
    let sa_token = minted.status.expect("status").token;
    assert_eq!(env.list(Some(&sa_token)).await.expect("list"), ["a1"]);

    // The policy is reloaded live: tenant a gets room for a second cluster.
    Api::<ConfigMap>::namespaced(env.client.clone(), SYSTEM)
        .patch(
            "policy",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"policy.yaml": POLICY.replace("maxConcurrentClusters: 1", "maxConcurrentClusters: 2")}})),
        )
        .await
        .expect("patch policy");
    testkit::within("the new policy to apply", async {
        loop {
            match env.create(alice, NAMESPACE, "a2", 1).await {
                Ok(_) => break,
                Err(status) if status.code() == Code::ResourceExhausted => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(status) => panic!("{status:?}"),
            }
        }
    })
    .await;
}
