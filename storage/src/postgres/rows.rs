//! Column lists and row decoding for every entity.
//!
//! Each `*_COLS` list and its decoder change together: the decoder reads by
//! position. A value the model cannot hold (an unknown status, a NULL where
//! none belongs) is a `Schema` error, never a panic.

use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::{
    Activity, Channel, Conversation, ConversationStatus, Delivery, DeliveryStatus, Json, Status, StoreError,
    StoreResult, Tenant, TenantLimits,
};

pub(super) const TENANT_COLS: &str = "id, name, status, created_at, updated_at, limits";
pub(super) const CHANNEL_COLS: &str = "id, tenant_id, name, kind, secret, config, status, created_at, updated_at";
/// Columns as read. There is no `last_seq` column: it is the conversation's
/// highest seq, one backward step on the `(conversation_id, seq)` index.
pub(super) const CONVERSATION_COLS: &str = "id, tenant_id, channel_id, status, metadata, external_id, \
     (SELECT coalesce(max(seq), 0) FROM activities WHERE conversation_id = conversations.id), created_at, updated_at";
pub(super) const ACTIVITY_COLS: &str =
    "id, tenant_id, conversation_id, seq, kind, text, attachments, sender, metadata, idempotency_key, created_at";
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
    })
}

pub(super) fn activity(r: &Row) -> StoreResult<Activity> {
    Ok(Activity {
        id: col(r, 0)?,
        tenant_id: col(r, 1)?,
        conversation_id: col(r, 2)?,
        seq: col(r, 3)?,
        kind: col(r, 4)?,
        text: col(r, 5)?,
        attachments: col(r, 6)?,
        sender: col(r, 7)?,
        metadata: col(r, 8)?,
        idempotency_key: col(r, 9)?,
        created_at: col(r, 10)?,
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
