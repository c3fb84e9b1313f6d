//! Which commit status a test cluster's run shows on GitHub: a pure function of the object, so the
//! lifecycle → status mapping is unit-tested and the same object always gives the same status.
//!
//! | phase                                   | state   | description                           |
//! |-----------------------------------------|---------|---------------------------------------|
//! | Pending, Provisioning, Ready (no job)   | pending | `Provisioning a test cluster …`       |
//! | Ready with a job, Running               | pending | `Running the test job on …`           |
//! | Succeeded                               | success | `Job succeeded …`                     |
//! | Failed                                  | failure | `<job.reason>: …` (`DeadlineExceeded`)|
//! | Error, Expired                          | error   | `<error.code>: …` / `Expired: …`      |
//! | Deleting before the run ended           | error   | `Deleted: …`                          |
//!
//! The commit comes from the seed's label `ci.cilium.io/github-commit-hash`, the repository from
//! its annotations; the context from `ci.cilium.io/github-context`, by default the seed's
//! `gke-test-cluster-operator:<namespace>/<name>`. `target_url` is the run's log page.

use kube::ResourceExt as _;
use serde::Serialize;
use testcluster_resources::metadata::{
    ANNOTATION_GITHUB_CONTEXT, ANNOTATION_GITHUB_REPO_NAME, ANNOTATION_GITHUB_REPO_OWNER,
    LABEL_GITHUB_COMMIT_HASH,
};
use testcluster_resources::{Phase, TestClusterGKE};

/// GitHub refuses a description longer than this (422).
pub const MAX_DESCRIPTION_CHARS: usize = 140;

/// Where a status goes: one commit of one repository, under one context.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub owner: String,
    pub repo: String,
    pub sha: String,
    pub context: String,
}

/// The body of `POST /repos/{owner}/{repo}/statuses/{sha}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitStatus {
    pub state: &'static str,
    pub target_url: String,
    pub description: String,
    pub context: String,
}

/// The commit status `tc` should show, and where; `None` without the seed's GitHub metadata or
/// before there is anything to say.
pub fn of(tc: &TestClusterGKE, logs_base_url: &str) -> Option<(Target, CommitStatus)> {
    let sha = tc.labels().get(LABEL_GITHUB_COMMIT_HASH)?;
    let annotations = tc.annotations();
    let owner = annotations.get(ANNOTATION_GITHUB_REPO_OWNER)?;
    let repo = annotations.get(ANNOTATION_GITHUB_REPO_NAME)?;
    let namespace = tc.namespace().unwrap_or_default();
    let name = tc.name_any();
    let context = annotations
        .get(ANNOTATION_GITHUB_CONTEXT)
        .cloned()
        .unwrap_or_else(|| format!("gke-test-cluster-operator:{namespace}/{name}"));
    let (state, description) = state_and_description(tc)?;
    let target = Target {
        owner: owner.clone(),
        repo: repo.clone(),
        sha: sha.clone(),
        context: context.clone(),
    };
    let status = CommitStatus {
        state,
        target_url: log_page(logs_base_url, &namespace, &name),
        description: bounded(&description),
        context,
    };
    Some((target, status))
}

/// The run's log page (logview's): `<base>/<namespace>/<name>`.
pub fn log_page(base: &str, namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", base.trim_end_matches('/'))
}

fn state_and_description(tc: &TestClusterGKE) -> Option<(&'static str, String)> {
    let status = tc.status.clone().unwrap_or_default();
    let cluster = status.cluster_name.clone().unwrap_or_default();
    let job = status.job.clone().unwrap_or_default();
    let has_job = tc.spec.job_spec.is_some();
    let exit = job
        .exit_code
        .map_or_else(String::new, |code| format!(" (exit code {code})"));
    Some(match status.phase? {
        Phase::Pending | Phase::Provisioning => (
            "pending",
            format!("Provisioning test cluster {cluster}")
                .trim_end()
                .to_owned(),
        ),
        Phase::Ready if !has_job => ("pending", format!("Test cluster {cluster} is ready")),
        Phase::Ready | Phase::Running => ("pending", format!("Running the test job on {cluster}")),
        Phase::Succeeded => ("success", format!("Job succeeded{exit}")),
        Phase::Failed => (
            "failure",
            format!(
                "{}{exit}: {}",
                job.reason.as_deref().unwrap_or("Failed"),
                job.message.as_deref().unwrap_or("the job failed")
            ),
        ),
        Phase::Error => {
            let error = status.error.unwrap_or_default();
            ("error", format!("{}: {}", error.code, error.message))
        }
        Phase::Expired => (
            "error",
            "Expired: the test cluster's TTL ended before the run did".to_owned(),
        ),
        Phase::Deleting
            if status
                .phase_timestamps
                .and_then(|t| t.finish_time)
                .is_none() =>
        {
            (
                "error",
                "Deleted: the test cluster was deleted before its run ended".to_owned(),
            )
        }
        // Deleting a finished run's record changes nothing on GitHub.
        Phase::Deleting => return None,
    })
}

/// At most [`MAX_DESCRIPTION_CHARS`] characters (GitHub counts characters), cut with `…`.
fn bounded(description: &str) -> String {
    let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
    if description.chars().count() <= MAX_DESCRIPTION_CHARS {
        return description;
    }
    let mut cut: String = description
        .chars()
        .take(MAX_DESCRIPTION_CHARS - 1)
        .collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use testcluster_resources::{ErrorStatus, JobSpec, JobStatus, TestClusterGKEStatus};

    use super::*;

    fn run(phase: Phase, context: Option<&str>) -> TestClusterGKE {
        let mut tc = TestClusterGKE::new("t1", Default::default());
        tc.metadata.namespace = Some("ns".to_owned());
        tc.spec.job_spec = Some(JobSpec::default());
        tc.metadata.labels = Some(BTreeMap::from([(
            LABEL_GITHUB_COMMIT_HASH.to_owned(),
            "abc123".to_owned(),
        )]));
        let mut annotations = BTreeMap::from([
            (ANNOTATION_GITHUB_REPO_OWNER.to_owned(), "cilium".to_owned()),
            (ANNOTATION_GITHUB_REPO_NAME.to_owned(), "cilium".to_owned()),
        ]);
        if let Some(context) = context {
            annotations.insert(ANNOTATION_GITHUB_CONTEXT.to_owned(), context.to_owned());
        }
        tc.metadata.annotations = Some(annotations);
        tc.status = Some(TestClusterGKEStatus {
            phase: Some(phase),
            cluster_name: Some("t1-abcde".to_owned()),
            ..Default::default()
        });
        tc
    }

    #[test]
    fn the_lifecycle_maps_to_pending_then_a_final_state() {
        let base = "http://logs.example/runs/";
        let (target, pending) = of(&run(Phase::Provisioning, None), base).expect("status");
        assert_eq!(
            target,
            Target {
                owner: "cilium".into(),
                repo: "cilium".into(),
                sha: "abc123".into(),
                context: "gke-test-cluster-operator:ns/t1".into(),
            }
        );
        assert_eq!(
            pending,
            CommitStatus {
                state: "pending",
                target_url: "http://logs.example/runs/ns/t1".into(),
                description: "Provisioning test cluster t1-abcde".into(),
                context: "gke-test-cluster-operator:ns/t1".into(),
            }
        );
        let running = of(&run(Phase::Running, Some("ci/gke")), base)
            .expect("status")
            .1;
        assert_eq!(
            (running.state, running.context.as_str()),
            ("pending", "ci/gke")
        );
        assert_eq!(running.description, "Running the test job on t1-abcde");
        // Ready with a job says what Running says, so one status covers both.
        assert_eq!(
            of(&run(Phase::Ready, Some("ci/gke")), base)
                .expect("status")
                .1,
            running
        );

        let mut failed = run(Phase::Failed, None);
        if let Some(status) = failed.status.as_mut() {
            status.job = Some(JobStatus {
                exit_code: Some(3),
                reason: Some("Error".into()),
                message: Some("runner exited 3".into()),
                ..Default::default()
            });
        }
        let failure = of(&failed, base).expect("status").1;
        assert_eq!(
            (failure.state, failure.description.as_str()),
            ("failure", "Error (exit code 3): runner exited 3")
        );

        let mut broken = run(Phase::Error, None);
        if let Some(status) = broken.status.as_mut() {
            status.error = Some(ErrorStatus {
                code: "ZoneStockout".into(),
                message: "x".repeat(500),
                retryable: true,
            });
        }
        let error = of(&broken, base).expect("status").1;
        assert_eq!(error.state, "error");
        assert!(
            error.description.starts_with("ZoneStockout: xxx"),
            "{}",
            error.description
        );
        assert_eq!(error.description.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(error.description.ends_with('…'));
    }

    #[test]
    fn no_metadata_no_status() {
        let mut tc = run(Phase::Running, None);
        tc.metadata.labels = None;
        assert_eq!(of(&tc, "http://x"), None);
    }
}
