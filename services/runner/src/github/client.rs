//! GitHub's REST API, the part the runner uses: `POST /repos/{owner}/{repo}/statuses/{sha}`, and
//! what a failed call means for the next attempt (GitHub's rate limits: `Retry-After`, and
//! `x-ratelimit-remaining: 0` with `x-ratelimit-reset`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, USER_AGENT};
use reqwest::{StatusCode, Url};

use super::commit_status::{CommitStatus, Target};

/// GitHub's public API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The REST API version the requests are written for.
const API_VERSION: &str = "2022-11-28";

/// Why a call did not go through, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// GitHub said when to come back (rate limit): not before `after`.
    #[error("{what} (rate limited; retry in {}s)", after.as_secs())]
    RateLimited { what: String, after: Duration },
    /// A failure a later attempt may not meet (5xx, a network error, a token that expired).
    #[error("{0}")]
    Transient(String),
    /// GitHub refused the request as such (404, 422): sending it again gives the same answer.
    #[error("{0}")]
    Refused(String),
}

/// A GitHub API client: one HTTP client (rustls with the process's ring provider) and the base URL.
#[derive(Clone, Debug)]
pub struct GitHubApi {
    http: reqwest::Client,
    base: Url,
}

impl GitHubApi {
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<GitHubApi> {
        // reqwest is built without a provider of its own: the process's ring one.
        testcluster_service::install_crypto();
        let base = Url::parse(base).map_err(|e| anyhow::anyhow!("GitHub API URL {base:?}: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent("testcluster-runner")
            .build()?;
        Ok(GitHubApi { http, base })
    }

    /// `base` with the path segments appended, each escaped (owner, repository and commit come
    /// from labels and annotations).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Creates `status` on `target`'s commit with `token`.
    pub async fn create_status(
        &self,
        token: &str,
        target: &Target,
        status: &CommitStatus,
    ) -> Result<(), CallError> {
        let url = self.url(&[
            "repos",
            &target.owner,
            &target.repo,
            "statuses",
            &target.sha,
        ]);
        let what = format!(
            "POST /repos/{}/{}/statuses/{}",
            target.owner, target.repo, target.sha
        );
        let response = self
            .http
            .post(url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .header(USER_AGENT, "testcluster-runner")
            .json(status)
            .send()
            .await
            .map_err(|e| CallError::Transient(format!("{what}: {e}")))?;
        check(&what, response).await.map(drop)
    }
}

/// `response` if it succeeded, else what its failure means for a retry.
pub async fn check(
    what: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, CallError> {
    let code = response.status();
    if code.is_success() {
        return Ok(response);
    }
    let wait = rate_limit_wait(code, response.headers(), SystemTime::now());
    // GitHub's error body is a short JSON message; bounded all the same.
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    let what = format!("{what}: {code}: {}", body.trim());
    Err(match wait {
        Some(after) => CallError::RateLimited { what, after },
        None if code.is_server_error() || code == StatusCode::UNAUTHORIZED => {
            CallError::Transient(what)
        }
        // Throttled without saying until when: back off. (A 403 without rate-limit headers is
        // a permission problem, which no retry fixes.)
        None if code == StatusCode::TOO_MANY_REQUESTS => CallError::Transient(what),
        None => CallError::Refused(what),
    })
}

/// How long GitHub asks to wait: `Retry-After` (seconds) on 403/429, else, once the budget is
/// spent (`x-ratelimit-remaining: 0`), until `x-ratelimit-reset` (epoch seconds).
pub fn rate_limit_wait(code: StatusCode, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if code != StatusCode::FORBIDDEN && code != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(seconds) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    if header("x-ratelimit-remaining").map(str::trim) == Some("0") {
        let reset = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok())?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now)));
    }
    None
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn rate_limits_say_how_long_to_wait() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let forbidden = StatusCode::FORBIDDEN;
        assert_eq!(
            rate_limit_wait(forbidden, &headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        let spent = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1030"),
        ]);
        assert_eq!(
            rate_limit_wait(forbidden, &spent, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &spent, now),
            Some(Duration::from_secs(30))
        );
        // A reset in the past: go now.
        let past = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "900")]);
        assert_eq!(rate_limit_wait(forbidden, &past, now), Some(Duration::ZERO));
        // A 403 with budget left is a permission problem, not a rate limit.
        let left = headers(&[
            ("x-ratelimit-remaining", "12"),
            ("x-ratelimit-reset", "1030"),
        ]);
        assert_eq!(rate_limit_wait(forbidden, &left, now), None);
        assert_eq!(rate_limit_wait(StatusCode::BAD_GATEWAY, &spent, now), None);
    }

    #[test]
    fn path_segments_are_escaped() {
        let api =
            GitHubApi::new("http://127.0.0.1:1/api/v3/", Duration::from_secs(1)).expect("api");
        assert_eq!(
            api.url(&["repos", "o", "r/x", "statuses", "a b"]).as_str(),
            "http://127.0.0.1:1/api/v3/repos/o/r%2Fx/statuses/a%20b"
        );
    }
}
