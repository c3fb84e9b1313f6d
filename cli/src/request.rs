//! Building a `CreateTestClusterRequest` from `tcctl run`'s flags and, optionally, a seed-style
//! `TestClusterGKE` manifest. Flags win over the manifest, the manifest over the server's defaults.

use std::path::Path;

use anyhow::Context as _;
use testcluster_api::v1 as api;
use testcluster_resources::TestClusterGKE;

use crate::args::{DEFAULT_IMAGE, RunArgs};

/// The name prefix when neither a name nor a manifest gives one.
pub const DEFAULT_NAME_PREFIX: &str = "run-";

/// The request `tcctl run` sends.
pub fn build(
    args: &RunArgs,
    namespace: Option<&str>,
) -> anyhow::Result<api::CreateTestClusterRequest> {
    let mut request = match &args.file {
        Some(path) => from_manifest(&read_manifest(path)?),
        None => api::CreateTestClusterRequest::default(),
    };
    // `--namespace`, else the manifest's, else empty: the broker's default namespace, as for every
    // other command.
    if let Some(namespace) = namespace {
        request.namespace = namespace.to_owned();
    }
    apply_flags(args, &mut request)?;
    if request.name.is_empty() && request.name_prefix.is_empty() {
        request.name_prefix = DEFAULT_NAME_PREFIX.to_owned();
    }
    Ok(request)
}

fn read_manifest(path: &Path) -> anyhow::Result<TestClusterGKE> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    yaml_serde::from_str(&text)
        .with_context(|| format!("{} is not a TestClusterGKE manifest", path.display()))
}

/// A manifest as a request: its name (or generateName), namespace, labels, annotations and spec.
pub fn from_manifest(manifest: &TestClusterGKE) -> api::CreateTestClusterRequest {
    let metadata = &manifest.metadata;
    api::CreateTestClusterRequest {
        namespace: metadata.namespace.clone().unwrap_or_default(),
        name: metadata.name.clone().unwrap_or_default(),
        name_prefix: if metadata.name.is_some() {
            String::new()
        } else {
            metadata.generate_name.clone().unwrap_or_default()
        },
        spec: Some(manifest.spec.clone().into()),
        labels: metadata.labels.clone().unwrap_or_default(),
        annotations: metadata.annotations.clone().unwrap_or_default(),
        ..Default::default()
    }
}

fn apply_flags(args: &RunArgs, request: &mut api::CreateTestClusterRequest) -> anyhow::Result<()> {
    if let Some(name) = &args.name {
        request.name = name.clone();
        request.name_prefix.clear();
    }
    if let Some(prefix) = &args.name_prefix {
        request.name_prefix = prefix.clone();
        request.name.clear();
    }
    let spec = request.spec.get_or_insert_with(Default::default);
    let overrides = [
        (&args.template, &mut spec.config_template),
        (&args.machine_type, &mut spec.machine_type),
        (&args.project, &mut spec.project),
        (&args.location, &mut spec.location),
        (&args.region, &mut spec.region),
        (&args.kubernetes_version, &mut spec.kubernetes_version),
        (&args.ttl, &mut spec.ttl),
        (&args.hold_on_failure, &mut spec.hold_on_failure),
    ];
    for (flag, field) in overrides {
        if flag.is_some() {
            field.clone_from(flag);
        }
    }
    if args.nodes.is_some() {
        spec.nodes = args.nodes;
    }
    let wants_job = args.image.is_some()
        || args.init_image.is_some()
        || !args.command.is_empty()
        || !args.env.is_empty()
        || args.init_manifest.is_some();
    if wants_job {
        let runner = spec
            .job_spec
            .get_or_insert_with(Default::default)
            .runner
            .get_or_insert_with(Default::default);
        if args.image.is_some() {
            runner.image.clone_from(&args.image);
        }
        if args.init_image.is_some() {
            runner.init_image.clone_from(&args.init_image);
        }
        if !args.command.is_empty() {
            runner.command.clone_from(&args.command);
        }
        if runner.image.is_none() && !runner.command.is_empty() {
            runner.image = Some(DEFAULT_IMAGE.to_owned());
        }
        for (name, value) in &args.env {
            runner.env.retain(|env| &env.name != name);
            runner.env.push(api::EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            });
        }
    }
    if args.deadline.is_some()
        && let Some(job) = spec.job_spec.as_mut()
    {
        job.deadline.clone_from(&args.deadline);
    }
    if let Some(path) = &args.init_manifest {
        request.init_manifest = Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
    }
    for (key, value) in &args.labels {
        request.labels.insert(key.clone(), value.clone());
    }
    if let Some(description) = &args.description {
        request.description = description.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser as _;

    fn run_args(argv: &[&str]) -> RunArgs {
        let mut full = vec!["tcctl", "run"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).expect("parses").command {
            Command::Run(run) => *run,
            _ => panic!("not run"),
        }
    }

    #[test]
    fn flags_make_a_request_with_a_default_image() {
        let request = build(
            &run_args(&["--nodes", "3", "--env", "A=1", "--", "sh", "-c", "true"]),
            None,
        )
        .expect("builds");
        assert_eq!(request.namespace, "", "the broker's default");
        assert_eq!(request.name_prefix, "run-");
        let spec = request.spec.expect("spec");
        assert_eq!(spec.nodes, Some(3));
        let runner = spec.job_spec.and_then(|job| job.runner).expect("runner");
        assert_eq!(runner.image.as_deref(), Some(DEFAULT_IMAGE));
        assert_eq!(runner.command, vec!["sh", "-c", "true"]);
        assert_eq!(runner.env[0].name, "A");
    }

    #[test]
    fn no_command_no_job() {
        let request = build(&run_args(&["--name", "x"]), Some("ns")).expect("builds");
        assert_eq!(request.name, "x");
        assert_eq!(request.namespace, "ns");
        assert_eq!(request.spec.and_then(|spec| spec.job_spec), None);
    }

    #[test]
    fn manifest_with_flag_overrides() {
        let manifest: TestClusterGKE = yaml_serde::from_str(
            "apiVersion: clusters.ci.cilium.io/v1alpha2\nkind: TestClusterGKE\n\
             metadata: {name: testme-1, namespace: test-clusters}\n\
             spec: {configTemplate: basic, nodes: 2, jobSpec: {runner: {image: cilium/cilium-test:8cfdbfe, command: [/usr/local/bin/test-gke.sh]}}}\n",
        )
        .expect("manifest");
        let mut request = from_manifest(&manifest);
        apply_flags(&run_args(&["--nodes", "1"]), &mut request).expect("flags");
        assert_eq!(request.name, "testme-1");
        assert_eq!(request.namespace, "test-clusters", "the manifest's");
        let spec = request.spec.expect("spec");
        assert_eq!(spec.nodes, Some(1));
        assert_eq!(
            spec.job_spec
                .and_then(|job| job.runner)
                .and_then(|r| r.image)
                .as_deref(),
            Some("cilium/cilium-test:8cfdbfe")
        );
    }
}
