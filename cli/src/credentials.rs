//! Which token tcctl sends the broker, first found wins:
//!
//! 1. `--token` / `TESTCLUSTER_TOKEN`;
//! 2. in a GitHub Actions job with `permissions: id-token: write`, an OIDC token for
//!    `--oidc-audience` asked of `ACTIONS_ID_TOKEN_REQUEST_URL` with `ACTIONS_ID_TOKEN_REQUEST_TOKEN`
//!    (the runner sets both), so CI needs no stored secret;
//! 3. the file `tcctl up` writes (`--token-file`, default `$TMPDIR/testcluster-up.token`), so that a
//!    local suite just works;
//! 4. none (the broker then answers UNAUTHENTICATED, saying how to send one).
//!
//! No token is ever printed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use testcluster_auth::client::Bearer;

use crate::args::CredentialArgs;

/// The GitHub Actions runner's variables for requesting an OIDC token.
const ACTIONS_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
const ACTIONS_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// Where `tcctl up` writes the token it made, and tcctl looks for it.
pub fn default_token_file() -> PathBuf {
    std::env::temp_dir().join("testcluster-up.token")
}

/// The token to send, found as the module says.
pub async fn bearer(args: &CredentialArgs) -> anyhow::Result<Bearer> {
    if let Some(token) = &args.token {
        return Bearer::new(Some(token));
    }
    if let (Ok(url), Ok(request_token)) = (std::env::var(ACTIONS_URL), std::env::var(ACTIONS_TOKEN))
    {
        let token = actions_token(&url, &request_token, &args.oidc_audience).await?;
        return Bearer::new(Some(&token));
    }
    match read_token_file(&args.token_file)? {
        Some(token) => Bearer::new(Some(&token)),
        None => Bearer::new(None),
    }
}

/// The token in `path`, if the file exists.
fn read_token_file(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

#[derive(Deserialize)]
struct ActionsTokenResponse {
    value: String,
}

/// Asks the Actions runtime for an OIDC token for `audience`.
async fn actions_token(url: &str, request_token: &str, audience: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(url).with_context(|| format!("{ACTIONS_URL} is not a URL"))?;
    url.query_pairs_mut().append_pair("audience", audience);
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(request_token)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        // reqwest's error names the URL, whose query holds no secret, never the headers.
        .context(
            "asking GitHub Actions for an OIDC token (does the job have `id-token: write`?)",
        )?;
    let answer: ActionsTokenResponse = response
        .json()
        .await
        .context("reading GitHub Actions' OIDC token answer")?;
    Ok(answer.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_token_file_is_no_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            read_token_file(&dir.path().join("absent")).expect("read"),
            None
        );
        let path = dir.path().join("token");
        std::fs::write(&path, "tc_abc\n").expect("write");
        assert_eq!(
            read_token_file(&path).expect("read").as_deref(),
            Some("tc_abc")
        );
    }
}
