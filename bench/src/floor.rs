//! The floor under a durable publish → answer on this machine, measured in
//! the same run as the scenario it judges: one `fdatasync` of a 4 KiB write
//! (what a commit must wait for) plus one loopback TCP round trip (the
//! client's request and its answer). The latency scenarios report their
//! percentiles as multiples of it, so runs on different disks and on busy or
//! idle boxes compare.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::report::{new_histogram, Percentiles};

/// How long each of the two measurements runs.
const EACH: Duration = Duration::from_millis(700);

#[derive(Clone, Debug, Serialize)]
pub struct Floor {
    /// Where the fsyncs ran (the server's data directory under scripts/bench-server).
    pub dir: PathBuf,
    pub fsync_us: Percentiles,
    pub round_trip_us: Percentiles,
    /// Median fsync + median round trip.
    pub floor_us: u64,
}

impl Floor {
    /// `latency` as multiples of the floor: (p50, p99).
    pub fn ratios(&self, latency: &Percentiles) -> (f64, f64) {
        let floor = self.floor_us.max(1) as f64;
        (latency.p50 as f64 / floor, latency.p99 as f64 / floor)
    }

    /// One line for the run's log.
    pub fn line(&self) -> String {
        format!(
            "floor {} µs (fsync p50 {} µs, p99 {} µs; loopback round trip p50 {} µs, p99 {} µs)",
            self.floor_us, self.fsync_us.p50, self.fsync_us.p99, self.round_trip_us.p50, self.round_trip_us.p99
        )
    }
}

/// The directory to fsync in: `CONVERGER_BENCH_DATA_DIR` (set by
/// scripts/bench-server to the server's data directory), else the current one.
pub fn default_dir() -> PathBuf {
    std::env::var_os("CONVERGER_BENCH_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}

pub fn measure(dir: &Path) -> Result<Floor, String> {
    let fsync_us = fsync(dir)?;
    let round_trip_us = round_trip()?;
    let floor_us = fsync_us.p50 + round_trip_us.p50;
    Ok(Floor { dir: dir.to_path_buf(), fsync_us, round_trip_us, floor_us })
}

fn fsync(dir: &Path) -> Result<Percentiles, String> {
    let path = dir.join(format!(".converger-bench-floor-{}", std::process::id()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("floor: open a file in {}: {e}", dir.display()))?;
    let block = [0x5au8; 4096];
    let mut h = new_histogram();
    let end = Instant::now() + EACH;
    let mut result = Ok(());
    while Instant::now() < end {
        let t = Instant::now();
        if let Err(e) = file.write_all_at(&block, 0).and_then(|()| file.sync_data()) {
            result = Err(format!("floor: fsync in {}: {e}", dir.display()));
            break;
        }
        let _ = h.record(t.elapsed().as_micros().max(1) as u64);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    result.map(|()| Percentiles::of(&h))
}

fn round_trip() -> Result<Percentiles, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            if s.read_exact(&mut buf).is_err() {
                return Ok(());
            }
            s.write_all(&buf)?;
        }
    });
    let mut c = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    c.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut h = new_histogram();
    let mut buf = [7u8; 64];
    let end = Instant::now() + EACH;
    while Instant::now() < end {
        let t = Instant::now();
        c.write_all(&buf).and_then(|()| c.read_exact(&mut buf)).map_err(|e| format!("floor: loopback: {e}"))?;
        let _ = h.record(t.elapsed().as_micros().max(1) as u64);
    }
    drop(c);
    let _ = echo.join();
    Ok(Percentiles::of(&h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_measured_and_its_file_removed() {
        let dir = std::env::temp_dir().join(format!("floor-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let floor = measure(&dir).expect("measured");
        assert!(floor.fsync_us.p50 >= 1 && floor.round_trip_us.p50 >= 1);
        assert_eq!(floor.floor_us, floor.fsync_us.p50 + floor.round_trip_us.p50);
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0, "no file left");
        let (p50, p99) =
            floor.ratios(&Percentiles { p50: floor.floor_us * 2, p90: 0, p99: floor.floor_us * 5, p999: 0, max: 0 });
        assert_eq!((p50, p99), (2.0, 5.0));
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
