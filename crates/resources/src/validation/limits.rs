//! Every input limit, in one place. The proto comments (proto/testcluster/v1/*.proto) quote them.
//!
//! Each limit is generous for a real CI job and small enough that a whole request stays under the
//! broker's 2 MiB message limit and the object under etcd's 1.5 MiB:
//! init manifest (< 1 MiB) + spec strings (512 KiB) + description (128 KiB) + other annotations
//! (64 KiB) + labels (64 × 317 bytes) ≈ 1.75 MiB per request, and the object without the init
//! manifest ≈ 0.73 MiB.

/// Violations reported per request or object; the rest are counted ("and N more").
pub const MAX_VIOLATIONS: usize = 32;

/// GKE's limit on a cluster name.
pub const GKE_MAX_CLUSTER_NAME_LEN: usize = 40;
/// Random characters of a generated name, and of the cloud cluster name's suffix.
pub const NAME_SUFFIX_LEN: usize = 5;
/// Longest test cluster name: the cloud cluster is `<name>-<5 random characters>`.
pub const MAX_NAME_LEN: usize = GKE_MAX_CLUSTER_NAME_LEN - 1 - NAME_SUFFIX_LEN;
/// Longest name prefix: room for the generated part as well.
pub const MAX_NAME_PREFIX_LEN: usize = MAX_NAME_LEN - NAME_SUFFIX_LEN;

/// A test cluster is for tests: more nodes than this is a typo or a runaway bill.
pub const MAX_NODES: i32 = 100;
/// GCP project IDs are at most 30 characters; a domain-scoped one (`example.com:proj`) adds
/// the domain.
pub const MAX_PROJECT_LEN: usize = 128;
/// Zone, region, machine type and template names are short GCP / DNS-style identifiers.
pub const MAX_IDENTIFIER_LEN: usize = 63;
/// `1.30.5-gke.1014001` and the like.
pub const MAX_KUBERNETES_VERSION_LEN: usize = 64;
/// An image reference: the registry's 255-character repository limit, a tag and a digest.
pub const MAX_IMAGE_LEN: usize = 512;
/// Arguments of the runner's command.
pub const MAX_COMMAND_ARGS: usize = 256;
/// One argument: room for an inline `sh -c` script.
pub const MAX_COMMAND_ARG_BYTES: usize = 32 * 1024;
/// Environment variables of the runner.
pub const MAX_ENV: usize = 256;
/// One environment variable's name.
pub const MAX_ENV_NAME_LEN: usize = 256;
/// One environment variable's literal value.
pub const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;
/// Entries of `imagesToTest`.
pub const MAX_IMAGES_TO_TEST: usize = 64;
/// A key of `imagesToTest`.
pub const MAX_IMAGES_TO_TEST_KEY_LEN: usize = 253;
/// The sum of every string in the spec: what the per-field limits allow in a few fields must not
/// add up across all of them (256 env values of 32 KiB would be 8 MiB).
pub const MAX_SPEC_BYTES: usize = 512 * 1024;
/// The description (annotation `ci.cilium.io/cluster-description`).
pub const MAX_DESCRIPTION_BYTES: usize = 128 * 1024;
/// Each GitHub field (owner, repository, status context); GitHub's own limits are lower.
pub const MAX_GITHUB_FIELD_LEN: usize = 256;
/// Extra labels of a request.
pub const MAX_LABELS: usize = 64;
/// Extra annotations of a request.
pub const MAX_ANNOTATIONS: usize = 64;
/// The sum of the extra annotations' keys and values.
pub const MAX_ANNOTATIONS_BYTES: usize = 64 * 1024;
/// A ConfigMap holds at most 1 MiB in all; 1 KiB is left for its metadata.
pub const MAX_INIT_MANIFEST_BYTES: usize = 1024 * 1024 - 1024;
/// The longest `ttl`, `holdOnFailure` or `jobSpec.deadline` that may be asked for (a week): a
/// typo such as `2000h` is refused rather than cut to the operator's maximum without a word.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 60 * 60);
/// A duration string (`1h 30m`).
pub const MAX_DURATION_LEN: usize = 64;
