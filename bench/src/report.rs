//! What every scenario reports: the machine, the commit, the parameters, and
//! per-case figures as the median of several runs with their spread. Printed
//! as JSON so results can be compared by tools, and summarized for people.

use std::process::Command;

use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model,
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
        }
    }
}

pub fn git_commit() -> String {
    // The checkout the bench was built from, wherever it is run.
    Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Median, minimum and maximum of several runs' throughput.
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let median = if v.is_empty() {
            0.0
        } else if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Spread { median, min: v.first().copied().unwrap_or(0.0), max: v.last().copied().unwrap_or(0.0) }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[1.0, 2.0, 3.0, 10.0]).median, 2.5);
    }
}

/// The JSON every scenario prints: what ran where (scenario, machine, commit,
/// parameters), then the scenario's own results at the same level.
#[derive(Serialize)]
struct Document<'a, P: Serialize, R: Serialize> {
    scenario: &'static str,
    machine: Machine,
    git_commit: String,
    params: &'a P,
    #[serde(flatten)]
    results: R,
    /// With `--pre-publish`: what the hook served over the whole process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pre_publish_hook: Option<crate::hook::HookStats>,
}

/// Prints the scenario's JSON document on stdout and returns it.
pub fn emit<P: Serialize, R: Serialize>(scenario: &'static str, params: &P, results: R) -> Result<String, String> {
    let pre_publish_hook = crate::hook::stats();
    if let Some(hook) = &pre_publish_hook {
        eprintln!("{scenario}: {} in all", hook.line());
    }
    let doc =
        Document { scenario, machine: Machine::detect(), git_commit: git_commit(), params, results, pre_publish_hook };
    let json = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    println!("{json}");
    let m = &doc.machine;
    let hook = if doc.pre_publish_hook.is_some() { ", with a pre-publish hook" } else { "" };
    let subtitle = format!("commit {}, {} CPUs ({}), kernel {}{hook}", doc.git_commit, m.cpus, m.cpu_model, m.kernel);
    crate::plot::write(scenario, &subtitle)?;
    Ok(json)
}
