//! Counts a shard's open connections so shutdown can wait, without polling,
//! until the last one has finished (or the grace period ends).
//! Shard-local (`Rc`): connections never leave the shard that accepted them.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

#[derive(Default)]
struct Inner {
    open: Cell<usize>,
    idle_waker: RefCell<Option<Waker>>,
}

#[derive(Clone, Default)]
pub struct ConnTracker {
    inner: Rc<Inner>,
}

/// Held by a connection task; dropping it marks the connection closed.
pub struct ConnGuard {
    inner: Rc<Inner>,
}

impl ConnTracker {
    pub fn open(&self) -> ConnGuard {
        self.inner.open.set(self.inner.open.get() + 1);
        ConnGuard { inner: self.inner.clone() }
    }

    pub fn count(&self) -> usize {
        self.inner.open.get()
    }

    /// Resolves when no connection is open.
    pub async fn all_closed(&self) {
        poll_fn(|cx| {
            if self.inner.open.get() == 0 {
                Poll::Ready(())
            } else {
                *self.inner.idle_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let open = self.inner.open.get().saturating_sub(1);
        self.inner.open.set(open);
        if open == 0 {
            if let Some(w) = self.inner.idle_waker.borrow_mut().take() {
                w.wake();
            }
        }
    }
}
