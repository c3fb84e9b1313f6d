//! Field paths, written once and rendered in either of the two names a field has.
//!
//! The gRPC request and the CRD spec have the same fields under two spellings: the proto's
//! snake_case (`spec.job_spec.runner.env[0].value_from`) and the CRD's camelCase
//! (`spec.jobSpec.runner.env[0].valueFrom`). A rule builds a [`FieldPath`] of [`Field`]s, each of
//! which carries both spellings, and the caller picks the [`Naming`] when it renders the path, so
//! the broker reports the request's names and the provisioner the object's, from one source.

use std::fmt::Write as _;

/// Which spelling of the field names a rendered path uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// The gRPC request's field names (`spec.job_spec.runner.init_image`): what the broker reports.
    Proto,
    /// The `TestClusterGKE` object's field names (`spec.jobSpec.runner.initImage`): what the
    /// provisioner reports for objects created with kubectl.
    Crd,
}

/// One named field, in both spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    proto: &'static str,
    crd: &'static str,
}

impl Field {
    pub const fn new(proto: &'static str, crd: &'static str) -> Field {
        Field { proto, crd }
    }

    pub fn name(self, naming: Naming) -> &'static str {
        match naming {
            Naming::Proto => self.proto,
            Naming::Crd => self.crd,
        }
    }
}

/// Every field a rule names. Where a request field has no counterpart in the object (the name
/// prefix, the init manifest), its CRD spelling is the closest thing the object has.
pub mod fields {
    use super::Field;

    pub const NAMESPACE: Field = Field::new("namespace", "metadata.namespace");
    pub const NAME: Field = Field::new("name", "metadata.name");
    pub const NAME_PREFIX: Field = Field::new("name_prefix", "metadata.generateName");
    pub const LABELS: Field = Field::new("labels", "metadata.labels");
    pub const ANNOTATIONS: Field = Field::new("annotations", "metadata.annotations");
    pub const INIT_MANIFEST: Field = Field::new("init_manifest", "initManifest");
    pub const DESCRIPTION: Field = Field::new("description", "description");
    pub const GITHUB: Field = Field::new("github", "github");
    pub const COMMIT_HASH: Field = Field::new("commit_hash", "commitHash");
    pub const REPO_OWNER: Field = Field::new("repo_owner", "repoOwner");
    pub const REPO_NAME: Field = Field::new("repo_name", "repoName");
    pub const CONTEXT: Field = Field::new("context", "context");

    pub const SPEC: Field = Field::new("spec", "spec");
    pub const PROJECT: Field = Field::new("project", "project");
    pub const CONFIG_TEMPLATE: Field = Field::new("config_template", "configTemplate");
    pub const LOCATION: Field = Field::new("location", "location");
    pub const REGION: Field = Field::new("region", "region");
    pub const KUBERNETES_VERSION: Field = Field::new("kubernetes_version", "kubernetesVersion");
    pub const JOB_SPEC: Field = Field::new("job_spec", "jobSpec");
    pub const MACHINE_TYPE: Field = Field::new("machine_type", "machineType");
    pub const NODES: Field = Field::new("nodes", "nodes");
    pub const TTL: Field = Field::new("ttl", "ttl");
    pub const HOLD_ON_FAILURE: Field = Field::new("hold_on_failure", "holdOnFailure");
    pub const DEADLINE: Field = Field::new("deadline", "deadline");

    pub const RUNNER: Field = Field::new("runner", "runner");
    pub const IMAGES_TO_TEST: Field = Field::new("images_to_test", "imagesToTest");
    pub const IMAGE: Field = Field::new("image", "image");
    pub const COMMAND: Field = Field::new("command", "command");
    pub const INIT_IMAGE: Field = Field::new("init_image", "initImage");
    pub const ENV: Field = Field::new("env", "env");
    pub const CONFIG_MAP: Field = Field::new("config_map", "configMap");

    pub const ENV_NAME: Field = Field::new("name", "name");
    pub const VALUE: Field = Field::new("value", "value");
    pub const VALUE_FROM: Field = Field::new("value_from", "valueFrom");
    pub const FIELD_REF: Field = Field::new("field_ref", "fieldRef");
    pub const RESOURCE_FIELD_REF: Field = Field::new("resource_field_ref", "resourceFieldRef");
    pub const CONFIG_MAP_KEY_REF: Field = Field::new("config_map_key_ref", "configMapKeyRef");
    pub const SECRET_KEY_REF: Field = Field::new("secret_key_ref", "secretKeyRef");
    pub const API_VERSION: Field = Field::new("api_version", "apiVersion");
    pub const FIELD_PATH: Field = Field::new("field_path", "fieldPath");
    pub const RESOURCE: Field = Field::new("resource", "resource");
    pub const KEY_REF_NAME: Field = Field::new("name", "name");
}

/// A map key as it appears in a path: keys come from the input, so a long or odd one is cut
/// short and escaped (a path is an error message, not a copy of the input).
const MAX_KEY_CHARS: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Field(Field),
    Index(usize),
    Key(String),
}

/// A path to a field: `spec.job_spec.runner.env[3].name`, `labels[team]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The path of a top-level field.
    pub fn of(field: Field) -> FieldPath {
        FieldPath(vec![Segment::Field(field)])
    }

    /// The path of `field` within this one.
    pub fn field(&self, field: Field) -> FieldPath {
        self.with(Segment::Field(field))
    }

    /// The path of item `index` of this list.
    pub fn index(&self, index: usize) -> FieldPath {
        self.with(Segment::Index(index))
    }

    /// The path of the entry `key` of this map.
    pub fn key(&self, key: &str) -> FieldPath {
        let mut shown: String = key.chars().take(MAX_KEY_CHARS).collect::<String>();
        if shown.len() < key.len() {
            shown.push('…');
        }
        self.with(Segment::Key(shown.escape_debug().to_string()))
    }

    fn with(&self, segment: Segment) -> FieldPath {
        let mut segments = Vec::with_capacity(self.0.len() + 1);
        segments.extend(self.0.iter().cloned());
        segments.push(segment);
        FieldPath(segments)
    }

    /// The path in the given spelling.
    pub fn render(&self, naming: Naming) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Field(field) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(field.name(naming));
                }
                // Writing to a String cannot fail.
                Segment::Index(index) => {
                    let _ = write!(out, "[{index}]");
                }
                Segment::Key(key) => {
                    let _ = write!(out, "[{key}]");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::fields::*;
    use super::*;

    #[test]
    fn one_path_two_spellings() {
        let path = FieldPath::of(SPEC)
            .field(JOB_SPEC)
            .field(RUNNER)
            .field(ENV)
            .index(0)
            .field(VALUE_FROM)
            .field(SECRET_KEY_REF);
        assert_eq!(
            path.render(Naming::Proto),
            "spec.job_spec.runner.env[0].value_from.secret_key_ref"
        );
        assert_eq!(
            path.render(Naming::Crd),
            "spec.jobSpec.runner.env[0].valueFrom.secretKeyRef"
        );
    }

    #[test]
    fn keys_are_kept_short_and_escaped() {
        let labels = FieldPath::of(LABELS);
        assert_eq!(labels.key("team").render(Naming::Proto), "labels[team]");
        assert_eq!(
            labels.key("team").render(Naming::Crd),
            "metadata.labels[team]"
        );
        assert_eq!(labels.key("a\0b").render(Naming::Proto), "labels[a\\0b]");
        let long = labels.key(&"k".repeat(1000)).render(Naming::Proto);
        assert_eq!(long, format!("labels[{}…]", "k".repeat(128)));
    }
}
