//! SHA-256 of a token: how tokens are compared and remembered without being kept.

/// The SHA-256 digest of `token`.
pub fn sha256(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}
