//! The "pg-io" thread: one tokio current-thread runtime per store that drives
//! every tokio-postgres `Connection` (the socket side).
//!
//! tokio-postgres splits a connection in two: the `Connection` future owns the
//! socket and needs tokio's reactor, while the `Client` only talks to it over
//! channels. So the sockets live here and the clients are used from whatever
//! executor calls the store (monoio shards in the server, tokio in tests). The
//! thread ends when the last handle is dropped.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;

use crate::{StoreError, StoreResult};

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Clone)]
pub(super) struct IoThread {
    tasks: mpsc::UnboundedSender<Task>,
}

impl IoThread {
    pub(super) fn start() -> StoreResult<IoThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the pg-io runtime: {e}")))?;
        let (tasks, mut rx) = mpsc::unbounded_channel::<Task>();
        std::thread::Builder::new()
            .name("pg-io".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some(task) = rx.recv().await {
                        tokio::spawn(task);
                    }
                });
                // Dropping the runtime here cancels what is left: connections
                // whose clients are all gone anyway.
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the pg-io thread: {e}")))?;
        Ok(IoThread { tasks })
    }

    /// Runs `task` on the I/O thread.
    pub(super) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> StoreResult<()> {
        self.tasks.send(Box::pin(task)).map_err(|_| stopped())
    }

    /// Runs `fut` on the I/O thread and blocks the calling thread until it ends.
    /// Safe to call from inside another runtime: nothing here needs the caller's reactor.
    pub(super) fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = StoreResult<T>> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.spawn(async move {
            let _ = tx.send(fut.await);
        })?;
        rx.recv().map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the pg-io thread has stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_runs_on_the_io_thread() {
        let io = IoThread::start().unwrap();
        let name = io.block_on(async { Ok(std::thread::current().name().map(str::to_owned)) }).unwrap();
        assert_eq!(name.as_deref(), Some("pg-io"));
    }

    #[test]
    fn block_on_needs_no_runtime_on_the_caller() {
        let io = IoThread::start().unwrap();
        let v = io
            .block_on(async {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                Ok(7)
            })
            .unwrap();
        assert_eq!(v, 7);
    }
}
