//! The simulator's fault switches from outside the library, so that a person can make happen by
//! hand what a test makes happen in code (a stockout, a slow cloud, a flaky API server):
//!
//! - [`SimFlags`]: command-line flags, shared by the `testcluster-sim` binary and `tcctl up`, for the
//!   cloud's delays and the initial [`FaultSettings`];
//! - [`router`]: an HTTP endpoint that shows and changes the fault settings at runtime
//!   (`GET|PUT|DELETE /faults`, `PUT|DELETE /faults/zones/{zone}`, `PUT /faults/api`,
//!   `POST /faults/drop-watches`), behind the simulator's admin token.

pub mod duration;
mod flags;
mod http;

pub use flags::{DelayFlags, FaultFlags, SimFlags};
pub use http::{FaultSwitches, router};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::apiserver::ApiFaultSettings;
use crate::cloud::ZoneFault;

/// Every fault setting: per location (zone or region), and the management API server's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultSettings {
    pub zones: BTreeMap<String, ZoneFault>,
    pub api: ApiFaultSettings,
}
