//! The shutdown signal: set once from any thread (the signal handler's thread,
//! a test), awaited by every shard's accept loops and idle connections.
//!
//! Waiting futures register their waker under a unique key and remove it when
//! dropped, so a connection that re-polls the signal many times (it sits in a
//! `select!` beside its reads) holds one slot, not one per poll. Wakers from
//! another thread are fine: monoio's `sync` feature wakes a parked runtime.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    next_key: AtomicU64,
    waiters: Mutex<HashMap<u64, Waker>>,
}

impl Inner {
    fn waiters(&self) -> MutexGuard<'_, HashMap<u64, Waker>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (single inserts/removes), so a poisoned lock is still usable.
        self.waiters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Cheap to clone; all clones share one flag.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Sets the flag and wakes every waiter. Idempotent.
    pub fn trigger(&self) {
        if !self.inner.triggered.swap(true, Ordering::SeqCst) {
            for (_, waker) in self.inner.waiters().drain() {
                waker.wake();
            }
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Resolves once [`Shutdown::trigger`] has been called.
    pub fn wait(&self) -> Wait {
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        Wait { inner: self.inner.clone(), key }
    }
}

/// Future returned by [`Shutdown::wait`].
pub struct Wait {
    inner: Arc<Inner>,
    key: u64,
}

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.triggered.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        self.inner.waiters().insert(self.key, cx.waker().clone());
        // Re-check: a trigger between the load and the insert drained the map
        // before our waker was in it.
        if self.inner.triggered.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.inner.waiters().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_from_another_thread_wakes_a_waiting_runtime() {
        let shutdown = Shutdown::new();
        let remote = shutdown.clone();
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build().expect("runtime");
        rt.block_on(async move {
            let t = std::thread::spawn(move || remote.trigger());
            shutdown.wait().await;
            assert!(shutdown.is_triggered());
            t.join().expect("trigger thread");
        });
    }

    #[test]
    fn dropped_waiters_leave_no_waker_behind() {
        let shutdown = Shutdown::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..3 {
            let mut w = Box::pin(shutdown.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert!(shutdown.inner.waiters().is_empty());
        shutdown.trigger();
        assert!(Box::pin(shutdown.wait()).as_mut().poll(&mut cx).is_ready());
    }
}
