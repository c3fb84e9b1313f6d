//! Pod addresses. Every pod gets a loopback address of its own, its `status.podIP`, so that two pods
//! can both listen on port 8080 (`--listen=$(POD_IP):8080`) as they could on a real node. Linux
//! routes all of 127.0.0.0/8 to the loopback interface, so binding any of them needs no setup.
//!
//! Addresses are drawn at random from 127.1.0.0 - 127.127.255.255 (Services get theirs from the
//! upper half, see [`crate::apiserver`]'s defaults) rather than counted up, so that two simulators on
//! one machine (parallel tests) almost never hand out the same one.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use parking_lot::Mutex;

/// The addresses in use, by pod uid.
#[derive(Debug, Default)]
pub struct PodAddresses {
    in_use: Mutex<HashMap<String, Ipv4Addr>>,
}

impl PodAddresses {
    /// The pod's address; the same one again for the same uid.
    pub fn allocate(&self, uid: &str) -> Ipv4Addr {
        let mut in_use = self.in_use.lock();
        if let Some(address) = in_use.get(uid) {
            return *address;
        }
        let address = loop {
            let candidate = Ipv4Addr::new(
                127,
                rand::random_range(1..=127),
                rand::random(),
                rand::random_range(1..=254),
            );
            if !in_use.values().any(|a| *a == candidate) {
                break candidate;
            }
        };
        in_use.insert(uid.to_owned(), address);
        address
    }

    pub fn release(&self, uid: &str) {
        self.in_use.lock().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_loopback_stable_and_distinct() {
        let addresses = PodAddresses::default();
        let a = addresses.allocate("a");
        assert!(a.is_loopback() && a.octets()[1] <= 127 && a != Ipv4Addr::LOCALHOST);
        assert_eq!(addresses.allocate("a"), a);
        assert_ne!(addresses.allocate("b"), a);
        addresses.release("a");
        assert_eq!(addresses.in_use.lock().len(), 1);
    }
}
