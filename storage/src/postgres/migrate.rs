//! Schema migrations: the files of `migrations/`, compiled into the binary and
//! applied in name order, all pending ones in one transaction (PostgreSQL's DDL
//! is transactional: a failing file leaves the database as it was).
//!
//! The transaction first takes a transaction-scoped advisory lock, so nodes
//! starting at once apply each file exactly once, and one node applies them
//! all: the others wait, then see every file recorded and skip them. The bookkeeping table `schema_migrations`
//! is created here, not by a migration, because it must exist before the first
//! one runs. A database that records a migration this binary does not know is
//! newer than the code, and refused.

use super::errors::map_err;
use super::pool::PooledConn;
use crate::{StoreError, StoreResult};

pub(super) struct Migration {
    pub(super) name: &'static str,
    pub(super) sql: &'static str,
}

/// In the order they apply; names sort the same way.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration { name: "0001_init", sql: include_str!("../../../migrations/0001_init.sql") },
    Migration {
        name: "0002_delivery_provider_message_id",
        sql: include_str!("../../../migrations/0002_delivery_provider_message_id.sql"),
    },
    Migration { name: "0003_tenant_limits", sql: include_str!("../../../migrations/0003_tenant_limits.sql") },
    Migration {
        name: "0004_conversation_features",
        sql: include_str!("../../../migrations/0004_conversation_features.sql"),
    },
    Migration { name: "0005_signing_keys", sql: include_str!("../../../migrations/0005_signing_keys.sql") },
    Migration { name: "0006_tenant_config", sql: include_str!("../../../migrations/0006_tenant_config.sql") },
    Migration { name: "0007_lifecycle_events", sql: include_str!("../../../migrations/0007_lifecycle_events.sql") },
];

/// Key of the advisory lock that serializes migrations ("converge" in ASCII).
const LOCK_KEY: i64 = 0x636f_6e76_6572_6765;

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())";

/// Applies the pending migrations; returns the names applied now.
pub(super) async fn apply(conn: &mut PooledConn<'_>) -> StoreResult<Vec<String>> {
    conn.set_in_tx(true);
    conn.client.batch_execute("BEGIN").await.map_err(map_err)?;
    match apply_pending(conn).await {
        Ok(applied_now) => {
            conn.client.batch_execute("COMMIT").await.map_err(map_err)?;
            conn.set_in_tx(false);
            for name in &applied_now {
                tracing::info!(migration = %name, "applied migration");
            }
            Ok(applied_now)
        }
        Err(e) => {
            if conn.client.batch_execute("ROLLBACK").await.is_ok() {
                conn.set_in_tx(false);
            }
            Err(e)
        }
    }
}

/// Inside the caller's transaction: applies every migration not yet recorded,
/// in order, and answers their names.
async fn apply_pending(conn: &mut PooledConn<'_>) -> StoreResult<Vec<String>> {
    let client = &conn.client;
    client.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await.map_err(map_err)?;
    client.batch_execute(BOOKKEEPING).await.map_err(map_err)?;
    let rows = client.query("SELECT name FROM schema_migrations", &[]).await.map_err(map_err)?;
    let mut recorded = Vec::with_capacity(rows.len());
    for r in &rows {
        recorded.push(r.try_get::<_, String>(0).map_err(|e| StoreError::Schema(e.to_string()))?);
    }
    if let Some(unknown) = unknown_migration(&recorded) {
        return Err(StoreError::Schema(format!(
            "the database has migration {unknown}, which this build does not know: it is newer than the code"
        )));
    }
    let mut applied_now = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !recorded.iter().any(|r| r == m.name)) {
        client.batch_execute(m.sql).await.map_err(map_err)?;
        client.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[&m.name]).await.map_err(map_err)?;
        applied_now.push(m.name.to_owned());
    }
    Ok(applied_now)
}

fn unknown_migration(recorded: &[String]) -> Option<&str> {
    recorded.iter().map(String::as_str).find(|r| !MIGRATIONS.iter().any(|m| m.name == *r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_name_order_and_unique() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} before {}", pair[0].name, pair[1].name);
        }
    }

    #[test]
    fn migrations_do_not_qualify_names_with_a_schema() {
        for m in MIGRATIONS {
            assert!(!m.sql.contains("public."), "{} names the public schema", m.name);
            assert!(!m.sql.to_ascii_uppercase().contains("CREATE EXTENSION"), "{} needs an extension", m.name);
        }
    }

    #[test]
    fn recorded_migrations_unknown_to_the_build_are_found() {
        assert_eq!(unknown_migration(&["0001_init".into()]), None);
        assert_eq!(unknown_migration(&["0001_init".into(), "9999_future".into()]), Some("9999_future"));
    }
}
