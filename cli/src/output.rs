//! How test clusters and errors are shown.

use std::fmt::Write as _;

use testcluster_api::v1 as api;

use crate::args::Format;

/// A gRPC error as a person reads it: the code and message, then each invalid field on its own line.
pub fn describe_status(status: &tonic::Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    for violation in testcluster_api::errors::field_violations(status) {
        let _ = write!(text, "\n  {}: {}", violation.field, violation.description);
    }
    text
}

/// The phase's name as users see it (`Running`), from the wire value.
pub fn phase_name(phase: i32) -> &'static str {
    match api::Phase::try_from(phase).unwrap_or(api::Phase::Unspecified) {
        api::Phase::Unspecified => "-",
        api::Phase::Pending => "Pending",
        api::Phase::Provisioning => "Provisioning",
        api::Phase::Ready => "Ready",
        api::Phase::Running => "Running",
        api::Phase::Succeeded => "Succeeded",
        api::Phase::Failed => "Failed",
        api::Phase::Error => "Error",
        api::Phase::Deleting => "Deleting",
        api::Phase::Expired => "Expired",
    }
}

/// Test clusters in `format`.
pub fn render(
    clusters: &[api::TestCluster],
    format: Format,
    single: bool,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Table => table(clusters),
        Format::Json if single && clusters.len() == 1 => {
            serde_json::to_string_pretty(&clusters[0])? + "\n"
        }
        Format::Json => serde_json::to_string_pretty(clusters)? + "\n",
        Format::Yaml if single && clusters.len() == 1 => yaml_serde::to_string(&clusters[0])?,
        Format::Yaml => yaml_serde::to_string(clusters)?,
    })
}

fn table(clusters: &[api::TestCluster]) -> String {
    let header = ["NAMESPACE", "NAME", "PHASE", "CLUSTER", "LOCATION", "EXIT"];
    let rows: Vec<[String; 6]> = clusters
        .iter()
        .map(|cluster| {
            let status = cluster.status.clone().unwrap_or_default();
            let exit = status
                .job
                .and_then(|job| job.exit_code)
                .map_or_else(|| "-".to_owned(), |code| code.to_string());
            [
                cluster.namespace.clone(),
                cluster.name.clone(),
                phase_name(status.phase).to_owned(),
                or_dash(status.cluster_name),
                or_dash(status.location),
                exit,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    let lines = std::iter::once(header.map(str::to_owned)).chain(rows);
    for row in lines {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let cluster = api::TestCluster {
            namespace: "test-clusters".to_owned(),
            name: "a".to_owned(),
            status: Some(api::TestClusterStatus {
                phase: api::Phase::Succeeded.into(),
                job: Some(api::JobStatus {
                    exit_code: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = render(&[cluster], Format::Table, false).expect("renders");
        assert_eq!(
            text,
            "NAMESPACE      NAME  PHASE      CLUSTER  LOCATION  EXIT\n\
             test-clusters  a     Succeeded  -        -         0\n"
        );
    }

    #[test]
    fn violations_are_listed() {
        let status =
            testcluster_api::errors::invalid_argument(vec![tonic_types::FieldViolation::new(
                "spec.nodes",
                "must be at least 1",
            )]);
        assert_eq!(
            describe_status(&status),
            "InvalidArgument: invalid request: spec.nodes: must be at least 1\n  spec.nodes: must be at least 1"
        );
    }
}
