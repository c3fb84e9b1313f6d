//! Generated names. What makes a name valid is the shared rule
//! (`testcluster_resources::validation`); generating one is the broker's.

use rand::Rng as _;
use testcluster_resources::validation::limits::NAME_SUFFIX_LEN;

pub use testcluster_resources::object_names::user_config_map;

/// Kubernetes' alphabet for generated names (no vowels, so no words; no look-alike characters).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `prefix` plus 5 random characters, as Kubernetes' `generateName` does. The broker generates
/// names itself, rather than leaving it to the API server, because the user ConfigMap's name
/// (`<name>-user`) goes into the spec before the object is created.
pub fn generate(prefix: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..NAME_SUFFIX_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use testcluster_resources::validation::name_problem;

    #[test]
    fn generated_names_are_valid() {
        for _ in 0..100 {
            let name = generate("ci-");
            assert_eq!(name.len(), 8);
            assert!(name.starts_with("ci-"));
            assert_eq!(name_problem(&name), None);
        }
    }
}
