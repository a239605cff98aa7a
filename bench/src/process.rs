//! What the scenarios read about the server process from `/proc`: its
//! resident memory and its open file descriptors. The server runs on this
//! machine (load runs only on loopback), so its pid is enough; scripts/bench-server
//! exports it as `CONVERGER_SERVER_PID`.

/// The process's resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("server pid {pid}: {e}"))?;
    parse_rss(&status).ok_or_else(|| "no VmRSS in /proc status".into())
}

fn parse_rss(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The process's open file descriptors (entries of `/proc/<pid>/fd`; the
/// same user as the server can list them, as scripts/bench-server arranges).
pub fn open_fds(pid: u32) -> Result<u64, String> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| format!("server pid {pid} fds: {e}"))?;
    Ok(dir.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_comes_from_the_vmrss_line_and_this_process_has_descriptors() {
        assert_eq!(parse_rss("Name:\tx\nVmRSS:\t  12345 kB\nVmSwap:\t0 kB\n"), Some(12345));
        assert_eq!(parse_rss("Name:\tx\n"), None);
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(open_fds(me).unwrap() >= 3);
    }
}
