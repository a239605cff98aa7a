//! A small pool of tokio-postgres clients, usable from any executor.
//!
//! A caller holds one client at a time, so a transaction never shares its
//! connection. Waiting for a free client uses a `tokio::sync::Semaphore`, which
//! only needs wakers, not a tokio runtime. Clients are created lazily by the
//! I/O thread and replaced when found closed (server restart, network loss).
//! Each client keeps its prepared statements, keyed by SQL text.
//!
//! A client dropped in the middle of a transaction (its future was cancelled)
//! is closed rather than returned: the server then rolls the transaction back,
//! and the next caller never inherits a half-done one.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use super::errors::map_err;
use super::io::IoThread;
use crate::{Entity, StoreError, StoreResult};

#[derive(Clone)]
pub(super) struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    io: IoThread,
    /// `SET search_path` run on every new connection, when a schema was asked for.
    setup: Option<String>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
}

/// One connection and its prepared statements.
pub(super) struct Conn {
    pub(super) client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// The statement for `sql`, prepared once per connection.
    pub(super) async fn prepare(&mut self, sql: &str) -> StoreResult<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(map_err)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    pub(super) async fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let stmt = self.prepare(sql).await?;
        self.client.query(&stmt, params).await.map_err(map_err)
    }

    pub(super) async fn query_opt(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Option<Row>> {
        let stmt = self.prepare(sql).await?;
        self.client.query_opt(&stmt, params).await.map_err(map_err)
    }

    /// The single row `sql` returns, decoded; `NotFound(missing)` when none.
    pub(super) async fn one<T>(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        decode: fn(&Row) -> StoreResult<T>,
        missing: Entity,
    ) -> StoreResult<T> {
        match self.query_opt(sql, params).await? {
            Some(row) => decode(&row),
            None => Err(StoreError::NotFound(missing)),
        }
    }
}

impl Pool {
    pub(super) fn new(config: Config, io: IoThread, size: usize, schema: Option<&str>) -> Pool {
        let size = size.max(1);
        Pool {
            shared: Arc::new(Shared {
                config,
                io,
                setup: schema.map(|s| format!("SET search_path TO {}", quote_ident(s))),
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Semaphore::new(size),
            }),
        }
    }

    pub(super) fn io(&self) -> &IoThread {
        &self.shared.io
    }

    /// Waits for a free client, connecting a new one when none is idle.
    pub(super) async fn get(&self) -> StoreResult<PooledConn<'_>> {
        let permit = self
            .shared
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the connection pool is closed".into()))?;
        let idle = self.shared.lock_idle().pop();
        let conn = match idle {
            Some(c) if !c.client.is_closed() => c,
            _ => self.connect().await?,
        };
        Ok(PooledConn { conn: Some(conn), shared: &self.shared, _permit: permit, in_tx: false })
    }

    /// A new connection outside the pool (for the schema and migration steps,
    /// which must run before `search_path` can be set).
    pub(super) async fn connect_raw(&self) -> StoreResult<Client> {
        let (tx, rx) = oneshot::channel();
        let config = self.shared.config.clone();
        self.shared.io.spawn(async move {
            match config.connect(NoTls).await {
                Ok((client, connection)) => {
                    // If the caller gave up waiting, the client drops here and
                    // the connection future below ends at once.
                    let _ = tx.send(Ok(client));
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "postgres connection ended with an error");
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })?;
        let client = rx.await.map_err(|_| StoreError::Unavailable("the pg-io thread has stopped".into()))?;
        client.map_err(map_err)
    }

    async fn connect(&self) -> StoreResult<Conn> {
        let client = self.connect_raw().await?;
        if let Some(setup) = &self.shared.setup {
            client.batch_execute(setup).await.map_err(map_err)?;
        }
        Ok(Conn { client, statements: HashMap::new() })
    }
}

impl Shared {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // The list stays consistent even if a holder panicked: push and pop only.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A client checked out of the pool; goes back when dropped.
pub(super) struct PooledConn<'a> {
    conn: Option<Conn>,
    shared: &'a Shared,
    _permit: SemaphorePermit<'a>,
    in_tx: bool,
}

impl PooledConn<'_> {
    /// Marks the connection as inside (true) or outside (false) a transaction
    /// that this code opened with BEGIN.
    pub(super) fn set_in_tx(&mut self, in_tx: bool) {
        self.in_tx = in_tx;
    }
}

impl Deref for PooledConn<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Only Drop takes the connection out.
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl DerefMut for PooledConn<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !self.in_tx && !conn.client.is_closed() {
                self.shared.lock_idle().push(conn);
            }
        }
    }
}

/// `name` as a double-quoted SQL identifier.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_escaped() {
        assert_eq!(quote_ident("t_1"), "\"t_1\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
