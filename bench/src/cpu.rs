//! CPU time of the processes a scenario loads, read from `/proc`: the
//! server's (utime + stime of its process, every thread), and a database
//! server's (PostgreSQL: its postmaster and every backend it forked, which is
//! where a query's work happens). Figures are in seconds, at the kernel's
//! clock-tick resolution (10 ms), so a scenario reads them around spans of a
//! second or more.

/// The clock ticks per second `/proc/<pid>/stat` counts in (USER_HZ).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// (parent pid, utime + stime in ticks) of one process.
fn stat(pid: u32) -> Option<(u32, u64)> {
    stat_at(&format!("/proc/{pid}/stat"))
}

/// CPU seconds used so far by one thread of this process (its id as
/// `/proc/thread-self` names it).
pub fn thread_seconds(tid: u32) -> Option<f64> {
    let (_, ticks) = stat_at(&format!("/proc/self/task/{tid}/stat"))?;
    Some(ticks as f64 / ticks_per_second())
}

/// The id of the calling thread (from `/proc/thread-self`, `<pid>/task/<tid>`).
pub fn current_thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

fn stat_at(path: &str) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name is in parentheses and may hold spaces: fields are
    // counted from the last `)`. After it: state (3), ppid (4) … utime (14), stime (15).
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// Reads the CPU seconds used so far by a server process and, when given, by
/// a database server with its children.
pub struct CpuMeter {
    server: Option<u32>,
    database: Option<u32>,
    hz: f64,
}

/// CPU seconds used so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuNow {
    pub server: f64,
    pub database: f64,
}

impl CpuMeter {
    pub fn new(server: Option<u32>, database: Option<u32>) -> CpuMeter {
        CpuMeter { server, database, hz: ticks_per_second() }
    }

    pub fn measures_server(&self) -> bool {
        self.server.is_some_and(|p| stat(p).is_some())
    }

    pub fn measures_database(&self) -> bool {
        self.database.is_some_and(|p| stat(p).is_some())
    }

    pub fn now(&self) -> CpuNow {
        let server = self.server.and_then(stat).map_or(0, |(_, t)| t);
        let database = self.database.map_or(0, family_ticks);
        CpuNow { server: server as f64 / self.hz, database: database as f64 / self.hz }
    }
}

/// Ticks of `root` and of its direct children (a postmaster's backends).
fn family_ticks(root: u32) -> u64 {
    let mut total = stat(root).map_or(0, |(_, t)| t);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some((ppid, t)) = stat(pid) {
                if ppid == root {
                    total += t;
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_parent_and_counts_its_cpu() {
        let me = std::process::id();
        let (ppid, _) = stat(me).expect("our own /proc/<pid>/stat");
        assert!(ppid > 0);
        // Burn CPU until the meter sees it (ticks are 10 ms; bounded at 5 s
        // of wall time on a busy machine).
        let meter = CpuMeter::new(Some(me), None);
        let before = meter.now().server;
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while meter.now().server <= before && t0.elapsed().as_secs() < 5 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(meter.now().server > before);
        assert!(meter.measures_server() && !meter.measures_database());
    }

    #[test]
    fn a_thread_counts_its_own_cpu() {
        let tid = current_thread_id().expect("this thread's id");
        let before = thread_seconds(tid).expect("our own /proc/self/task/<tid>/stat");
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while thread_seconds(tid).unwrap_or(0.0) <= before && t0.elapsed().as_secs() < 5 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(thread_seconds(tid).unwrap_or(0.0) > before, "the thread that burned CPU counts it");
    }
}
