//! Maps tokio-postgres errors onto [`StoreError`], once, so every query site
//! reports the same kind for the same failure.
//!
//! Connection trouble and transient server states (shutdown, too many
//! connections, serialization failures, deadlocks) become `Unavailable`, which
//! callers may retry; constraint violations become `Conflict` / `ForeignKey`;
//! a missing table means the schema is not migrated.
//!
//! `disk_full` (53100) becomes `Full`: the write was not stored and will be
//! once the server has space. The rest of class 53 stays `Unavailable`:
//! 53000 `insufficient_resources` names no resource (it is not always disk),
//! 53200 `out_of_memory`, 53300 `too_many_connections` and 53400
//! `configuration_limit_exceeded` are not about space at all.

use tokio_postgres::error::SqlState;

use crate::StoreError;

pub(super) fn map_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let what = db.constraint().unwrap_or_else(|| db.message()).to_owned();
        return from_sqlstate(db.code(), what, db.message());
    }
    if e.is_closed() || is_io(&e) || e.to_string().starts_with("timeout") {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Internal(e.to_string())
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// `what` names the constraint when the server reported one.
pub(super) fn from_sqlstate(code: &SqlState, what: String, message: &str) -> StoreError {
    let class = &code.code()[..2];
    if *code == SqlState::UNIQUE_VIOLATION {
        StoreError::Conflict(what)
    } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
        StoreError::ForeignKey(what)
    } else if *code == SqlState::DISK_FULL {
        StoreError::Full(message.to_owned())
    } else if matches!(class, "08" | "53" | "57" | "40") || *code == SqlState::LOCK_NOT_AVAILABLE {
        // 08 connection exception, 53 insufficient resources, 57 operator
        // intervention (shutdown, cancel), 40 serialization failure / deadlock.
        StoreError::Unavailable(message.to_owned())
    } else if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN {
        StoreError::Schema(format!("{message} (are the migrations applied?)"))
    } else {
        StoreError::Internal(format!("{message} ({})", code.code()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: &str) -> StoreError {
        from_sqlstate(&SqlState::from_code(code), "c".into(), "m")
    }

    #[test]
    fn constraint_violations_keep_their_meaning() {
        assert!(matches!(kind("23505"), StoreError::Conflict(c) if c == "c"));
        assert!(matches!(kind("23503"), StoreError::ForeignKey(c) if c == "c"));
        assert!(matches!(kind("23514"), StoreError::Internal(_)));
    }

    #[test]
    fn transient_server_states_are_retryable() {
        for code in ["08006", "53300", "57P01", "40001", "40P01", "55P03"] {
            assert!(kind(code).is_transient(), "{code}");
        }
        assert!(!kind("22P02").is_transient());
    }

    #[test]
    fn disk_full_is_full_and_the_rest_of_its_class_is_unavailable() {
        assert!(matches!(kind("53100"), StoreError::Full(m) if m == "m"));
        assert!(kind("53100").is_transient(), "a write succeeds again once space is freed");
        for code in ["53000", "53200", "53300", "53400"] {
            assert!(matches!(kind(code), StoreError::Unavailable(_)), "{code}");
        }
    }

    #[test]
    fn missing_tables_point_at_migrations() {
        assert!(matches!(kind("42P01"), StoreError::Schema(_)));
    }
}
