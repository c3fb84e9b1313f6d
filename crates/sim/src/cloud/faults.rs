//! Per-zone cloud faults: stockouts, quota shortages and slow operations, with GKE's real texts.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::RwLock;

/// Switches for cloud failures, keyed by location (a zone such as `europe-west2-b`, or a region for
/// regional clusters).
#[derive(Default)]
pub struct ZoneFaults {
    zones: RwLock<HashMap<String, ZoneFault>>,
}

/// The faults of one location: what `GET /faults` shows and `PUT /faults/zones/{zone}` sets.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ZoneFault {
    /// Every create of a cluster or node pool here ends in GKE's stockout.
    pub stockout: bool,
    /// vCPUs the project still has in this location's region; `None` means unlimited.
    pub cpu_quota: Option<f64>,
    /// Added to every create here.
    #[serde(with = "crate::admin::duration")]
    pub create_delay: Duration,
    /// Added to every delete here.
    #[serde(with = "crate::admin::duration")]
    pub delete_delay: Duration,
}

/// Why the cloud refused to create nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum CloudFailure {
    /// The zone has no capacity; GKE reports this asynchronously, in the operation.
    Stockout { zone: String },
    /// The project's CPU quota is too small; GKE refuses the call with 403.
    Quota {
        project: String,
        requested: f64,
        available: f64,
    },
}

impl CloudFailure {
    /// The text GKE puts in the operation's `statusMessage` / `error.message`, or the 403 body.
    pub fn message(&self) -> String {
        match self {
            CloudFailure::Stockout { zone } => format!(
                "Try a different location, or try again later: Google Compute Engine does not have \
                 enough resources available to fulfill request: {zone}."
            ),
            CloudFailure::Quota {
                project,
                requested,
                available,
            } => format!(
                "Insufficient regional quota to satisfy request: resource \"CPUS\": request requires \
                 '{requested:.1}' and is short '{short:.1}'. project has a quota of '{available:.1}' \
                 with '{available:.1}' available. View and manage quotas at \
                 https://console.cloud.google.com/iam-admin/quotas?usage=USED&project={project}.",
                short = requested - available,
            ),
        }
    }
}

impl ZoneFaults {
    /// Makes every create in `location` end in a stockout (or stops it).
    pub fn set_stockout(&self, location: &str, on: bool) {
        self.update(location, |f| f.stockout = on);
    }

    /// Limits the vCPUs available to new nodes in `location`; `None` lifts the limit.
    pub fn set_cpu_quota(&self, location: &str, vcpus: Option<f64>) {
        self.update(location, |f| f.cpu_quota = vcpus);
    }

    /// Clears every fault.
    pub fn clear(&self) {
        self.zones.write().clear();
    }

    /// Replaces the faults of `location`; the default clears them.
    pub fn set(&self, location: &str, fault: ZoneFault) {
        let mut zones = self.zones.write();
        if fault == ZoneFault::default() {
            zones.remove(location);
        } else {
            zones.insert(location.to_owned(), fault);
        }
    }

    /// Every location with a fault, as it is now.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, ZoneFault> {
        self.zones
            .read()
            .iter()
            .map(|(zone, fault)| (zone.clone(), fault.clone()))
            .collect()
    }

    /// A quota failure, if asking for `nodes` machines of `machine_type` exceeds the quota.
    pub fn quota_check(
        &self,
        project: &str,
        location: &str,
        machine_type: &str,
        nodes: u32,
    ) -> Result<(), CloudFailure> {
        let Some(available) = self.get(location).cpu_quota else {
            return Ok(());
        };
        let requested = f64::from(nodes) * f64::from(vcpus_of(machine_type));
        if requested <= available {
            return Ok(());
        }
        Err(CloudFailure::Quota {
            project: project.to_owned(),
            requested,
            available,
        })
    }

    /// A stockout failure, if `location` is out of capacity.
    pub fn stockout_check(&self, location: &str) -> Result<(), CloudFailure> {
        if self.get(location).stockout {
            return Err(CloudFailure::Stockout {
                zone: location.to_owned(),
            });
        }
        Ok(())
    }

    pub fn create_delay(&self, location: &str) -> Duration {
        self.get(location).create_delay
    }

    pub fn delete_delay(&self, location: &str) -> Duration {
        self.get(location).delete_delay
    }

    fn get(&self, location: &str) -> ZoneFault {
        self.zones.read().get(location).cloned().unwrap_or_default()
    }

    fn update(&self, location: &str, change: impl FnOnce(&mut ZoneFault)) {
        change(self.zones.write().entry(location.to_owned()).or_default());
    }
}

/// vCPUs of a GCE machine type (`n1-standard-4` → 4); unknown shapes count as 2.
pub fn vcpus_of(machine_type: &str) -> u32 {
    machine_type
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_message_matches_gke() {
        let faults = ZoneFaults::default();
        faults.set_cpu_quota("us-central1-a", Some(24.0));
        assert_eq!(
            faults.quota_check("p", "us-central1-a", "n1-standard-4", 6),
            Ok(())
        );
        let failure = faults
            .quota_check("p", "us-central1-a", "n1-standard-8", 9)
            .expect_err("72 vCPUs exceed 24");
        assert!(failure.message().starts_with(
            "Insufficient regional quota to satisfy request: resource \"CPUS\": request requires \
             '72.0' and is short '48.0'. project has a quota of '24.0' with '24.0' available."
        ));
    }

    #[test]
    fn stockout_message_names_the_zone() {
        let faults = ZoneFaults::default();
        faults.set_stockout("europe-west2-b", true);
        assert_eq!(faults.stockout_check("europe-west2-a"), Ok(()));
        assert_eq!(
            faults.stockout_check("europe-west2-b").map_err(|f| f.message()),
            Err("Try a different location, or try again later: Google Compute Engine does not have \
                 enough resources available to fulfill request: europe-west2-b."
                .to_owned())
        );
    }
}
