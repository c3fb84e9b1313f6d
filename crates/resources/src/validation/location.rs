//! GCP shapes: project IDs, zones and regions, machine types, Kubernetes versions. Only the shape
//! is checked here (`mars-1` is no zone); whether a zone exists is GCP's to say.

use super::text::quoted;

/// The shortest and longest GCP project ID.
const PROJECT_ID_LEN: std::ops::RangeInclusive<usize> = 6..=30;

/// A location's parts: the region, and whether the location is a zone within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location<'a> {
    pub region: &'a str,
    pub is_zone: bool,
}

/// Parses a zone (`europe-west2-b`, `us-central1-ai1a`) or region (`europe-west2`,
/// `northamerica-northeast1`).
pub fn parse_location(location: &str) -> Option<Location<'_>> {
    if is_region(location) {
        return Some(Location {
            region: location,
            is_zone: false,
        });
    }
    let (region, zone) = location.rsplit_once('-')?;
    let zone_ok = (1..=4).contains(&zone.len())
        && zone.starts_with(|c: char| c.is_ascii_lowercase())
        && zone
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (zone_ok && is_region(region)).then_some(Location {
        region,
        is_zone: true,
    })
}

/// `<area>-<direction><number>`, as every GCP region is named.
fn is_region(region: &str) -> bool {
    let Some((area, rest)) = region.split_once('-') else {
        return false;
    };
    let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &rest[letters.len()..];
    !area.is_empty()
        && area.chars().all(|c| c.is_ascii_lowercase())
        && !letters.is_empty()
        && letters.chars().all(|c| c.is_ascii_lowercase())
        && !digits.is_empty()
}

pub fn location_problem(location: &str) -> Option<String> {
    parse_location(location).is_none().then(|| {
        format!(
            "{} is not a GCP zone (such as europe-west2-b) or region (such as europe-west2)",
            quoted(location)
        )
    })
}

pub fn region_problem(region: &str) -> Option<String> {
    (!is_region(region)).then(|| {
        format!(
            "{} is not a GCP region (such as europe-west2)",
            quoted(region)
        )
    })
}

/// A project ID (6 to 30 lowercase letters, digits and '-', starting with a letter, not ending
/// with '-'), optionally scoped by a domain (`example.com:my-project`).
pub fn project_problem(project: &str) -> Option<String> {
    let id = match project.split_once(':') {
        Some((domain, id)) if is_domain(domain) => id,
        Some(_) => return Some(format!("{} has an invalid domain", quoted(project))),
        None => project,
    };
    (!(PROJECT_ID_LEN.contains(&id.len()) && is_gcp_name(id))).then(|| {
        format!(
            "{} is not a GCP project ID: 6 to 30 lowercase letters, digits and '-', starting \
             with a letter and not ending with '-'",
            quoted(project)
        )
    })
}

fn is_domain(domain: &str) -> bool {
    domain.contains('.') && crate::object_names::object_name_problem(domain).is_none()
}

/// A GCE machine type (`n1-standard-4`, `e2-custom-4-8192`).
pub fn machine_type_problem(machine_type: &str) -> Option<String> {
    (!is_gcp_name(machine_type)).then(|| {
        format!(
            "{} is not a GCE machine type (lowercase letters, digits and '-')",
            quoted(machine_type)
        )
    })
}

/// A GKE version: `latest`, or `MAJOR.MINOR[.PATCH][-gke.N]` (`1.33`, `1.30.5-gke.1014001`).
pub fn kubernetes_version_problem(version: &str) -> Option<String> {
    let numbers = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let (version_part, gke) = match version.split_once("-gke.") {
        Some((v, build)) => (v, Some(build)),
        None => (version, None),
    };
    let parts: Vec<&str> = version_part.split('.').collect();
    let ok = version == "latest"
        || ((2..=3).contains(&parts.len())
            && parts.iter().all(|part| numbers(part))
            && gke.is_none_or(numbers));
    (!ok).then(|| {
        format!(
            "{} is not a GKE version: \"latest\" or MAJOR.MINOR[.PATCH][-gke.N], such as 1.33",
            quoted(version)
        )
    })
}

/// A lowercase letter, then lowercase letters, digits and '-', not ending with '-'.
fn is_gcp_name(value: &str) -> bool {
    value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_regions() {
        let zone = |region| {
            Some(Location {
                region,
                is_zone: true,
            })
        };
        let region = |region| {
            Some(Location {
                region,
                is_zone: false,
            })
        };
        assert_eq!(parse_location("europe-west2-b"), zone("europe-west2"));
        assert_eq!(parse_location("us-central1-ai1a"), zone("us-central1"));
        assert_eq!(parse_location("europe-west2"), region("europe-west2"));
        assert_eq!(
            parse_location("northamerica-northeast1"),
            region("northamerica-northeast1")
        );
        for bad in [
            "mars-1",
            "mars",
            "Europe-west2-b",
            "europe-west-b",
            "europe-west2-",
            "europe-west2-b-c",
            "europe-west2-abcde",
            "europe-west2-1",
            "",
        ] {
            assert_eq!(parse_location(bad), None, "{bad}");
        }
        assert_eq!(
            location_problem("mars-1").as_deref(),
            Some(
                "\"mars-1\" is not a GCP zone (such as europe-west2-b) or region (such as \
                 europe-west2)"
            )
        );
        assert_eq!(region_problem("europe-west2"), None);
        assert!(region_problem("europe-west2-b").is_some());
    }

    #[test]
    fn projects_machine_types_and_versions() {
        assert_eq!(project_problem("cilium-ci"), None);
        assert_eq!(project_problem("example.com:my-project"), None);
        for bad in [
            "p",
            "Cilium-ci",
            "cilium-ci-",
            "x:cilium-ci",
            &"a".repeat(31),
        ] {
            assert!(project_problem(bad).is_some(), "{bad}");
        }
        assert_eq!(machine_type_problem("e2-custom-4-8192"), None);
        assert!(machine_type_problem("N1 Standard").is_some());
        for good in ["latest", "1.33", "1.30.5", "1.30.5-gke.1014001"] {
            assert_eq!(kubernetes_version_problem(good), None, "{good}");
        }
        for bad in ["1", "v1.30", "1.30.5-gke.", "1.x", "1.2.3.4", ""] {
            assert!(kubernetes_version_problem(bad).is_some(), "{bad}");
        }
    }
}
