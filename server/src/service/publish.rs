//! Publishing an activity: the one way an activity gets written.
//!
//! The caller hands over a fully validated [`NewActivity`]; the publisher sends
//! it to the conversation's owner shard, which batches it with others, commits
//! the batch (group commit), and only then answers: the answer means the
//! activity is durable. For now the write goes straight to the store; the owner
//! shards and the mesh replace that without changing this interface.

use std::sync::Arc;

use converger_storage::{NewActivity, Store, StoreError, Written};

/// Why a publish did not produce a stored (or replayed) activity.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The owner's queue is full: retry after a moment (503 + Retry-After).
    #[error("the server is overloaded; retry shortly")]
    Overloaded,
    /// The store refused the item or the batch (not found, closed, unavailable …).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This shard's way to the owners of conversations.
#[derive(Clone)]
pub struct Publisher {
    store: Arc<dyn Store>,
}

impl Publisher {
    pub fn direct(store: Arc<dyn Store>) -> Publisher {
        Publisher { store }
    }

    /// Persists one activity; resolves once it is committed (or replayed).
    pub async fn publish(&self, activity: NewActivity) -> Result<Written, PublishError> {
        let mut out = self.store.write_batch(vec![activity]).await?;
        match out.pop() {
            Some(item) => Ok(item?),
            None => Err(PublishError::Store(StoreError::Internal("the store answered no item".into()))),
        }
    }
}
