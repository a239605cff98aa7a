//! Builds a shard's monoio runtime for the configured I/O driver. `auto`
//! prefers io_uring and falls back to epoll when the kernel lacks the ops we
//! need or the container (seccomp, memlock limits) refuses to create a ring.

use std::io;

use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};
use tracing::warn;

use crate::config::IoDriver;

/// Either driver, with timers.
pub type ShardRuntime = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

/// io_uring submission-queue entries per shard.
const URING_ENTRIES: u32 = 1024;

/// The runtime, and the driver it actually uses (`io-uring` or `epoll`).
pub fn build(driver: IoDriver, shard: usize) -> io::Result<(ShardRuntime, &'static str)> {
    match driver {
        IoDriver::IoUring => Ok((uring()?, "io-uring")),
        IoDriver::Epoll => Ok((epoll()?, "epoll")),
        IoDriver::Auto if !monoio::utils::detect_uring() => Ok((epoll()?, "epoll")),
        IoDriver::Auto => match uring() {
            Ok(rt) => Ok((rt, "io-uring")),
            Err(e) => {
                warn!(shard, error = %e, "io_uring refused, falling back to epoll");
                Ok((epoll()?, "epoll"))
            }
        },
    }
}

fn uring() -> io::Result<ShardRuntime> {
    let rt = RuntimeBuilder::<IoUringDriver>::new().with_entries(URING_ENTRIES).enable_timer().build()?;
    Ok(rt.into())
}

fn epoll() -> io::Result<ShardRuntime> {
    let rt = RuntimeBuilder::<LegacyDriver>::new().enable_timer().build()?;
    Ok(rt.into())
}
