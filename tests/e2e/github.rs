//! Commit statuses on GitHub (issue 10, done-when 2), against a local GitHub API test server that
//! records every request: the exact sequence for a succeeding, a failing and an infrastructure-error
//! run (state, description within 140 characters, target_url, context, token), and, with GitHub
//! down or rate limited, a run that completes all the same and whose statuses arrive once GitHub is
//! back.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tcctl::suite::{Component, GitHubConfig, SuiteConfig};
use testcluster_api::v1 as api;
use tokio::sync::watch;

use crate::support::{Env, HELLO, NAMESPACE, TIMEOUT, job_request, start_with};

const TOKEN: &str = "ghp_test-token";

/// How the test server answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Up,
    /// 503, as GitHub does when it is down.
    Down,
    /// 403 with the primary rate limit spent, resetting a second from now.
    RateLimited,
}

/// One request to `POST /repos/{owner}/{repo}/statuses/{sha}` that the server took.
#[derive(Clone, Debug, PartialEq)]
struct Created {
    repo: String,
    sha: String,
    authorization: String,
    body: Value,
}

#[derive(Default)]
struct Recorded {
    created: Vec<Created>,
    refused: usize,
}

#[derive(Clone)]
struct GitHub {
    recorded: Arc<Mutex<Recorded>>,
    mode: Arc<Mutex<Mode>>,
    changes: watch::Sender<usize>,
}

async fn create_status(
    State(github): State<GitHub>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mode = *github.mode.lock();
    let answer = match mode {
        Mode::Up => {
            let authorization = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            github.recorded.lock().created.push(Created {
                repo: format!("{owner}/{repo}"),
                sha,
                authorization,
                body: body.clone(),
            });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Mode::Down => {
            github.recorded.lock().refused += 1;
            (StatusCode::SERVICE_UNAVAILABLE, "unicorn").into_response()
        }
        Mode::RateLimited => {
            github.recorded.lock().refused += 1;
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                + 1;
            let message = json!({"message": "API rate limit exceeded"});
            (
                StatusCode::FORBIDDEN,
                [
                    ("x-ratelimit-remaining", "0".to_owned()),
                    ("x-ratelimit-reset", reset.to_string()),
                ],
                Json(message),
            )
                .into_response()
        }
    };
    github.changes.send_modify(|n| *n += 1);
    answer
}

impl GitHub {
    async fn start(mode: Mode) -> (GitHub, String) {
        let github = GitHub {
            recorded: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
            changes: watch::channel(0).0,
        };
        let app = axum::Router::new()
            .route("/repos/{owner}/{repo}/statuses/{sha}", post(create_status))
            .with_state(github.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (github, url)
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock() = mode;
    }

    fn created_for(&self, sha: &str) -> Vec<Created> {
        let recorded = self.recorded.lock();
        recorded
            .created
            .iter()
            .filter(|c| c.sha == sha)
            .cloned()
            .collect()
    }

    /// Waits until the statuses of `sha` end with a final state, and returns them.
    async fn until_final(&self, sha: &str) -> Vec<Created> {
        let mut changes = self.changes.subscribe();
        tokio::time::timeout(TIMEOUT, async {
            loop {
                let created = self.created_for(sha);
                if created
                    .last()
                    .is_some_and(|c| c.body["state"] != json!("pending"))
                {
                    return created;
                }
                changes.changed().await.expect("server running");
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no final status for {sha}: {:?}", self.created_for(sha)))
    }

    /// Waits until GitHub refused at least one request.
    async fn until_refused(&self) {
        let mut changes = self.changes.subscribe();
        tokio::time::timeout(TIMEOUT, async {
            while self.recorded.lock().refused == 0 {
                changes.changed().await.expect("server running");
            }
        })
        .await
        .expect("a refused request");
    }
}

async fn suite_with_github(mode: Mode) -> (Env, GitHub) {
    let (github, api_url) = GitHub::start(mode).await;
    let env = start_with(SuiteConfig {
        github: Some(GitHubConfig {
            api_url,
            token: TOKEN.to_owned(),
        }),
        ..SuiteConfig::default()
    })
    .await;
    (env, github)
}

fn with_commit(
    mut request: api::CreateTestClusterRequest,
    sha: &str,
    context: &str,
) -> api::CreateTestClusterRequest {
    request.github = Some(api::GitHubInfo {
        commit_hash: sha.to_owned(),
        repo_owner: "cilium".to_owned(),
        repo_name: "cilium".to_owned(),
        context: context.to_owned(),
    });
    request
}

/// (state, description) of each status, after checking what every one of them shares.
fn states(env: &Env, name: &str, context: &str, created: &[Created]) -> Vec<(String, String)> {
    let target_url = format!("{}/{NAMESPACE}/{name}", env.suite.logs_base_url());
    created
        .iter()
        .map(|c| {
            assert_eq!(c.repo, "cilium/cilium");
            assert_eq!(c.authorization, format!("Bearer {TOKEN}"));
            assert_eq!(c.body["target_url"], json!(target_url));
            assert_eq!(c.body["context"], json!(context));
            let description = c.body["description"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(description.chars().count() <= 140, "{description}");
            (
                c.body["state"].as_str().unwrap_or_default().to_owned(),
                description,
            )
        })
        .collect()
}

fn pair(state: &str, description: String) -> (String, String) {
    (state.to_owned(), description)
}

#[tokio::test]
async fn statuses_follow_a_succeeding_a_failing_and_an_infrastructure_error_run() {
    let (env, github) = suite_with_github(Mode::Up).await;

    // Succeeding, with the seed's default context.
    let created = env
        .create(with_commit(job_request("gh-ok", 1, HELLO), "a1", ""))
        .await;
    let run = env.follow(&created.name, &created.resource_version).await;
    let cluster = run.status().cluster_name;
    let statuses = github.until_final("a1").await;
    assert_eq!(
        states(
            &env,
            "gh-ok",
            "gke-test-cluster-operator:test-clusters/gh-ok",
            &statuses
        ),
        [
            pair("pending", format!("Provisioning test cluster {cluster}")),
            pair("pending", format!("Running the test job on {cluster}")),
            pair("success", "Job succeeded (exit code 0)".to_owned()),
        ]
    );

    // Failing, with the context from the request (the annotation).
    let created = env
        .create(with_commit(
            job_request("gh-fail", 1, &["sh", "-c", "exit 3"]),
            "b2",
            "ci/gke-fail",
        ))
        .await;
    let run = env.follow(&created.name, &created.resource_version).await;
    let cluster = run.status().cluster_name;
    let statuses = github.until_final("b2").await;
    assert_eq!(
        states(&env, "gh-fail", "ci/gke-fail", &statuses),
        [
            pair("pending", format!("Provisioning test cluster {cluster}")),
            pair("pending", format!("Running the test job on {cluster}")),
            pair(
                "failure",
                "Error (exit code 3): container \"runner\" exited with code 3".to_owned()
            ),
        ]
    );

    // An infrastructure error: the zone is out of capacity.
    env.suite
        .simulator()
        .zone_faults()
        .set_stockout("europe-west2-b", true);
    let created = env
        .create(with_commit(job_request("gh-error", 1, HELLO), "c3", ""))
        .await;
    let run = env.follow(&created.name, &created.resource_version).await;
    let cluster = run.status().cluster_name;
    let statuses = github.until_final("c3").await;
    let states = states(
        &env,
        "gh-error",
        "gke-test-cluster-operator:test-clusters/gh-error",
        &statuses,
    );
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(
        states[0],
        pair("pending", format!("Provisioning test cluster {cluster}"))
    );
    let (state, description) = &states[1];
    assert_eq!(state, "error");
    assert!(
        description.starts_with(&format!(
            "ZoneStockout: ContainerCluster:{NAMESPACE}/{cluster}"
        )),
        "{description}"
    );
    assert_eq!(
        description.chars().count(),
        140,
        "cut to GitHub's limit: {description}"
    );
    assert!(description.ends_with('…'), "{description}");
}

/// A run while GitHub does not take statuses (`mode`) completes; its statuses arrive, in order,
/// once GitHub is back; the failures show as a metric and an Event.
async fn run_while_github_is(mode: Mode, name: &str, sha: &str) {
    let (env, github) = suite_with_github(mode).await;
    let created = env
        .create(with_commit(job_request(name, 1, HELLO), sha, ""))
        .await;
    let run = env.follow(&created.name, &created.resource_version).await;
    assert_eq!(
        run.phases().last(),
        Some(&api::Phase::Succeeded),
        "{:?}",
        run.phases()
    );
    github.until_refused().await;
    assert!(github.created_for(sha).is_empty());

    github.set_mode(Mode::Up);
    let cluster = run.status().cluster_name;
    let statuses = github.until_final(sha).await;
    let context = format!("gke-test-cluster-operator:test-clusters/{name}");
    assert_eq!(
        states(&env, name, &context, &statuses),
        [
            pair("pending", format!("Provisioning test cluster {cluster}")),
            pair("pending", format!("Running the test job on {cluster}")),
            pair("success", "Job succeeded (exit code 0)".to_owned()),
        ]
    );
    let metrics = crate::metrics::metrics_text(&env, Component::Runner).await;
    assert!(
        metrics.contains("testcluster_github_status_requests_total{result=\"retried\"}"),
        "{metrics}"
    );
    let client = env.suite.client().await.expect("client");
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client, NAMESPACE);
    let listed = events.list(&Default::default()).await.expect("events");
    let note = listed
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .find(|e| e.reason.as_deref() == Some("GitHubStatusFailed"))
        .and_then(|e| e.note.clone())
        .expect("a GitHubStatusFailed Event");
    assert!(
        note.starts_with(
            "GitHub did not take the commit status (POST /repos/cilium/cilium/statuses/"
        ),
        "{note}"
    );
    assert!(note.ends_with("; retrying, the run goes on"), "{note}");
}

#[tokio::test]
async fn with_github_down_the_run_completes_and_its_statuses_arrive_later() {
    run_while_github_is(Mode::Down, "gh-down", "d4").await;
}

#[tokio::test]
async fn with_github_rate_limited_the_run_completes_and_its_statuses_arrive_later() {
    run_while_github_is(Mode::RateLimited, "gh-limited", "e5").await;
}
