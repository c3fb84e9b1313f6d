//! The simulator's command-line flags: how long the cloud takes, which faults are on from the
//! start, and how containers run. The same flags change nothing else, so `testcluster-sim` and
//! `tcctl up` share them.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::FaultSettings;
use crate::SimConfig;
use crate::workloads::ImageBinaries;

/// Flags for the simulated cloud's speed and faults, and its workloads.
#[derive(Clone, Debug, Args)]
pub struct SimFlags {
    #[command(flatten)]
    pub delays: DelayFlags,
    #[command(flatten)]
    pub faults: FaultFlags,
    #[command(flatten)]
    pub workloads: WorkloadFlags,
}

/// How containers run; set at start.
#[derive(Clone, Debug, Default, Args)]
pub struct WorkloadFlags {
    /// Runs an image as a local executable: `<image reference>=<path>`, repeatable. A reference
    /// without a tag or digest maps every tag of the repository. A container of a mapped image without
    /// a `command` runs the executable with its `args`.
    #[arg(long = "image-map", value_name = "REF=PATH", env = "TESTCLUSTER_SIM_IMAGE_MAP", value_delimiter = ',', value_parser = ImageBinaries::parse_mapping, help_heading = "Simulated workloads")]
    pub image_map: Vec<(String, PathBuf)>,

    /// Run workloads in every test cluster too (Deployments, Services, a kubelet, with the same
    /// image map), so that what is installed there runs and answers the test cluster's service
    /// proxy. Each test cluster then costs a kubelet's watches.
    #[arg(
        long,
        env = "TESTCLUSTER_SIM_TEST_CLUSTER_WORKLOADS",
        help_heading = "Simulated workloads"
    )]
    pub test_cluster_workloads: bool,
}

impl WorkloadFlags {
    /// `base` with these flags' image map (added to its own) and test-cluster workloads (turned
    /// on if asked; never off).
    pub fn config(&self, mut base: SimConfig) -> SimConfig {
        for (reference, binary) in &self.image_map {
            base.workloads.image_binaries.insert(reference, binary);
        }
        base.test_cluster_workloads |= self.test_cluster_workloads;
        base
    }
}

/// How long the simulated cloud takes, and how long the API server keeps Events; set at start.
#[derive(Clone, Debug, Args)]
pub struct DelayFlags {
    /// Creating a cluster (ContainerCluster, or GKE's clusters.create), as a number with a unit
    /// (`300ms`, `2s`, `1m`).
    #[arg(long, env = "TESTCLUSTER_SIM_CLUSTER_CREATE_DELAY", default_value = "300ms", value_parser = humantime::parse_duration, help_heading = "Simulated cloud")]
    pub cluster_create_delay: Duration,

    /// Creating a node pool (ContainerNodePool, or GKE's nodePools.create).
    #[arg(long, env = "TESTCLUSTER_SIM_NODE_POOL_CREATE_DELAY", default_value = "200ms", value_parser = humantime::parse_duration, help_heading = "Simulated cloud")]
    pub node_pool_create_delay: Duration,

    /// Creating any other Config Connector object (network, subnetwork, IAM).
    #[arg(long, env = "TESTCLUSTER_SIM_OTHER_CREATE_DELAY", default_value = "50ms", value_parser = humantime::parse_duration, help_heading = "Simulated cloud")]
    pub other_create_delay: Duration,

    /// Deleting any cloud resource (and resizing a GKE node pool).
    #[arg(long, env = "TESTCLUSTER_SIM_DELETE_DELAY", default_value = "100ms", value_parser = humantime::parse_duration, help_heading = "Simulated cloud")]
    pub delete_delay: Duration,

    /// How long the management API server keeps Events (kube-apiserver's `--event-ttl`).
    #[arg(long, env = "TESTCLUSTER_SIM_EVENT_TTL", default_value = "1h", value_parser = humantime::parse_duration, help_heading = "Simulated API server")]
    pub event_ttl: Duration,
}

/// Which faults are on; set at start, or changed later through the admin endpoint.
#[derive(Clone, Debug, Default, Args)]
pub struct FaultFlags {
    /// A zone (or region) out of capacity: every cluster or node pool created there fails with
    /// GKE's stockout ("Google Compute Engine does not have enough resources available to fulfill
    /// request: ZONE."). Repeat for more zones.
    #[arg(long, value_name = "ZONE", help_heading = "Simulated faults")]
    pub stockout: Vec<String>,

    /// The project's vCPU quota in a location: creates needing more fail with GKE's 403
    /// "Insufficient regional quota". Repeat for more locations.
    #[arg(long, value_name = "LOCATION=VCPUS", value_parser = location_and::<f64>, help_heading = "Simulated faults")]
    pub cpu_quota: Vec<(String, f64)>,

    /// Extra time every create takes in a location.
    #[arg(long, value_name = "LOCATION=DURATION", value_parser = location_and_duration, help_heading = "Simulated faults")]
    pub zone_create_delay: Vec<(String, Duration)>,

    /// Extra time every delete takes in a location.
    #[arg(long, value_name = "LOCATION=DURATION", value_parser = location_and_duration, help_heading = "Simulated faults")]
    pub zone_delete_delay: Vec<(String, Duration)>,

    /// Fraction of the management API server's requests (from outside the simulator) answered 500
    /// InternalError, e.g. 0.05.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = fraction, help_heading = "Simulated faults")]
    pub api_error_rate: f64,

    /// Fraction of requests answered 429 TooManyRequests (with Retry-After).
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = fraction, help_heading = "Simulated faults")]
    pub api_throttle_rate: f64,

    /// Fraction of updates and patches answered 409 Conflict, as if another writer won.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0, value_parser = fraction, help_heading = "Simulated faults")]
    pub api_conflict_rate: f64,

    /// Latency added to every request.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration, help_heading = "Simulated faults")]
    pub api_latency: Duration,

    /// Closes every watch this long after it started, as a load balancer's timeout would; clients
    /// must resume without losing events.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration, help_heading = "Simulated faults")]
    pub drop_watches_after: Duration,
}

impl DelayFlags {
    /// `base` with these flags' delays.
    pub fn config(&self, mut base: SimConfig) -> SimConfig {
        let connector = &mut base.connector;
        connector.cluster_create = self.cluster_create_delay;
        connector.node_pool_create = self.node_pool_create_delay;
        connector.other_create = self.other_create_delay;
        connector.delete = self.delete_delay;
        let gke = &mut base.gke;
        gke.cluster_create = self.cluster_create_delay;
        gke.cluster_delete = self.delete_delay;
        gke.node_pool_create = self.node_pool_create_delay;
        gke.node_pool_delete = self.delete_delay;
        gke.node_pool_resize = self.delete_delay;
        base.event_ttl = Some(self.event_ttl);
        base
    }
}

impl FaultFlags {
    /// The fault settings these flags ask for.
    pub fn settings(&self) -> FaultSettings {
        let mut settings = FaultSettings::default();
        for zone in &self.stockout {
            settings.zones.entry(zone.clone()).or_default().stockout = true;
        }
        for (location, vcpus) in &self.cpu_quota {
            settings
                .zones
                .entry(location.clone())
                .or_default()
                .cpu_quota = Some(*vcpus);
        }
        for (location, delay) in &self.zone_create_delay {
            settings
                .zones
                .entry(location.clone())
                .or_default()
                .create_delay = *delay;
        }
        for (location, delay) in &self.zone_delete_delay {
            settings
                .zones
                .entry(location.clone())
                .or_default()
                .delete_delay = *delay;
        }
        let api = &mut settings.api;
        api.error_rate = self.api_error_rate;
        api.throttle_rate = self.api_throttle_rate;
        api.conflict_rate = self.api_conflict_rate;
        api.latency = self.api_latency;
        api.drop_watches_after = self.drop_watches_after;
        settings
    }
}

fn location_and<T: std::str::FromStr>(text: &str) -> Result<(String, T), String> {
    let (location, value) = text
        .split_once('=')
        .filter(|(location, _)| !location.is_empty())
        .ok_or_else(|| format!("expected LOCATION=VALUE, got {text:?}"))?;
    let value = value
        .parse()
        .map_err(|_| format!("{value:?} is not a valid value for {location}"))?;
    Ok((location.to_owned(), value))
}

fn location_and_duration(text: &str) -> Result<(String, Duration), String> {
    let (location, value) = location_and::<String>(text)?;
    let duration = humantime::parse_duration(&value).map_err(|e| format!("{value:?}: {e}"))?;
    Ok((location, duration))
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?} is not a fraction between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::connector::ConnectorConfig;
    use crate::cloud::gke::GkeConfig;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: SimFlags,
    }

    #[test]
    fn the_delay_flags_default_to_the_simulators_defaults() {
        let cli = Cli::try_parse_from(["sim"]).expect("no flags needed");
        let config = cli.flags.delays.config(SimConfig::default());
        let defaults = ConnectorConfig::default();
        assert_eq!(config.connector.cluster_create, defaults.cluster_create);
        assert_eq!(config.connector.node_pool_create, defaults.node_pool_create);
        assert_eq!(config.connector.other_create, defaults.other_create);
        assert_eq!(config.connector.delete, defaults.delete);
        let defaults = GkeConfig::default();
        assert_eq!(config.gke.cluster_create, defaults.cluster_create);
        assert_eq!(config.gke.cluster_delete, defaults.cluster_delete);
        assert_eq!(config.gke.node_pool_create, defaults.node_pool_create);
        assert_eq!(config.gke.node_pool_delete, defaults.node_pool_delete);
        assert_eq!(config.gke.node_pool_resize, defaults.node_pool_resize);
        assert_eq!(cli.flags.faults.settings(), FaultSettings::default());
    }

    #[test]
    fn fault_flags_become_settings() {
        let cli = Cli::try_parse_from([
            "sim",
            "--stockout",
            "europe-west2-b",
            "--cpu-quota",
            "us-central1=8",
            "--zone-create-delay",
            "europe-west2-b=2s",
            "--api-throttle-rate",
            "0.25",
            "--drop-watches-after",
            "30s",
        ])
        .expect("valid flags");
        let settings = cli.flags.faults.settings();
        let zone = &settings.zones["europe-west2-b"];
        assert!(zone.stockout);
        assert_eq!(zone.create_delay, Duration::from_secs(2));
        assert_eq!(settings.zones["us-central1"].cpu_quota, Some(8.0));
        assert_eq!(settings.api.throttle_rate, 0.25);
        assert_eq!(settings.api.drop_watches_after, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_refused_with_what_was_expected() {
        for bad in [
            ["sim", "--cpu-quota", "eight"],
            ["sim", "--api-error-rate", "5"],
            ["sim", "--delete-delay", "soon"],
            ["sim", "--zone-delete-delay", "zone=later"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
