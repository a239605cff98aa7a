//! Column lists and row decoding for every entity.
//!
//! Each `*_COLS` list and its decoder change together: the decoder reads by
//! position. A value the model cannot hold (an unknown status, a NULL where
//! none belongs) is a `Schema` error, never a panic.

use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::{
    Activity, Channel, Conversation, ConversationStatus, Delivery, DeliveryStatus, Json, Member, MessageState, Status,
    StoreError, StoreResult, Tenant, TenantLimits,
};

pub(super) const TENANT_COLS: &str = "id, name, status, created_at, updated_at, limits, config";
pub(super) const CHANNEL_COLS: &str = "id, tenant_id, name, kind, secret, config, status, created_at, updated_at";
/// Columns as read. There is no `last_seq` column: it is the conversation's
/// highest seq, one backward step on the `(conversation_id, seq)` index.
pub(super) const CONVERSATION_COLS: &str = "id, tenant_id, channel_id, status, metadata, external_id, \
     (SELECT coalesce(max(seq), 0) FROM activities WHERE conversation_id = conversations.id), created_at, updated_at, \
     members_only";
pub(super) const ACTIVITY_COLS: &str = "id, tenant_id, conversation_id, seq, kind, text, attachments, sender, \
     metadata, idempotency_key, created_at, target_id, parent_id, edited_at, deleted_at, reply_count";
/// Member columns as read, `m` being the members row: the unread count and
/// the user's last seen are derived.
pub(super) const MEMBER_COLS: &str = "m.id, m.conversation_id, m.tenant_id, m.sender, m.role, m.metadata, \
     m.joined_at, m.read_seq, m.delivered_seq, \
     (SELECT count(*) FROM activities a WHERE a.conversation_id = m.conversation_id AND a.seq > m.read_seq \
        AND a.kind = 'message' AND a.sender <> m.sender AND a.deleted_at IS NULL), \
     (SELECT last_seen FROM users u WHERE u.tenant_id = m.tenant_id AND u.sender = m.sender)";
pub(super) const DELIVERY_COLS: &str = "id, activity_id, channel_id, tenant_id, status, attempts, last_error, \
     next_attempt_at, delivered_at, metadata, created_at, updated_at";

fn col<'a, T: FromSql<'a>>(r: &'a Row, i: usize) -> StoreResult<T> {
    r.try_get(i).map_err(|e| StoreError::Schema(format!("column {i}: {e}")))
}

fn enum_col<T>(r: &Row, i: usize, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    let s: &str = col(r, i)?;
    parse(s).ok_or_else(|| StoreError::Schema(format!("column {i}: unknown value {s:?}")))
}

pub(super) fn tenant(r: &Row) -> StoreResult<Tenant> {
    let id = col(r, 0)?;
    // Never fails the row: what cannot be used reads as unset (tenant_limits.rs).
    let limits: Option<Json> = r.try_get(5).ok();
    Ok(Tenant {
        id,
        name: col(r, 1)?,
        status: enum_col(r, 2, Status::parse)?,
        limits: TenantLimits::from_stored(id, limits.as_ref().map(Json::as_str)),
        config: col(r, 6)?,
        created_at: col(r, 3)?,
        updated_at: col(r, 4)?,
    })
}

pub(super) fn channel(r: &Row) -> StoreResult<Channel> {
    Ok(Channel {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        name: col(r, 2)?,
        kind: col(r, 3)?,
        secret: col(r, 4)?,
        config: col(r, 5)?,
        status: enum_col(r, 6, Status::parse)?,
        created_at: col(r, 7)?,
        updated_at: col(r, 8)?,
    })
}

pub(super) fn conversation(r: &Row) -> StoreResult<Conversation> {
    Ok(Conversation {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        channel_id: col(r, 2)?,
        status: enum_col(r, 3, ConversationStatus::parse)?,
        metadata: col(r, 4)?,
        external_id: col(r, 5)?,
        last_seq: col(r, 6)?,
        created_at: col(r, 7)?,
        updated_at: col(r, 8)?,
        members_only: col(r, 9)?,
    })
}

pub(super) fn activity(r: &Row) -> StoreResult<Activity> {
    activity_at(r, 0)
}

/// The activity whose `ACTIVITY_COLS` start at column `at` of the row.
pub(super) fn activity_at(r: &Row, at: usize) -> StoreResult<Activity> {
    let kind: String = col(r, at + 4)?;
    let state = if kind == crate::kinds::MESSAGE {
        let reply_count: i32 = col(r, at + 15)?;
        Some(MessageState {
            edited_at: col(r, at + 13)?,
            deleted_at: col(r, at + 14)?,
            reply_count: i64::from(reply_count),
            reactions: Vec::new(),
        })
    } else {
        None
    };
    Ok(Activity {
        id: col(r, at)?,
        tenant_id: col(r, at + 1)?,
        conversation_id: col(r, at + 2)?,
        seq: col(r, at + 3)?,
        kind,
        text: col(r, at + 5)?,
        attachments: col(r, at + 6)?,
        sender: col(r, at + 7)?,
        metadata: col(r, at + 8)?,
        idempotency_key: col(r, at + 9)?,
        created_at: col(r, at + 10)?,
        target_id: col(r, at + 11)?,
        parent_id: col(r, at + 12)?,
        state,
    })
}

pub(super) fn member(r: &Row) -> StoreResult<Member> {
    Ok(Member {
        id: col(r, 0)?,
        conversation_id: col(r, 1)?,
        tenant_id: col(r, 2)?,
        sender: col(r, 3)?,
        role: col(r, 4)?,
        metadata: col(r, 5)?,
        joined_at: col(r, 6)?,
        read_seq: col(r, 7)?,
        delivered_seq: col(r, 8)?,
        unread_count: col(r, 9)?,
        last_seen: col(r, 10)?,
    })
}

pub(super) fn delivery(r: &Row) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: col(r, 0)?,
        activity_id: col(r, 1)?,
        channel_id: col(r, 2)?,
        tenant_id: col(r, 3)?,
        status: enum_col(r, 4, DeliveryStatus::parse)?,
        attempts: col(r, 5)?,
        last_error: col(r, 6)?,
        next_attempt_at: col(r, 7)?,
        delivered_at: col(r, 8)?,
        metadata: col(r, 9)?,
        created_at: col(r, 10)?,
        updated_at: col(r, 11)?,
    })
}

pub(super) fn all<T>(rows: &[Row], decode: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(decode).collect()
}
