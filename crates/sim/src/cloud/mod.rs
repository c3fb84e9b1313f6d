//! The simulated cloud: Config Connector, the GKE REST API, zone faults and the cluster inventory.
//! (Implementation in progress.)
