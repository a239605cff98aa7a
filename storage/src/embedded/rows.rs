//! Mapping between SQLite values and the model: column lists, row readers,
//! value conversions and the error mapping. One place, so every query reads
//! rows the same way.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{ErrorCode, Row};

use crate::{
    Activity, Channel, Conversation, ConversationStatus, Delivery, DeliveryStatus, Entity, Json, Member, MessageState,
    Status, StoreError, Tenant, TenantLimits, Timestamp,
};

impl ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_micros()))
    }
}

impl FromSql for Timestamp {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        i64::column_result(v).map(Timestamp::from_micros)
    }
}

impl ToSql for Json {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Json {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = v.as_str()?;
        Json::parse(text).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

macro_rules! sql_text_enum {
    ($($ty:ty),+) => {$(
        impl ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $ty {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                <$ty>::parse(s).ok_or_else(|| FromSqlError::Other(format!("unknown status {s:?}").into()))
            }
        }
    )+};
}
sql_text_enum!(Status, ConversationStatus, DeliveryStatus);

thread_local! {
    /// The data directory, on the threads that write to it (see [`watch_space_at`]).
    static DATA_DIR: std::cell::RefCell<Option<std::path::PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// Tells [`sql_err`] on this thread where the database lives, so an I/O error
/// that comes with a full file system is reported as [`StoreError::Full`].
pub(crate) fn watch_space_at(dir: &std::path::Path) {
    DATA_DIR.with(|d| *d.borrow_mut() = Some(dir.to_path_buf()));
}

/// SQLite's unix VFS answers `SQLITE_FULL` itself when a write meets ENOSPC,
/// but other I/O (growing the WAL index, truncating, syncing) reports a plain
/// `SQLITE_IOERR_*` and keeps the errno to itself (reading it needs unsafe
/// FFI). Such an error on a file system with no space left is taken as full.
fn io_error_for_want_of_space() -> bool {
    DATA_DIR.with(|d| d.borrow().as_deref().is_some_and(crate::full::no_space_at))
}

/// Maps a SQLite error to the storage error it means.
pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let detail = msg.clone().unwrap_or_else(|| f.to_string());
            match (f.code, f.extended_code) {
                (ErrorCode::ConstraintViolation, ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => StoreError::ForeignKey(detail),
                (ErrorCode::ConstraintViolation, ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                    StoreError::Conflict(detail)
                }
                (ErrorCode::DiskFull, _) => StoreError::Full(detail),
                (ErrorCode::SystemIoFailure, _) if io_error_for_want_of_space() => StoreError::Full(detail),
                (
                    ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::CannotOpen
                    | ErrorCode::ReadOnly
                    | ErrorCode::PermissionDenied
                    | ErrorCode::OutOfMemory,
                    _,
                ) => StoreError::Unavailable(detail),
                (ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase, _) => StoreError::Schema(detail),
                _ => StoreError::Internal(detail),
            }
        }
        rusqlite::Error::QueryReturnedNoRows => StoreError::Internal("a row was expected".into()),
        _ => StoreError::Internal(e.to_string()),
    }
}

/// `Ok(None)` for no row, the mapped error otherwise.
pub(crate) fn optional<T>(r: rusqlite::Result<T>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(sql_err(e)),
    }
}

/// Like [`optional`], but a missing row is `NotFound(entity)`.
pub(crate) fn found<T>(entity: Entity, r: rusqlite::Result<T>) -> Result<T, StoreError> {
    optional(r)?.ok_or(StoreError::NotFound(entity))
}

pub(crate) const TENANT_COLS: &str = "id, name, status, created_at, updated_at, limits, config";

pub(crate) fn tenant(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    let id = r.get(0)?;
    // Never fails the row: what cannot be used reads as unset (tenant_limits.rs).
    let limits = r.get_ref(5).ok().and_then(|v| v.as_str().ok());
    Ok(Tenant {
        id,
        name: r.get(1)?,
        status: r.get(2)?,
        limits: TenantLimits::from_stored(id, limits),
        config: r.get(6)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

pub(crate) const CHANNEL_COLS: &str = "id, tenant_id, name, type, secret, config, status, created_at, updated_at";

pub(crate) fn channel(r: &Row<'_>) -> rusqlite::Result<Channel> {
    Ok(Channel {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        kind: r.get(3)?,
        secret: r.get(4)?,
        config: r.get(5)?,
        status: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

/// Columns as read: `last_seq` is derived from the activities index (see schema.sql).
pub(crate) const CONVERSATION_COLS: &str = "id, tenant_id, channel_id, status, metadata, external_id, \
     (SELECT coalesce(max(seq), 0) FROM activities WHERE conversation_id = conversations.id), created_at, updated_at, \
     members_only";

pub(crate) fn conversation(r: &Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        channel_id: r.get(2)?,
        status: r.get(3)?,
        metadata: r.get(4)?,
        external_id: r.get(5)?,
        last_seq: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        members_only: r.get(9)?,
    })
}

/// The columns an insert writes; the state columns start at their defaults.
pub(crate) const ACTIVITY_INSERT_COLS: &str = "id, tenant_id, conversation_id, seq, type, text, attachments, sender, \
     metadata, idempotency_key, created_at, target_id, parent_id";

pub(crate) const ACTIVITY_COLS: &str = "id, tenant_id, conversation_id, seq, type, text, attachments, sender, \
     metadata, idempotency_key, created_at, target_id, parent_id, edited_at, deleted_at, reply_count";

pub(crate) fn activity(r: &Row<'_>) -> rusqlite::Result<Activity> {
    let kind: String = r.get(4)?;
    let state = if kind == crate::kinds::MESSAGE {
        Some(MessageState {
            edited_at: r.get(13)?,
            deleted_at: r.get(14)?,
            reply_count: r.get(15)?,
            reactions: Vec::new(),
        })
    } else {
        None
    };
    Ok(Activity {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        conversation_id: r.get(2)?,
        seq: r.get(3)?,
        kind,
        text: r.get(5)?,
        attachments: r.get(6)?,
        sender: r.get(7)?,
        metadata: r.get(8)?,
        idempotency_key: r.get(9)?,
        created_at: r.get(10)?,
        target_id: r.get(11)?,
        parent_id: r.get(12)?,
        state,
    })
}

/// Member columns as read, `m` being the members row: the unread count and
/// the user's last seen are derived.
pub(crate) const MEMBER_COLS: &str = "m.id, m.conversation_id, m.tenant_id, m.sender, m.role, m.metadata, \
     m.joined_at, m.read_seq, m.delivered_seq, \
     (SELECT count(*) FROM activities a WHERE a.conversation_id = m.conversation_id AND a.seq > m.read_seq \
        AND a.type = 'message' AND a.sender <> m.sender AND a.deleted_at IS NULL), \
     (SELECT last_seen FROM users u WHERE u.tenant_id = m.tenant_id AND u.sender = m.sender)";

pub(crate) fn member(r: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        tenant_id: r.get(2)?,
        sender: r.get(3)?,
        role: r.get(4)?,
        metadata: r.get(5)?,
        joined_at: r.get(6)?,
        read_seq: r.get(7)?,
        delivered_seq: r.get(8)?,
        unread_count: r.get(9)?,
        last_seen: r.get(10)?,
    })
}

pub(crate) const DELIVERY_COLS: &str = "id, activity_id, channel_id, tenant_id, status, attempts, last_error, \
     next_attempt_at, delivered_at, metadata, created_at, updated_at";

pub(crate) fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        activity_id: r.get(1)?,
        channel_id: r.get(2)?,
        tenant_id: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        last_error: r.get(6)?,
        next_attempt_at: r.get(7)?,
        delivered_at: r.get(8)?,
        metadata: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}
