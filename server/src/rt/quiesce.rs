//! "Every shard is quiet": the point in a shutdown after which no shard has a
//! connection left, so no new publish can arrive anywhere and owners may flush
//! and stop. Each shard reports once through its [`Arrival`] — after closing
//! its connections, or by dropping it if it never started serving.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::shutdown::Shutdown;

pub struct Quiesce {
    remaining: Arc<AtomicUsize>,
    all_quiet: Shutdown,
}

impl Quiesce {
    pub fn new(shards: usize) -> Quiesce {
        let all_quiet = Shutdown::new();
        if shards == 0 {
            all_quiet.trigger();
        }
        Quiesce { remaining: Arc::new(AtomicUsize::new(shards)), all_quiet }
    }

    /// One per shard.
    pub fn arrival(&self) -> Arrival {
        Arrival { remaining: self.remaining.clone(), all_quiet: self.all_quiet.clone(), arrived: false }
    }
}

pub struct Arrival {
    remaining: Arc<AtomicUsize>,
    all_quiet: Shutdown,
    arrived: bool,
}

impl Arrival {
    /// Resolves (through `wait()`) once every shard has arrived.
    pub fn all_quiet(&self) -> Shutdown {
        self.all_quiet.clone()
    }

    pub fn arrive(&mut self) {
        if !std::mem::replace(&mut self.arrived, true) && self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_quiet.trigger();
        }
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.arrive();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_once_every_shard_arrived_or_dropped_out() {
        let q = Quiesce::new(3);
        let (mut a, mut b, c) = (q.arrival(), q.arrival(), q.arrival());
        a.arrive();
        a.arrive();
        assert!(!a.all_quiet().is_triggered(), "arriving twice counts once");
        b.arrive();
        assert!(!b.all_quiet().is_triggered());
        drop(c);
        assert!(a.all_quiet().is_triggered());
    }
}
