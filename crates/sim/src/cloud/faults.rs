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

#[derive(Clone, Debug, Default)]
struct ZoneFault {
    stockout: bool,
    /// vCPUs the project still has in this location's region; `None` means unlimited.
    cpu_quota: Option<f64>,
    create_delay: Option<Duration>,
    delete_delay: Option<Duration>,
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

    /// Delays cluster and node pool creation in `location` (on top of the usual delays).
    pub fn set_create_delay(&self, location: &str, delay: Option<Duration>) {
        self.update(location, |f| f.create_delay = delay);
    }

    /// Delays cluster and node pool deletion in `location`.
    pub fn set_delete_delay(&self, location: &str, delay: Option<Duration>) {
        self.update(location, |f| f.delete_delay = delay);
    }

    /// Clears every fault.
    pub fn clear(&self) {
        self.zones.write().clear();
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
        self.get(location).create_delay.unwrap_or_default()
    }

    pub fn delete_delay(&self, location: &str) -> Duration {
        self.get(location).delete_delay.unwrap_or_default()
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
