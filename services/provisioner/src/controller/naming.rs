//! Names and places: the cloud cluster's name and the region of a location.

use rand::Rng as _;

use crate::validation::CLUSTER_NAME_SUFFIX_LEN;

/// `<name>-<5 random [a-z0-9]>`, as the seed names its clusters.
pub fn generate_cluster_name(name: &str) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let suffix: String = (0..CLUSTER_NAME_SUFFIX_LEN)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect();
    format!("{name}-{suffix}")
}

/// The region of a zone (`europe-west2-b` → `europe-west2`); a region stays as it is.
pub fn region_of(location: &str) -> String {
    match location.rsplit_once('-') {
        // Zones end in a single letter (`-a`, `-b`, ...); regions end in a word with digits.
        Some((region, zone)) if zone.len() == 1 && region.contains('-') => region.to_owned(),
        _ => location.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_follow_the_seed() {
        let name = generate_cluster_name("testme-1");
        let (stem, suffix) = name.rsplit_once('-').unwrap_or_default();
        assert_eq!(stem, "testme-1");
        assert_eq!(suffix.len(), 5);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(generate_cluster_name("a"), generate_cluster_name("a"));
    }

    #[test]
    fn regions_come_from_zones() {
        assert_eq!(region_of("europe-west2-b"), "europe-west2");
        assert_eq!(region_of("us-central1-a"), "us-central1");
        assert_eq!(region_of("europe-west2"), "europe-west2");
        assert_eq!(region_of("local"), "local");
    }
}
