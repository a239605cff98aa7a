//! The delivery worker's outcomes on their way to storage, recorded in groups.

use std::sync::Arc;

use converger_storage::{Delivery, DeliveryOutcome, Id, Store, StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// Most outcomes recorded in one write.
const MAX_OUTCOMES: usize = 256;

/// An outcome on its way to storage, and where its answer goes.
type Recorded = (Id, i32, DeliveryOutcome, oneshot::Sender<StoreResult<Delivery>>);

/// The attempts' outcomes, recorded in groups: one task takes every outcome
/// waiting (up to [`MAX_OUTCOMES`]) and writes them with one
/// `Store::complete_deliveries` — one transaction instead of one each — and
/// what arrives meanwhile is the next group. The queue has no bound of its
/// own: every attempt holds its slot until its outcome is answered, so at
/// most `--delivery-concurrency` outcomes are ever waiting.
pub(super) struct Outcomes {
    tx: mpsc::UnboundedSender<Recorded>,
}

impl Outcomes {
    /// Starts the recording task on the worker's runtime; it ends when the worker is gone.
    pub(super) fn start(store: Arc<dyn Store>) -> Outcomes {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(record_outcomes(store, rx));
        Outcomes { tx }
    }

    /// Records one outcome, answered as `Store::complete_delivery` would answer it.
    pub(super) async fn record(&self, id: Id, attempt: i32, outcome: DeliveryOutcome) -> StoreResult<Delivery> {
        let stopped = || StoreError::Unavailable("the outcome recorder stopped".into());
        let (reply, answer) = oneshot::channel();
        self.tx.send((id, attempt, outcome, reply)).map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn record_outcomes(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Recorded>) {
    let mut group = Vec::with_capacity(MAX_OUTCOMES);
    while rx.recv_many(&mut group, MAX_OUTCOMES).await > 0 {
        let (outcomes, replies): (Vec<_>, Vec<_>) =
            group.drain(..).map(|(id, attempt, outcome, reply)| ((id, attempt, outcome), reply)).unzip();
        match store.complete_deliveries(outcomes).await {
            Ok(answers) => {
                let mut answers = answers.into_iter();
                for reply in replies {
                    let answer = answers
                        .next()
                        .unwrap_or_else(|| Err(StoreError::Internal("the store answered fewer outcomes".into())));
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
