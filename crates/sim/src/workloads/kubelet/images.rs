//! Image "pulls". No image is ever fetched; an image matters for whether its pull fails, which is
//! decided by [`ImagePullRules`], for the names and messages a real kubelet with containerd would
//! show, and, when [`ImageBinaries`] maps it to a local executable, for what a container without a
//! `command` runs.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// Which images the simulated node cannot pull.
///
/// By default every image whose registry host ends in `.invalid` (a TLD reserved never to resolve,
/// RFC 2606), e.g. `registry.invalid/app:1`, fails with containerd's `NotFound` error.
#[derive(Clone, Debug)]
pub struct ImagePullRules {
    /// Registry host suffixes that cannot be pulled from.
    pub unpullable_registry_suffixes: Vec<String>,
    /// Image references that cannot be pulled: exact, or a prefix when ending in `*`. Matched against
    /// the image as written in the pod and against its fully qualified form.
    pub unpullable_images: Vec<String>,
}

impl Default for ImagePullRules {
    fn default() -> Self {
        ImagePullRules {
            unpullable_registry_suffixes: vec![".invalid".to_owned()],
            unpullable_images: Vec::new(),
        }
    }
}

impl ImagePullRules {
    pub fn can_pull(&self, image: &str) -> bool {
        let full = ImageRef::parse(image).full();
        let host = registry_host(image).unwrap_or("docker.io");
        let unpullable_host = self
            .unpullable_registry_suffixes
            .iter()
            .any(|suffix| host.ends_with(suffix.as_str()));
        let unpullable_image =
            self.unpullable_images
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => image.starts_with(prefix) || full.starts_with(prefix),
                    None => image == pattern || full == ImageRef::parse(pattern).full,
                });
        !(unpullable_host || unpullable_image)
    }
}

/// Image references mapped to local executables, standing in for the image's entrypoint.
///
/// A reference with a tag or digest (`example.com/app:1`) maps that image only; one without
/// (`example.com/app`) maps every tag and digest of the repository. References are compared fully
/// qualified, so `busybox` and `docker.io/library/busybox` are the same repository. A mapped image
/// always "pulls".
#[derive(Clone, Debug, Default)]
pub struct ImageBinaries {
    /// Fully qualified reference (exact) or repository (any tag), and the executable.
    exact: Vec<(String, PathBuf)>,
    repositories: Vec<(String, PathBuf)>,
}

impl ImageBinaries {
    pub fn insert(&mut self, reference: &str, binary: impl Into<PathBuf>) {
        let last_segment = reference.rsplit('/').next().unwrap_or(reference);
        let binary = binary.into();
        if reference.contains('@') || last_segment.contains(':') {
            self.exact.push((ImageRef::parse(reference).full, binary));
        } else {
            self.repositories.push((
                repository(&ImageRef::parse(reference).full).to_owned(),
                binary,
            ));
        }
    }

    /// Parses `reference=path`, as the `--image-map` flag takes it.
    pub fn parse_mapping(mapping: &str) -> Result<(String, PathBuf), String> {
        match mapping.split_once('=') {
            Some((reference, path)) if !reference.is_empty() && !path.is_empty() => {
                Ok((reference.to_owned(), PathBuf::from(path)))
            }
            _ => Err(format!(
                "expected <image reference>=<path to executable>, got {mapping:?}"
            )),
        }
    }

    /// The executable `image` runs, if it is mapped: an exact mapping first, then its repository's.
    pub fn binary_for(&self, image: &str) -> Option<&Path> {
        let full = ImageRef::parse(image).full;
        let repo = repository(&full);
        self.exact
            .iter()
            .find(|(reference, _)| *reference == full)
            .or_else(|| self.repositories.iter().find(|(r, _)| r == repo))
            .map(|(_, binary)| binary.as_path())
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.repositories.is_empty()
    }
}

/// A fully qualified reference without its tag or digest.
fn repository(full: &str) -> &str {
    let name = full.split('@').next().unwrap_or(full);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

/// An image reference split as containerd normalises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// The image as the kubelet names it: the pod's reference with `:latest` added when it has no
    /// tag or digest (`applyDefaultImageTag`).
    pub with_tag: String,
    /// Fully qualified: `docker.io/library/busybox:latest`.
    full: String,
}

impl ImageRef {
    pub fn parse(image: &str) -> ImageRef {
        let last_segment = image.rsplit('/').next().unwrap_or(image);
        let has_tag_or_digest = image.contains('@') || last_segment.contains(':');
        let with_tag = if has_tag_or_digest {
            image.to_owned()
        } else {
            format!("{image}:latest")
        };
        let full = match registry_host(&with_tag) {
            Some(_) => with_tag.clone(),
            None if with_tag.contains('/') => format!("docker.io/{with_tag}"),
            None => format!("docker.io/library/{with_tag}"),
        };
        ImageRef { with_tag, full }
    }

    pub fn full(&self) -> String {
        self.full.clone()
    }

    /// A stable fake digest reference for `imageID`.
    pub fn image_id(&self) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.full.hash(&mut hasher);
        let half = format!("{:016x}", hasher.finish());
        let name = self
            .full
            .split('@')
            .next()
            .unwrap_or(&self.full)
            .rsplit_once(':')
            .filter(|(_, tag)| !tag.contains('/'))
            .map_or(self.full.as_str(), |(name, _)| name);
        format!("{name}@sha256:{}", half.repeat(4))
    }

    /// containerd's error for an image that does not exist, as the CRI returns it.
    pub fn not_found_error(&self) -> String {
        let full = &self.full;
        format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{full}\": \
             failed to resolve reference \"{full}\": {full}: not found"
        )
    }
}

/// The registry host of an image reference, if its first path component names one.
fn registry_host(image: &str) -> Option<&str> {
    let (first, _) = image.split_once('/')?;
    (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_like_containerd() {
        let busybox = ImageRef::parse("busybox");
        assert_eq!(busybox.with_tag, "busybox:latest");
        assert_eq!(busybox.full(), "docker.io/library/busybox:latest");
        assert_eq!(
            ImageRef::parse("cilium/cilium-test:8cfdbfe").full(),
            "docker.io/cilium/cilium-test:8cfdbfe"
        );
        let private = ImageRef::parse("registry.invalid:5000/team/app");
        assert_eq!(private.with_tag, "registry.invalid:5000/team/app:latest");
        assert_eq!(private.full(), "registry.invalid:5000/team/app:latest");
        assert!(
            busybox
                .image_id()
                .starts_with("docker.io/library/busybox@sha256:")
        );
    }

    #[test]
    fn binaries_by_reference_and_by_repository() {
        let mut map = ImageBinaries::default();
        map.insert("example.com/app", "/bin/app");
        map.insert("example.com/app:2", "/bin/app2");
        map.insert("busybox:1.36", "/bin/bb");
        assert_eq!(
            map.binary_for("example.com/app:1"),
            Some(Path::new("/bin/app"))
        );
        assert_eq!(
            map.binary_for("example.com/app"),
            Some(Path::new("/bin/app"))
        );
        assert_eq!(
            map.binary_for("example.com/app@sha256:abc"),
            Some(Path::new("/bin/app"))
        );
        assert_eq!(
            map.binary_for("example.com/app:2"),
            Some(Path::new("/bin/app2"))
        );
        assert_eq!(
            map.binary_for("docker.io/library/busybox:1.36"),
            Some(Path::new("/bin/bb"))
        );
        assert_eq!(map.binary_for("busybox"), None);
        assert_eq!(map.binary_for("example.com/other:1"), None);
        assert_eq!(
            ImageBinaries::parse_mapping("a:1=/x/y"),
            Ok(("a:1".to_owned(), PathBuf::from("/x/y")))
        );
        assert!(ImageBinaries::parse_mapping("a:1").is_err());
    }

    #[test]
    fn pull_rules() {
        let rules = ImagePullRules {
            unpullable_images: vec!["busybox:broken".into(), "quay.io/bad/*".into()],
            ..ImagePullRules::default()
        };
        assert!(rules.can_pull("busybox"));
        assert!(rules.can_pull("gcr.io/x/y:1"));
        assert!(!rules.can_pull("registry.invalid/app:1"));
        assert!(!rules.can_pull("busybox:broken"));
        assert!(!rules.can_pull("docker.io/library/busybox:broken"));
        assert!(!rules.can_pull("quay.io/bad/thing"));
    }

    #[test]
    fn not_found_message() {
        assert_eq!(
            ImageRef::parse("registry.invalid/app:1").not_found_error(),
            "rpc error: code = NotFound desc = failed to pull and unpack image \
             \"registry.invalid/app:1\": failed to resolve reference \"registry.invalid/app:1\": \
             registry.invalid/app:1: not found"
        );
    }
}
