//! PostgreSQL backend (tokio-postgres).

use crate::StoreResult;

/// Options for [`PgStore::connect`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections in the pool.
    pub pool_size: usize,
    /// Apply pending migrations before returning.
    pub migrate: bool,
    /// Work inside this schema (created if missing) instead of the default one.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions { pool_size: 4, migrate: true, schema: None }
    }
}

/// The PostgreSQL store; cheap to share behind an `Arc`.
pub struct PgStore {}

impl PgStore {
    /// Connects to `url` (a libpq-style URL or key=value string). Blocking: it
    /// starts the I/O thread that drives the connections and waits for them.
    pub fn connect(_url: &str, _opts: PgOptions) -> StoreResult<PgStore> {
        Err(crate::StoreError::Internal("not yet built".into()))
    }
}
