//! Opening a connection and bringing the file's schema up to date.
//!
//! The schema version lives in SQLite's `user_version`; each entry of
//! [`MIGRATIONS`] moves it up by one inside a transaction. A file written by a
//! newer binary (higher version) is refused rather than misread.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::rows::sql_err;
use crate::{StoreError, StoreResult};

/// Schema steps; index i takes `user_version` from i to i + 1. A released step
/// is never edited: a change is a new step.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
    include_str!("schema_5.sql"),
    include_str!("schema_6.sql"),
    include_str!("schema_7.sql"),
    include_str!("schema_8.sql"),
];

/// Pragmas every connection gets. `synchronous=FULL` in WAL mode fsyncs the log at
/// every commit: an acknowledged write survives power loss, not only a crash.
const PRAGMAS: &str = "PRAGMA foreign_keys = ON;
PRAGMA synchronous = FULL;
PRAGMA busy_timeout = 5000;
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
PRAGMA secure_delete = FAST;";

pub(crate) fn open_connection(path: &Path, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.execute_batch(PRAGMAS).map_err(sql_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Switches the file to WAL and applies pending schema steps. Called once, on the
/// writer connection, before any reader opens.
pub(crate) fn prepare(conn: &mut Connection) -> StoreResult<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(sql_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "the data directory's file system does not support SQLite WAL mode (got {mode})"
        )));
    }
    // Checkpoint every ~40 MB of WAL instead of SQLite's ~4 MB: a checkpoint copies
    // each page once however often it changed, so rarer checkpoints copy less.
    // Measured: +70 % batched writes spread over 1,000 conversations (docs/benchmarks.md).
    // The writer checkpoints rarer still while its commits are large (`worker`).
    conn.pragma_update(None, "wal_autocheckpoint", super::worker::CHECKPOINT_PAGES).map_err(sql_err)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql_err)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Schema(format!(
            "the database has schema version {version}, newer than this binary understands ({known}); \
             run a newer converger or point --data-dir elsewhere"
        )));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(sql_err)?;
        tx.execute_batch(step).map_err(sql_err)?;
        tx.pragma_update(None, "user_version", i as i64 + 1).map_err(sql_err)?;
        tx.commit().map_err(sql_err)?;
        tracing::info!(version = i + 1, "embedded storage schema upgraded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_file_is_upgraded_to_the_latest_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let conn = open_connection(&path, false).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let mut conn = open_connection(&path, false).unwrap();
        prepare(&mut conn).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'deliveries_by_provider_message_id'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 1, "step 2 added the provider id index");
        // Preparing again changes nothing.
        prepare(&mut conn).unwrap();
    }

    #[test]
    fn tenants_of_a_version_2_file_get_no_limits_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            let conn = open_connection(&path, false).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(MIGRATIONS[1]).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute(
                "INSERT INTO tenants (id, name, api_key_hash, status, created_at, updated_at) \
                 VALUES (x'01', 'old', x'02', 'active', 0, 0)",
                [],
            )
            .unwrap();
        }
        let mut conn = open_connection(&path, false).unwrap();
        prepare(&mut conn).unwrap();
        let limits: String = conn.query_row("SELECT limits FROM tenants", [], |r| r.get(0)).unwrap();
        assert_eq!(limits, "{}");
    }
}
