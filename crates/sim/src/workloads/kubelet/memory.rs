//! A container's memory limit, enforced on its process group.
//!
//! A real node puts the container in a memory cgroup and the kernel's OOM killer ends it at the
//! limit. Cgroups need root or a delegated hierarchy, which a developer's machine rarely gives, and
//! `RLIMIT_AS` would be a different rule (it limits address space, so runtimes that reserve large
//! virtual ranges fail at start, and an allocation fails instead of the process being killed). So the
//! kubelet samples the resident set size of every process in the container's process group from
//! `/proc` and SIGKILLs the group when the sum exceeds the limit: the observable outcome (exit code
//! 137, `OOMKilled`) is the real one. A process that allocates faster than the sampling interval can
//! overshoot the limit briefly before it is killed.

use std::time::Duration;

/// How often the resident set size is sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// The bytes of a Kubernetes memory quantity (`128Mi`, `1G`, `500000`, `1e6`), `None` when it does
/// not parse.
pub fn parse_quantity(quantity: &str) -> Option<u64> {
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let quantity = quantity.trim();
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| quantity.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((quantity, 1.0));
    let value: f64 = number.parse().ok()?;
    let bytes = (value * factor).ceil();
    (bytes.is_finite() && bytes >= 0.0 && bytes <= u64::MAX as f64).then_some(bytes as u64)
}

/// The summed resident set size, in bytes, of every process whose process group is `group`.
pub fn group_rss(group: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| process_group(*pid) == Some(group))
        .filter_map(rss_bytes)
        .sum()
}

fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name: state, ppid, pgrp.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("128Mi"), Some(128 * 1024 * 1024));
        assert_eq!(parse_quantity("1G"), Some(1_000_000_000));
        assert_eq!(parse_quantity("500000"), Some(500_000));
        assert_eq!(parse_quantity("1.5Ki"), Some(1536));
        assert_eq!(parse_quantity("1e3"), Some(1000));
        assert_eq!(parse_quantity("lots"), None);
        assert_eq!(parse_quantity("-1Mi"), None);
    }

    #[test]
    fn this_process_group_has_a_resident_set() {
        let group = rustix::process::getpgrp().as_raw_nonzero().get();
        let group = u32::try_from(group).expect("positive pid");
        assert!(group_rss(group) > 0);
    }
}
