//! A full disk, as the log tells it: one warning when writes start failing
//! for want of space, one info line when a write succeeds again — never a
//! line per refused write (a busy server refuses thousands a second).
//!
//! Each backend keeps one [`FullWatch`] and shows it the outcome of every
//! write it can see whole (the embedded writer: each group commit; PostgreSQL:
//! each batch of activities).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::{StoreError, StoreResult};

pub(crate) struct FullWatch {
    backend: &'static str,
    full: AtomicBool,
}

impl FullWatch {
    pub(crate) const fn new(backend: &'static str) -> FullWatch {
        FullWatch { backend, full: AtomicBool::new(false) }
    }

    /// A write failed with `e`: warns once if it is the first for want of space.
    pub(crate) fn refused(&self, e: &StoreError) {
        if e.is_full() && !self.full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                backend = self.backend,
                detail = %e,
                "storage is full: writes are refused (storage_full) until space is freed; reads go on"
            );
        }
    }

    /// A write was stored: says so once if storage was full.
    pub(crate) fn stored(&self) {
        if self.full.swap(false, Ordering::Relaxed) {
            tracing::info!(backend = self.backend, "storage has space again: writes are stored");
        }
    }

    /// Either of the above, from a write's result.
    pub(crate) fn observe<T>(&self, result: &StoreResult<T>) {
        match result {
            Ok(_) => self.stored(),
            Err(e) => self.refused(e),
        }
    }

    /// True between the warning and the recovery.
    #[cfg(test)]
    fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }
}

/// True when the file system holding `path` has (nearly) no space or no
/// inodes left: what an I/O error that SQLite reports without its errno
/// (e.g. growing the WAL index) most likely means. "Nearly": under 64 KiB,
/// less than any write SQLite makes to extend a file.
pub(crate) fn no_space_at(path: &std::path::Path) -> bool {
    const NEARLY_NOTHING: u64 = 64 * 1024;
    match rustix::fs::statvfs(path) {
        Ok(s) => s.f_bavail.saturating_mul(s.f_frsize) < NEARLY_NOTHING || (s.f_files > 0 && s.f_favail == 0),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_turns_on_full_and_off_on_the_next_stored_write() {
        let w = FullWatch::new("test");
        w.observe::<()>(&Err(StoreError::Unavailable("down".into())));
        assert!(!w.is_full(), "only a full disk turns it on");
        w.observe::<()>(&Err(StoreError::Full("no space".into())));
        w.observe::<()>(&Err(StoreError::Full("no space".into())));
        assert!(w.is_full());
        w.observe(&Ok(()));
        assert!(!w.is_full());
    }

    #[test]
    fn a_directory_with_room_is_not_full() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Holds on any machine able to build this crate.
        assert!(!no_space_at(dir.path()));
    }
}
