//! The report: the machine and setup, a summary of every figure beside its target with PASS or
//! MISS (and, for a miss, by how much and where the requests or time go), then the detail tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::sim_metrics::Counts;

/// A measured figure beside its target.
pub struct Figure {
    pub name: String,
    pub measured: String,
    pub target: String,
    pub pass: bool,
    /// For a miss: by how much, and the likely reason.
    pub miss: String,
}

impl Figure {
    /// A figure that should be at most `limit`.
    pub fn at_most(
        name: impl Into<String>,
        value: f64,
        limit: f64,
        unit: &str,
        why: impl FnOnce() -> String,
    ) -> Figure {
        let pass = value <= limit;
        Figure {
            name: name.into(),
            measured: format!("{} {unit}", cell(value)).trim_end().to_owned(),
            target: format!("≤ {} {unit}", cell(limit)).trim_end().to_owned(),
            pass,
            miss: if pass {
                String::new()
            } else {
                format!(
                    "{} ({:.0} %) over; {}",
                    format!("{} {unit}", cell(value - limit)).trim_end(),
                    (value / limit - 1.0) * 100.0,
                    why()
                )
            },
        }
    }

    /// A figure that should be at least `limit`.
    pub fn at_least(
        name: impl Into<String>,
        value: f64,
        limit: f64,
        why: impl FnOnce() -> String,
    ) -> Figure {
        let pass = value >= limit;
        Figure {
            name: name.into(),
            measured: format!("{value:.2}"),
            target: format!("≥ {limit}"),
            pass,
            miss: if pass {
                String::new()
            } else {
                format!("{:.2} short; {}", limit - value, why())
            },
        }
    }
}

/// The summary table, then one line per miss.
pub fn summary(figures: &[Figure]) -> String {
    let mut text = String::from("| figure | measured | target | |\n|---|---:|---:|---|\n");
    for figure in figures {
        let verdict = if figure.pass { "PASS" } else { "**MISS**" };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {verdict} |",
            figure.name, figure.measured, figure.target
        );
    }
    let misses: Vec<&Figure> = figures.iter().filter(|f| !f.pass).collect();
    if !misses.is_empty() {
        text.push_str("\nMisses:\n\n");
        for figure in misses {
            let _ = writeln!(text, "- {}: {}", figure.name, figure.miss);
        }
    }
    text
}

/// The `q` quantile (nearest rank) of `values`, which must be sorted; zero when empty.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    let rank = ((values.len() as f64 * q).ceil() as usize).max(1);
    values.get(rank - 1).copied().unwrap_or_default()
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// p50, p99 and max of each named series, in milliseconds.
pub fn latency_table(series: &[(&str, Vec<Duration>)]) -> String {
    let mut table = String::from("| | p50 | p99 | max | runs |\n|---|---:|---:|---:|---:|\n");
    for (name, values) in series {
        let mut values = values.clone();
        values.sort();
        let _ = writeln!(
            table,
            "| {name} | {:.0} | {:.0} | {:.0} | {} |",
            ms(quantile(&values, 0.5)),
            ms(quantile(&values, 0.99)),
            ms(values.last().copied().unwrap_or_default()),
            values.len()
        );
    }
    table
}

/// Requests per run by resource (rows) and verb (columns), with totals.
pub fn counts_table(counts: &Counts, runs: usize) -> String {
    let mut verbs: Vec<&str> = counts.keys().map(|(verb, _)| verb.as_str()).collect();
    verbs.sort();
    verbs.dedup();
    let mut resources: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for ((verb, resource), n) in counts {
        resources.entry(resource).or_default().insert(verb, *n);
    }
    let per_run = |n: u64| n as f64 / runs.max(1) as f64;
    let mut table = format!("| resource | {} | total |\n|---|", verbs.join(" | "));
    table.push_str(&"---:|".repeat(verbs.len() + 1));
    table.push('\n');
    for (resource, by_verb) in &resources {
        let cells: Vec<String> = verbs
            .iter()
            .map(|verb| {
                by_verb
                    .get(verb)
                    .map_or(String::new(), |n| cell(per_run(*n)))
            })
            .collect();
        let _ = writeln!(
            table,
            "| {resource} | {} | {} |",
            cells.join(" | "),
            cell(per_run(by_verb.values().sum()))
        );
    }
    let by_verb: Vec<String> = verbs
        .iter()
        .map(|verb| {
            let sum = counts
                .iter()
                .filter(|((v, _), _)| v == verb)
                .map(|(_, n)| n)
                .sum();
            cell(per_run(sum))
        })
        .collect();
    let _ = writeln!(
        table,
        "| **total** | {} | **{}** |",
        by_verb.join(" | "),
        cell(per_run(total(counts)))
    );
    table
}

/// The `n` largest (verb, resource) counts per run, such as "apply testclustersgke/status 15.2",
/// each beside its figure in `compared` (counts and runs) when given, such as "(one at a time: 8)".
pub fn top_requests(
    counts: &Counts,
    runs: usize,
    n: usize,
    compared: Option<(&str, &Counts, usize)>,
) -> String {
    let per_run = |count: u64, runs: usize| cell(count as f64 / runs.max(1) as f64);
    let mut largest: Vec<_> = counts.iter().collect();
    largest.sort_by(|a, b| b.1.cmp(a.1));
    let named: Vec<String> = largest
        .iter()
        .take(n)
        .map(|(key, count)| {
            let (verb, resource) = key;
            let beside = compared.map_or(String::new(), |(what, other, other_runs)| {
                let other = other.get(*key).copied().unwrap_or(0);
                format!(" ({what}: {})", per_run(other, other_runs))
            });
            format!("{verb} {resource} {}{beside}", per_run(**count, runs))
        })
        .collect();
    named.join(", ")
}

pub fn total(counts: &Counts) -> u64 {
    counts.values().sum()
}

/// A number without needless decimals.
pub fn cell(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// The machine: CPUs (as nproc counts them) and the CPU model.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map_or("unknown CPU", |rest| {
            rest.trim_start_matches([' ', '\t', ':'])
        });
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs (nproc), {cpu}")
}
