//! A shard's coarse timer, for the deadlines every idle connection waits on
//! (heartbeat silence, token expiry): a monoio `Sleep` takes 640 bytes (two
//! cache-padded cells) in each connection's state, where a [`Sleep`] here is
//! one entry in the shard's table. One ticker task per shard wakes what is
//! due every [`RESOLUTION`] while anything waits, so a deadline fires up to
//! that late — nothing that needs precision belongs here.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How late a deadline may fire.
pub const RESOLUTION: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Table {
    /// (deadline, entry number) → who waits.
    waiting: BTreeMap<(Instant, u64), Waker>,
    next: u64,
    ticking: bool,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::default();
}

/// Resolves at `deadline` (up to [`RESOLUTION`] later).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, entry: None }
}

pub struct Sleep {
    deadline: Instant,
    /// Its number in the table, once registered.
    entry: Option<u64>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.forget();
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let start_ticker = TABLE.with(|t| {
            let mut t = t.borrow_mut();
            let entry = match self.entry {
                Some(entry) => entry,
                None => {
                    t.next += 1;
                    t.next
                }
            };
            self.entry = Some(entry);
            let waker = t.waiting.entry((deadline, entry)).or_insert_with(|| cx.waker().clone());
            if !waker.will_wake(cx.waker()) {
                waker.clone_from(cx.waker());
            }
            !std::mem::replace(&mut t.ticking, true)
        });
        if start_ticker {
            monoio::spawn(tick());
        }
        Poll::Pending
    }
}

impl Sleep {
    fn forget(&mut self) {
        if let Some(entry) = self.entry.take() {
            let key = (self.deadline, entry);
            // Not during the thread's teardown (the table may be gone).
            let _ = TABLE.try_with(|t| t.borrow_mut().waiting.remove(&key));
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.forget();
    }
}

/// Wakes what is due every [`RESOLUTION`]; ends when nothing waits.
async fn tick() {
    loop {
        monoio::time::sleep(RESOLUTION).await;
        let (due, done) = TABLE.with(|t| {
            let mut t = t.borrow_mut();
            let later = t.waiting.split_off(&(Instant::now(), u64::MAX));
            let due = std::mem::replace(&mut t.waiting, later);
            let done = t.waiting.is_empty() && due.is_empty();
            if done {
                t.ticking = false;
            }
            (due, done)
        });
        // Woken outside the borrow: a waker may run its task's poll at once.
        due.into_values().for_each(Waker::wake);
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::runtime;

    #[test]
    fn sleeps_fire_in_order_within_the_resolution_and_a_dropped_one_is_forgotten() {
        runtime().block_on(async {
            let start = Instant::now();
            let dropped = sleep_until(start + Duration::from_millis(100));
            let mut dropped = Box::pin(dropped);
            let pending = std::future::poll_fn(|cx| Poll::Ready(dropped.as_mut().poll(cx).is_pending())).await;
            assert!(pending);
            drop(dropped);
            assert_eq!(TABLE.with(|t| t.borrow().waiting.len()), 0, "forgotten when dropped");
            let short = sleep_until(start + Duration::from_millis(300));
            let long = sleep_until(start + Duration::from_millis(700));
            let (first, second) = futures_util::future::join(
                async {
                    short.await;
                    start.elapsed()
                },
                async {
                    long.await;
                    start.elapsed()
                },
            )
            .await;
            assert!(first >= Duration::from_millis(300) && first < second, "{first:?} {second:?}");
            assert!(second >= Duration::from_millis(700) && second < Duration::from_millis(700) + 4 * RESOLUTION);
            // Nothing waits: the ticker ends, and a later sleep starts it again.
            monoio::time::sleep(2 * RESOLUTION).await;
            assert!(!TABLE.with(|t| t.borrow().ticking));
            sleep_until(Instant::now() + Duration::from_millis(10)).await;
            assert!(TABLE.with(|t| t.borrow().waiting.is_empty()));
        });
    }
}
