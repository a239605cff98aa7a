//! Embedded backend: SQLite in WAL mode with `synchronous=FULL`, one writer thread
//! doing group commit, reader threads on their own connections.

use std::path::Path;

use crate::StoreResult;

/// Options for [`EmbeddedStore::open`].
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Reader threads (each with its own connection).
    pub readers: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions { readers: 2 }
    }
}

/// The embedded store; cheap to share behind an `Arc`.
pub struct EmbeddedStore {}

impl EmbeddedStore {
    /// Opens (creating if needed) the database in `dir`. Blocking: call before
    /// entering an async runtime or from a blocking context.
    pub fn open(_dir: &Path, _opts: EmbeddedOptions) -> StoreResult<EmbeddedStore> {
        Err(crate::StoreError::Internal("not yet built".into()))
    }
}
