//! What the delivery worker and the lifecycle events' sender share: their
//! HTTP client, and the loop that claims due rows into a fixed number of
//! slots and runs each claimed row as a task of its own.
//!
//! Claims come in batches: a claim is made as soon as a quarter of the slots
//! are free, for all of them, so claiming never holds attempts up and is not
//! made once per completion. When a claim comes back short (nothing more is
//! due yet), the loop waits for the next claim until `poll` has passed or the
//! doorbell rings (a commit on this node made rows: they are claimed at once,
//! not up to a poll later). At shutdown the loop stops claiming and waits for
//! the attempts in flight (each bounded by the request timeout); what is
//! unclaimed waits for the next start.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use converger_storage::StoreResult;
use tokio::sync::Semaphore;
use tracing::warn;

use super::{guard, Settings};
use crate::rt::doorbell::Doorbell;
use crate::rt::shutdown::Shutdown;

/// When a drain loop with nothing due claims again.
pub struct Wake {
    /// At the latest after this long (rows due later, rows made by other nodes).
    pub poll: Duration,
    /// At once when this rings.
    pub due: Option<Doorbell>,
}

impl Wake {
    async fn wait(&self) {
        let rung = async {
            match &self.due {
                Some(bell) => bell.rung().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(self.poll) => {}
            _ = rung => {}
        }
    }
}

/// The outbound client: redirects are not followed (a request goes where it
/// was configured to, or fails), and without `--delivery-allow-private` names
/// resolve to public addresses only.
pub fn http_client(settings: &Settings) -> reqwest::Result<reqwest::Client> {
    let mut builder =
        reqwest::Client::builder().timeout(settings.request_timeout).redirect(reqwest::redirect::Policy::none());
    if !settings.allow_private {
        builder = builder.dns_resolver(Arc::new(guard::PublicOnly));
    }
    builder.build()
}

/// Claims with `claim(free slots)` and runs each claimed row with `run`, at
/// most `slots` at once, until `shutdown`; then waits for those in flight.
/// `what` names the loop in its logs.
pub async fn drain<T, C, CF, R, RF>(
    what: &'static str,
    slots: usize,
    wake: Wake,
    shutdown: &Shutdown,
    mut claim: C,
    run: R,
) where
    C: FnMut(usize) -> CF,
    CF: Future<Output = StoreResult<Vec<T>>>,
    R: Fn(T) -> RF,
    RF: Future<Output = ()> + Send + 'static,
{
    let slots = slots.max(1);
    let free_slots = Arc::new(Semaphore::new(slots));
    let batch = (slots / 4).max(1);
    loop {
        if shutdown.is_triggered() {
            break;
        }
        let free = free_slots.available_permits();
        if free < batch {
            // Wait until a quarter of the slots are free, then claim for all the free slots at once.
            tokio::select! {
                quarter = free_slots.acquire_many(batch as u32) => drop(quarter),
                _ = shutdown.wait() => break,
            }
            continue;
        }
        let claimed = claim(free).await.unwrap_or_else(|e| {
            warn!(error = %e, "{what}: claim failed");
            Vec::new()
        });
        let full = claimed.len() == free;
        for row in claimed {
            let Ok(permit) = free_slots.clone().acquire_owned().await else { break };
            let attempt = run(row);
            tokio::spawn(async move {
                attempt.await;
                drop(permit);
            });
        }
        if !full {
            // Nothing more is due yet.
            tokio::select! {
                _ = wake.wait() => {}
                _ = shutdown.wait() => break,
            }
        }
    }
    // Let the attempts in flight finish and record their outcomes.
    let _ = free_slots.acquire_many(slots as u32).await;
}
