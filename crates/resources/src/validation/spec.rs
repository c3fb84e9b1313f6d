//! Rules for a `TestClusterGKE` spec, and the seed's defaults.

use std::collections::BTreeMap;

use super::env;
use super::image::image_problem;
use super::limits::{
    MAX_COMMAND_ARG_BYTES, MAX_COMMAND_ARGS, MAX_DURATION, MAX_DURATION_LEN, MAX_ENV,
    MAX_IDENTIFIER_LEN, MAX_IMAGE_LEN, MAX_IMAGES_TO_TEST, MAX_IMAGES_TO_TEST_KEY_LEN,
    MAX_KUBERNETES_VERSION_LEN, MAX_NODES, MAX_PROJECT_LEN, MAX_SPEC_BYTES,
};
use super::location::{
    kubernetes_version_problem, location_problem, machine_type_problem, parse_location,
    project_problem, region_problem,
};
use super::path::{FieldPath, fields};
use super::text::{self, Text, quoted};
use super::violation::{Message, Reason, Violations};
use crate::metadata::{DEFAULT_CONFIG_TEMPLATE, DEFAULT_MACHINE_TYPE, DEFAULT_NODES};
use crate::object_names::object_name_problem;
use crate::spec::{JobRunnerSpec, TestClusterGKESpec};

/// The templates `spec.configTemplate` may name. They are the provisioner's knowledge: it passes
/// its own list, and the broker the list the provisioner's `ListTemplates` gave it.
#[derive(Clone, Copy, Debug)]
pub enum Templates<'a> {
    /// Any well-formed name (the caller checks existence separately, with [`check_template`]).
    Any,
    OneOf(&'a [&'a str]),
}

/// What the spec rules need to know beyond the spec.
#[derive(Clone, Copy, Debug)]
pub struct SpecContext<'a> {
    pub templates: Templates<'a>,
    /// The run's own ConfigMap when the spec does not name it yet: the broker creates
    /// `<name>-user` for a request's init manifest and fills in `configMap` afterwards.
    pub pending_config_map: Option<&'a str>,
}

/// Checks `spec` at `spec`.
pub fn check(violations: &mut Violations, spec: &TestClusterGKESpec, context: SpecContext<'_>) {
    let root = FieldPath::of(fields::SPEC);
    // Counts before any per-item work; the total size only when the counts are sane.
    let counts_ok = check_counts(violations, Counts::of(spec));
    if counts_ok {
        let bytes = spec_bytes(spec);
        if bytes > MAX_SPEC_BYTES {
            violations.add(
                root.clone(),
                Reason::TooLarge,
                format!(
                    "the spec's strings must add up to at most {MAX_SPEC_BYTES} bytes, got {bytes}"
                ),
            );
        }
    }

    let project = root.field(fields::PROJECT);
    if let Some(value) = non_empty(violations, &project, &spec.project)
        && text::check(violations, &project, value, MAX_PROJECT_LEN, Text::Line)
        && let Some(problem) = project_problem(value)
    {
        violations.add(project, Reason::InvalidValue, problem);
    }

    let template = root.field(fields::CONFIG_TEMPLATE);
    if let Some(value) = non_empty(violations, &template, &spec.config_template) {
        text::check(violations, &template, value, MAX_IDENTIFIER_LEN, Text::Line);
    }
    if let Templates::OneOf(known) = context.templates {
        check_template(violations, spec, known);
    }

    check_location(violations, &root, spec);

    let version = root.field(fields::KUBERNETES_VERSION);
    if let Some(value) = non_empty(violations, &version, &spec.kubernetes_version)
        && text::check(
            violations,
            &version,
            value,
            MAX_KUBERNETES_VERSION_LEN,
            Text::Line,
        )
        && let Some(problem) = kubernetes_version_problem(value)
    {
        violations.add(version, Reason::InvalidValue, problem);
    }

    let machine_type = root.field(fields::MACHINE_TYPE);
    if let Some(value) = non_empty(violations, &machine_type, &spec.machine_type)
        && text::check(
            violations,
            &machine_type,
            value,
            MAX_IDENTIFIER_LEN,
            Text::Line,
        )
        && let Some(problem) = machine_type_problem(value)
    {
        violations.add(machine_type, Reason::InvalidValue, problem);
    }

    if let Some(nodes) = spec.nodes {
        let problem = if nodes < 1 {
            Some(format!("must be at least 1, got {nodes}"))
        } else if nodes > MAX_NODES {
            Some(format!("must be at most {MAX_NODES}, got {nodes}"))
        } else {
            None
        };
        if let Some(problem) = problem {
            violations.add(root.field(fields::NODES), Reason::OutOfRange, problem);
        }
    }

    check_duration(violations, &root.field(fields::TTL), &spec.ttl);
    check_duration(
        violations,
        &root.field(fields::HOLD_ON_FAILURE),
        &spec.hold_on_failure,
    );

    if let Some(job) = &spec.job_spec {
        let job_path = root.field(fields::JOB_SPEC);
        check_duration(violations, &job_path.field(fields::DEADLINE), &job.deadline);
        match &job.runner {
            Some(runner) if counts_ok => {
                check_runner(violations, &job_path.field(fields::RUNNER), runner, context)
            }
            Some(_) => {}
            None => violations.add(
                job_path.field(fields::RUNNER),
                Reason::Required,
                "a job needs a runner container (image and command)",
            ),
        }
        if counts_ok && let Some(images) = &job.images_to_test {
            check_images_to_test(violations, &job_path.field(fields::IMAGES_TO_TEST), images);
        }
    }
}

/// Checks that `spec.configTemplate` (or the default template) is one of `known`. A name already
/// reported (empty, too long) is not looked up.
pub fn check_template(violations: &mut Violations, spec: &TestClusterGKESpec, known: &[&str]) {
    let path = FieldPath::of(fields::SPEC).field(fields::CONFIG_TEMPLATE);
    if violations.has(&path) {
        return;
    }
    let template = spec
        .config_template
        .as_deref()
        .unwrap_or(DEFAULT_CONFIG_TEMPLATE);
    if !known.contains(&template) {
        violations.add(
            path,
            Reason::UnknownTemplate,
            format!(
                "unknown template {}; known templates: {}",
                quoted(template),
                known.join(", ")
            ),
        );
    }
}

/// The seed's defaults, written into the object so that what the caller gets back is what runs.
/// Project and location stay unset: they are the provisioner's configuration.
pub fn apply_defaults(spec: &mut TestClusterGKESpec) {
    spec.config_template
        .get_or_insert_with(|| DEFAULT_CONFIG_TEMPLATE.to_owned());
    spec.nodes.get_or_insert(DEFAULT_NODES);
    spec.machine_type
        .get_or_insert_with(|| DEFAULT_MACHINE_TYPE.to_owned());
}

/// The value of an optional string that is set and not empty. Unset takes the default; set but
/// empty is a mistake worth naming.
fn non_empty<'a>(
    violations: &mut Violations,
    path: &FieldPath,
    value: &'a Option<String>,
) -> Option<&'a str> {
    match value.as_deref() {
        Some("") => {
            violations.add(path.clone(), Reason::Empty, "must not be empty when set");
            None
        }
        other => other,
    }
}

/// A zone or region; a region that belongs to it.
fn check_location(violations: &mut Violations, root: &FieldPath, spec: &TestClusterGKESpec) {
    let location_path = root.field(fields::LOCATION);
    let location = non_empty(violations, &location_path, &spec.location).filter(|value| {
        text::check(
            violations,
            &location_path,
            value,
            MAX_IDENTIFIER_LEN,
            Text::Line,
        )
    });
    let parsed = location.and_then(|value| match location_problem(value) {
        Some(problem) => {
            violations.add(location_path.clone(), Reason::InvalidValue, problem);
            None
        }
        None => parse_location(value),
    });
    let region_path = root.field(fields::REGION);
    let Some(region) = non_empty(violations, &region_path, &spec.region) else {
        return;
    };
    if !text::check(
        violations,
        &region_path,
        region,
        MAX_IDENTIFIER_LEN,
        Text::Line,
    ) {
        return;
    }
    if let Some(problem) = region_problem(region) {
        violations.add(region_path, Reason::InvalidValue, problem);
    } else if let Some(parsed) = parsed
        && parsed.region != region
    {
        violations.add(
            region_path,
            Reason::Mismatch,
            Message::default()
                .text(format!(
                    "{} is not the region of {} ",
                    quoted(region),
                    quoted(location.unwrap_or_default())
                ))
                .text("(")
                .path(&location_path)
                .text(format!("); leave it unset or set {}", parsed.region)),
        );
    }
}

/// The lengths of a spec's lists, which are checked before anything else.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub env: usize,
    pub command: usize,
    pub images_to_test: usize,
}

impl Counts {
    pub fn of(spec: &TestClusterGKESpec) -> Counts {
        let job = spec.job_spec.as_ref();
        let runner = job.and_then(|job| job.runner.as_ref());
        Counts {
            env: runner.map_or(0, |r| r.env.len()),
            command: runner.map_or(0, |r| r.command.len()),
            images_to_test: job
                .and_then(|job| job.images_to_test.as_ref())
                .map_or(0, BTreeMap::len),
        }
    }
}

/// One violation per list or map over its limit; false if there was any.
pub fn check_counts(violations: &mut Violations, counts: Counts) -> bool {
    let job = FieldPath::of(fields::SPEC).field(fields::JOB_SPEC);
    let runner_path = job.field(fields::RUNNER);
    let limits = [
        (runner_path.field(fields::ENV), counts.env, MAX_ENV),
        (
            runner_path.field(fields::COMMAND),
            counts.command,
            MAX_COMMAND_ARGS,
        ),
        (
            job.field(fields::IMAGES_TO_TEST),
            counts.images_to_test,
            MAX_IMAGES_TO_TEST,
        ),
    ];
    let mut ok = true;
    for (path, count, max) in limits {
        if count > max {
            violations.add(
                path,
                Reason::TooMany,
                format!("must have at most {max} entries, got {count}"),
            );
            ok = false;
        }
    }
    ok
}

/// The sum of every string's length in the spec.
fn spec_bytes(spec: &TestClusterGKESpec) -> usize {
    let optional = |value: &Option<String>| value.as_deref().map_or(0, str::len);
    let mut bytes = [
        &spec.project,
        &spec.config_template,
        &spec.location,
        &spec.region,
        &spec.kubernetes_version,
        &spec.machine_type,
    ]
    .into_iter()
    .map(optional)
    .sum::<usize>();
    let Some(job) = &spec.job_spec else {
        return bytes;
    };
    if let Some(images) = &job.images_to_test {
        bytes += images.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    }
    if let Some(runner) = &job.runner {
        bytes += optional(&runner.image) + optional(&runner.init_image);
        bytes += optional(&runner.config_map);
        bytes += runner.command.iter().map(String::len).sum::<usize>();
        for var in &runner.env {
            bytes += var.name.len() + optional(&var.value);
            if let Some(source) = &var.value_from {
                // Every string a source can hold: a reference's name and key, a field path.
                bytes += source.field_ref.as_ref().map_or(0, |f| f.field_path.len());
                bytes += source
                    .resource_field_ref
                    .as_ref()
                    .map_or(0, |r| r.resource.len());
                bytes += source
                    .config_map_key_ref
                    .as_ref()
                    .map_or(0, |r| r.name.len() + r.key.len());
                bytes += source
                    .secret_key_ref
                    .as_ref()
                    .map_or(0, |r| r.name.len() + r.key.len());
            }
        }
    }
    bytes
}

fn check_runner(
    violations: &mut Violations,
    path: &FieldPath,
    runner: &JobRunnerSpec,
    context: SpecContext<'_>,
) {
    let image = path.field(fields::IMAGE);
    match runner.image.as_deref() {
        None | Some("") if !runner.command.is_empty() => violations.add(
            image,
            Reason::Required,
            "a command needs an image to run in",
        ),
        None | Some("") => violations.add(
            image,
            Reason::Required,
            "the runner container needs an image",
        ),
        Some(value) => check_image(violations, &image, value),
    }
    let init_image = path.field(fields::INIT_IMAGE);
    if let Some(value) = non_empty(violations, &init_image, &runner.init_image) {
        check_image(violations, &init_image, value);
    }
    let command = path.field(fields::COMMAND);
    for (index, argument) in runner.command.iter().enumerate() {
        text::check(
            violations,
            &command.index(index),
            argument,
            MAX_COMMAND_ARG_BYTES,
            Text::Multiline,
        );
    }
    let config_map = path.field(fields::CONFIG_MAP);
    if let Some(name) = non_empty(violations, &config_map, &runner.config_map)
        && let Some(problem) = object_name_problem(name)
    {
        violations.add(config_map, Reason::InvalidName, problem);
    }
    let own_config_map = runner.config_map.as_deref().or(context.pending_config_map);
    env::check(
        violations,
        &path.field(fields::ENV),
        &runner.env,
        own_config_map,
    );
}

/// A duration (`ttl`, `holdOnFailure`, `jobSpec.deadline`): parses, and is at most
/// [`MAX_DURATION`]. The operator's maximum is lower and cuts it; this limit catches typos.
fn check_duration(violations: &mut Violations, path: &FieldPath, value: &Option<String>) {
    let Some(value) = non_empty(violations, path, value) else {
        return;
    };
    if !text::check(violations, path, value, MAX_DURATION_LEN, Text::Line) {
        return;
    }
    match crate::lifetime::parse_duration(value) {
        Err(problem) => violations.add(
            path.clone(),
            Reason::InvalidValue,
            format!("{} is not a duration: {problem}", quoted(value)),
        ),
        Ok(duration) if duration > MAX_DURATION => violations.add(
            path.clone(),
            Reason::OutOfRange,
            format!(
                "must be at most {}, got {}",
                crate::lifetime::format_duration(MAX_DURATION),
                crate::lifetime::format_duration(duration)
            ),
        ),
        Ok(_) => {}
    }
}

fn check_images_to_test(
    violations: &mut Violations,
    path: &FieldPath,
    images: &BTreeMap<String, String>,
) {
    for (key, image) in images {
        let entry = path.key(key);
        if key.is_empty() {
            violations.add(entry, Reason::Empty, "keys must not be empty");
        } else if text::check(
            violations,
            &entry,
            key,
            MAX_IMAGES_TO_TEST_KEY_LEN,
            Text::Line,
        ) {
            check_image(violations, &entry, image);
        }
    }
}

fn check_image(violations: &mut Violations, path: &FieldPath, image: &str) {
    if text::check(violations, path, image, MAX_IMAGE_LEN, Text::Line)
        && let Err(problem) = image_problem(image)
    {
        violations.add(
            path.clone(),
            Reason::InvalidImage,
            format!(
                "{} is not a valid image reference: {problem}",
                quoted(image)
            ),
        );
    }
}
