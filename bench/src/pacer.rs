//! A paced schedule for latency scenarios. Tokio's timer wheel fires on
//! millisecond ticks, so a task that sleeps until its next send wakes up to a
//! millisecond late, and every latency measured from the schedule would carry
//! that lateness. The pacer is one plain thread that sleeps with the kernel's
//! precision (tens of microseconds) and hands each scheduled send, with its
//! scheduled time, to the publisher whose turn it is. A publisher still busy
//! with an earlier request finds the send queued: its latency keeps counting
//! from the schedule, so a stalled server cannot hide its stall (no coordinated
//! omission).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// One scheduled send: its number in the schedule and its time (µs since the epoch given to [`start`]).
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    pub index: u64,
    pub scheduled_us: u64,
}

pub struct Pacer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts ticking at `rate` per second from `start`, round-robin over
/// `publishers` receivers; it stops by itself after `limit`, or when stopped.
pub fn start(
    rate: u64,
    publishers: usize,
    epoch: Instant,
    start: Instant,
    limit: Duration,
) -> (Pacer, Vec<UnboundedReceiver<Tick>>) {
    let (senders, receivers): (Vec<UnboundedSender<Tick>>, Vec<_>) =
        (0..publishers).map(|_| unbounded_channel()).unzip();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let thread = std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || {
            let end = start + limit;
            let mut next = start;
            let mut index = 0u64;
            while !flag.load(Ordering::Relaxed) && next < end {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                let tick = Tick { index, scheduled_us: next.duration_since(epoch).as_micros() as u64 };
                if senders[index as usize % senders.len()].send(tick).is_err() {
                    return;
                }
                index += 1;
                next += interval;
            }
        })
        .expect("spawn the pacer thread");
    (Pacer { stop, thread: Some(thread) }, receivers)
}

impl Pacer {
    /// Stops the schedule; the receivers end once drained.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
