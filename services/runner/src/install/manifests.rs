//! Kubernetes manifests as the runner reads them: YAML (or JSON) documents, from the metrics-stack
//! directory or a user's `init-manifest`, checked against the runner's limits before anything is
//! applied, so that a bad file is refused whole rather than half-installed.

use std::path::{Path, PathBuf};

use kube::api::{DynamicObject, GroupVersionKind};
use serde::Deserialize as _;

/// At most this many bytes of manifests per source (a ConfigMap holds at most 1 MiB anyway).
pub const MAX_BYTES: usize = 1024 * 1024;
/// At most this many objects per source.
pub const MAX_OBJECTS: usize = 256;

/// Why a manifest was refused. Its text names the source (file or ConfigMap key) and the document.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}: more than {MAX_BYTES} bytes")]
    TooLarge { source_name: String },
    #[error("{source_name}: more than {MAX_OBJECTS} objects")]
    TooMany { source_name: String },
    #[error("{source_name}: document {document}: {message}")]
    Invalid {
        source_name: String,
        document: usize,
        message: String,
    },
    #[error("{path}: no manifests (*.yaml, *.yml, *.json) in the directory")]
    Empty { path: PathBuf },
}

/// One object to apply, with its kind resolved from `apiVersion` and `kind`.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub gvk: GroupVersionKind,
    pub object: DynamicObject,
}

impl Manifest {
    /// `Kind namespace/name` (or `Kind name`), for messages.
    pub fn describe(&self) -> String {
        let name = self.object.metadata.name.as_deref().unwrap_or_default();
        match &self.object.metadata.namespace {
            Some(namespace) => format!("{} {namespace}/{name}", self.gvk.kind),
            None => format!("{} {name}", self.gvk.kind),
        }
    }
}

/// The objects of one or more manifest files, in order.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    pub objects: Vec<Manifest>,
}

impl Manifests {
    /// Every `*.yaml`, `*.yml` and `*.json` file directly in `dir`, in file name order (so that a
    /// Namespace in `00-namespace.yaml` comes before what lives in it). The limits hold for the
    /// directory as a whole.
    pub fn load_dir(dir: &Path) -> Result<Manifests, ManifestError> {
        let read_error = |source| ManifestError::Read {
            path: dir.to_owned(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            let is_manifest = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if is_manifest && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(ManifestError::Empty {
                path: dir.to_owned(),
            });
        }
        let mut all = Manifests::default();
        let mut bytes = 0;
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
                path: path.clone(),
                source,
            })?;
            bytes += text.len();
            let source_name = path.display().to_string();
            if bytes > MAX_BYTES {
                return Err(ManifestError::TooLarge { source_name });
            }
            all.objects
                .extend(Manifests::parse(&text, &source_name)?.objects);
            if all.objects.len() > MAX_OBJECTS {
                return Err(ManifestError::TooMany { source_name });
            }
        }
        Ok(all)
    }

    /// The documents of `text` (`---`-separated YAML, or JSON); empty documents are skipped.
    /// `source_name` says in errors where the text came from.
    pub fn parse(text: &str, source_name: &str) -> Result<Manifests, ManifestError> {
        if text.len() > MAX_BYTES {
            return Err(ManifestError::TooLarge {
                source_name: source_name.to_owned(),
            });
        }
        let invalid = |document: usize, message: String| ManifestError::Invalid {
            source_name: source_name.to_owned(),
            document,
            message,
        };
        let mut objects = Vec::new();
        for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
            let number = index + 1;
            let value = serde_json::Value::deserialize(document)
                .map_err(|error| invalid(number, error.to_string()))?;
            if value.is_null() {
                continue;
            }
            if objects.len() == MAX_OBJECTS {
                return Err(ManifestError::TooMany {
                    source_name: source_name.to_owned(),
                });
            }
            objects.push(manifest(value).map_err(|message| invalid(number, message))?);
        }
        Ok(Manifests { objects })
    }
}

/// One document as an object to apply: it needs `apiVersion`, `kind` and `metadata.name`.
fn manifest(value: serde_json::Value) -> Result<Manifest, String> {
    let text = |field: &str| {
        value
            .get(field)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("{field} is required"))
    };
    let api_version = text("apiVersion")?;
    let kind = text("kind")?;
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group.to_owned(), version.to_owned()),
        None => (String::new(), api_version.clone()),
    };
    let object: DynamicObject =
        serde_json::from_value(value).map_err(|error| format!("{kind}: {error}"))?;
    if object
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(format!("{kind}: metadata.name is required"));
    }
    Ok(Manifest {
        gvk: GroupVersionKind::gvk(&group, &version, &kind),
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_become_objects_in_order() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: monitoring}\n---\n\
                    ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n\
                    metadata: {name: prometheus}\nrules: []\n";
        let manifests = Manifests::parse(text, "stack.yaml").expect("valid");
        let kinds: Vec<_> = manifests.objects.iter().map(|m| m.describe()).collect();
        assert_eq!(kinds, ["Namespace monitoring", "ClusterRole prometheus"]);
        assert_eq!(manifests.objects[1].gvk.group, "rbac.authorization.k8s.io");
        assert_eq!(manifests.objects[1].gvk.version, "v1");
        assert_eq!(manifests.objects[0].gvk.group, "");
    }

    #[test]
    fn a_document_without_kind_or_name_names_its_place() {
        let error = Manifests::parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata: {name: b}\n",
            "init-manifest",
        )
        .expect_err("no kind");
        assert_eq!(
            error.to_string(),
            "init-manifest: document 2: kind is required"
        );
        let error = Manifests::parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "x")
            .expect_err("no name");
        assert_eq!(
            error.to_string(),
            "x: document 1: ConfigMap: metadata.name is required"
        );
        let error = Manifests::parse("kind: [", "x").expect_err("not YAML");
        assert!(error.to_string().starts_with("x: document 1: "), "{error}");
    }

    #[test]
    fn limits_hold() {
        let one = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n";
        let error =
            Manifests::parse(&one.repeat(MAX_OBJECTS + 1), "init-manifest").expect_err("too many");
        assert_eq!(
            error.to_string(),
            format!("init-manifest: more than {MAX_OBJECTS} objects")
        );
        let error =
            Manifests::parse(&" ".repeat(MAX_BYTES + 1), "init-manifest").expect_err("too big");
        assert_eq!(
            error.to_string(),
            format!("init-manifest: more than {MAX_BYTES} bytes")
        );
    }

    #[test]
    fn the_shipped_metrics_stack_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/metrics-stack");
        let stack = Manifests::load_dir(&dir).expect("deploy/k8s/metrics-stack");
        let kinds: Vec<_> = stack.objects.iter().map(|m| m.gvk.kind.as_str()).collect();
        assert_eq!(kinds.first(), Some(&"Namespace"));
        for kind in ["Deployment", "Service", "ConfigMap", "ClusterRole"] {
            assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
        }
    }
}
