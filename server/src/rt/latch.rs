//! [`Latch`]: a shard-local one-way signal (shutdown, the grace period's end,
//! "every shard is quiet") that any number of the shard's tasks can await.
//!
//! It is `!Send` on purpose: waiting registers the task's waker in the
//! shard's own slab, with no lock and no atomic, on every poll and drop. This
//! matters because a latch is awaited on the hot path: every keep-alive HTTP
//! read, WebSocket read and binary-session loop turn sits in a `select!` beside
//! it. The process-wide [`Shutdown`] (a lock, but touched only at start and
//! stop) reaches a shard through one task per latch that awaits it and then
//! triggers the latch ([`Latch::following`]).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::shutdown::Shutdown;

#[derive(Default)]
struct Inner {
    triggered: Cell<bool>,
    waiters: RefCell<Slab>,
}

/// Wakers by slot; freed slots are reused, so the slab is as large as the
/// most tasks ever waiting at once.
#[derive(Default)]
struct Slab {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Slab {
    fn insert(&mut self, waker: Waker) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(waker);
                i
            }
            None => {
                self.slots.push(Some(waker));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.take().is_some() {
                self.free.push(i);
            }
        }
    }
}

/// A one-way signal of one shard; clones share it.
#[derive(Clone, Default)]
pub struct Latch {
    inner: Rc<Inner>,
}

impl Latch {
    pub fn new() -> Latch {
        Latch::default()
    }

    /// A latch of this shard that triggers when `global` does. Must be called
    /// inside the shard's runtime (it spawns the one task that waits on `global`).
    pub fn following(global: &Shutdown) -> Latch {
        let latch = Latch::new();
        if global.is_triggered() {
            latch.trigger();
        } else {
            let (global, local) = (global.clone(), latch.clone());
            monoio::spawn(async move {
                global.wait().await;
                local.trigger();
            });
        }
        latch
    }

    /// Sets the latch and wakes every waiting task; later calls do nothing.
    pub fn trigger(&self) {
        if self.inner.triggered.replace(true) {
            return;
        }
        let wakers: Vec<Waker> = {
            let mut slab = self.inner.waiters.borrow_mut();
            slab.free.clear();
            slab.slots.drain(..).flatten().collect()
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.get()
    }

    /// Resolves once the latch is set (at once if it already is).
    pub fn wait(&self) -> Wait {
        Wait { inner: self.inner.clone(), slot: None }
    }
}

/// The future of [`Latch::wait`]; dropping it frees its slot.
pub struct Wait {
    inner: Rc<Inner>,
    slot: Option<usize>,
}

impl Future for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.triggered.get() {
            self.slot = None;
            return Poll::Ready(());
        }
        let mut slab = self.inner.waiters.borrow_mut();
        match self.slot {
            Some(i) => match slab.slots.get_mut(i) {
                Some(Some(w)) if w.will_wake(cx.waker()) => {}
                Some(slot) => *slot = Some(cx.waker().clone()),
                None => {}
            },
            None => {
                let i = slab.insert(cx.waker().clone());
                drop(slab);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            if !self.inner.triggered.get() {
                self.inner.waiters.borrow_mut().remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::runtime;

    #[test]
    fn every_waiter_wakes_and_later_waits_are_ready_at_once() {
        runtime().block_on(async {
            let latch = Latch::new();
            let tasks: Vec<_> = (0..3)
                .map(|_| {
                    let l = latch.clone();
                    monoio::spawn(async move { l.wait().await })
                })
                .collect();
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            latch.trigger();
            for t in tasks {
                t.await;
            }
            latch.wait().await;
            assert!(latch.is_triggered());
        });
    }

    #[test]
    fn dropped_waiters_free_their_slots() {
        let latch = Latch::new();
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..100 {
            let mut w = Box::pin(latch.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        let slab = latch.inner.waiters.borrow();
        assert_eq!(slab.slots.len(), 1, "one slot, reused");
        assert!(slab.slots.iter().all(Option::is_none));
    }

    #[test]
    fn a_latch_following_the_process_shutdown_triggers_with_it() {
        let global = Shutdown::new();
        let remote = global.clone();
        runtime().block_on(async move {
            let latch = Latch::following(&global);
            let t = std::thread::spawn(move || remote.trigger());
            latch.wait().await;
            t.join().expect("trigger thread");
            assert!(Latch::following(&global).is_triggered(), "already triggered: set at once");
        });
    }
}
