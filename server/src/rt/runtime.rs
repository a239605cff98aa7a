//! Builds a shard's monoio runtime for the configured I/O driver. `auto`
//! prefers io_uring and falls back to epoll when the kernel lacks the ops we
//! need or the container (seccomp, memlock limits) refuses to create a ring.

use std::fmt;
use std::io;
use std::str::FromStr;

use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};
use tracing::warn;

/// Which I/O driver the shard runtimes use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring, or epoll where io_uring is refused (seccomp, old kernels).
    #[default]
    Auto,
    /// io_uring only: starting fails where it is unavailable.
    IoUring,
    /// epoll (monoio's legacy driver) only.
    Epoll,
}

impl FromStr for IoDriver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(IoDriver::Auto),
            "io-uring" | "io_uring" | "iouring" => Ok(IoDriver::IoUring),
            "epoll" | "legacy" => Ok(IoDriver::Epoll),
            other => Err(format!("unknown I/O driver `{other}` (expected auto, io-uring or epoll)")),
        }
    }
}

impl fmt::Display for IoDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoDriver::Auto => "auto",
            IoDriver::IoUring => "io-uring",
            IoDriver::Epoll => "epoll",
        })
    }
}

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
