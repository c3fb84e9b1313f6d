//! Who asked for a test cluster, recorded on it: the caller (`created-by`) and tenant annotations,
//! and, for a GitHub Actions caller, the repository and commit from the token's claims. Claims win
//! over what the request says: a workflow can only report statuses on its own repository's commit.

use testcluster_auth::Identity;
use testcluster_resources::metadata::{
    ANNOTATION_CREATED_BY, ANNOTATION_GITHUB_REPO_NAME, ANNOTATION_GITHUB_REPO_OWNER,
    ANNOTATION_TENANT, LABEL_GITHUB_COMMIT_HASH,
};

use crate::tenancy::Caller;
use crate::validate::CreatePlan;

/// Adds the caller's provenance to the object `plan` will create.
pub fn record(plan: &mut CreatePlan, caller: &Caller) {
    plan.annotations.insert(
        ANNOTATION_CREATED_BY.to_owned(),
        caller.identity.to_string(),
    );
    if let Some(tenant) = caller.tenant_name() {
        plan.annotations
            .insert(ANNOTATION_TENANT.to_owned(), tenant.to_owned());
    }
    if let Identity::GitHubActions(claims) = &caller.identity {
        if let Some((owner, name)) = claims.owner_and_name() {
            plan.annotations
                .insert(ANNOTATION_GITHUB_REPO_OWNER.to_owned(), owner.to_owned());
            plan.annotations
                .insert(ANNOTATION_GITHUB_REPO_NAME.to_owned(), name.to_owned());
        }
        // A commit is 40 (or, with SHA-256 repositories, 64) hex digits: always a valid label value.
        if is_commit(&claims.sha) {
            plan.labels
                .insert(LABEL_GITHUB_COMMIT_HASH.to_owned(), claims.sha.clone());
        }
    }
}

fn is_commit(sha: &str) -> bool {
    matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}
