//! The batched write (seq assignment, idempotency, delivery rows) and the range read.
//!
//! `write_batch` runs on the writer thread, inside the group transaction, so it is
//! the only writer of every conversation while it runs: reading the last seq and
//! adding to it cannot race. The database still enforces unique
//! (conversation_id, seq) and (conversation_id, idempotency_key) underneath.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::crud::in_scope;
use super::known::{self, ConversationState};
use super::rows::{self, sql_err, ACTIVITY_COLS};
use crate::{
    new_id, Activity, ConversationStatus, DeliveryStatus, Entity, Id, NewActivity, Scope, StoreError, StoreResult,
    Written,
};

pub(crate) fn write_batch(conn: &Connection, batch: Vec<NewActivity>) -> StoreResult<Vec<StoreResult<Written>>> {
    let mut conversations: HashMap<Id, Option<ConversationState>> = HashMap::new();
    // Keys written earlier in this same batch: a repeat is a replay of that item.
    let mut batch_keys: HashMap<(Id, String), Activity> = HashMap::new();
    let mut out = Vec::with_capacity(batch.len());

    let mut insert_activity = conn
        .prepare_cached(&format!("INSERT INTO activities ({ACTIVITY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
        .map_err(sql_err)?;
    let mut insert_delivery = conn
        .prepare_cached(
            "INSERT INTO deliveries (id, activity_id, channel_id, tenant_id, status, attempts, next_attempt_at, \
             metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, '{}', ?, ?) \
             ON CONFLICT (activity_id, channel_id) DO NOTHING",
        )
        .map_err(sql_err)?;

    for mut item in batch {
        let state = match conversations.get_mut(&item.conversation_id) {
            Some(s) => s,
            None => {
                let loaded = match known::get(item.conversation_id) {
                    Some(state) => Some(state),
                    None => load_state(conn, item.conversation_id)?,
                };
                conversations.entry(item.conversation_id).or_insert(loaded)
            }
        };
        let state = match state {
            Some(s) if s.tenant_id == item.tenant_id => s,
            _ => {
                out.push(Err(StoreError::NotFound(Entity::Conversation)));
                continue;
            }
        };
        if let Some(key) = &item.idempotency_key {
            if let Some(original) = batch_keys.get(&(item.conversation_id, key.clone())) {
                out.push(Ok(Written::Replay(original.clone())));
                continue;
            }
            if let Some(original) = by_idempotency_key(conn, item.conversation_id, key)? {
                out.push(Ok(Written::Replay(original)));
                continue;
            }
        }
        if !state.open {
            out.push(Err(StoreError::ConversationClosed));
            continue;
        }
        state.last_seq += 1;
        let deliver_to = std::mem::take(&mut item.deliver_to);
        let a = item.into_stored(state.last_seq);
        insert_activity
            .execute(params![
                a.id,
                a.tenant_id,
                a.conversation_id,
                a.seq,
                a.kind,
                a.text,
                a.attachments,
                a.sender,
                a.metadata,
                a.idempotency_key,
                a.created_at
            ])
            .map_err(sql_err)?;
        for channel_id in &deliver_to {
            insert_delivery
                .execute(params![
                    new_id(),
                    a.id,
                    channel_id,
                    a.tenant_id,
                    DeliveryStatus::Pending,
                    a.created_at,
                    a.created_at,
                    a.created_at
                ])
                .map_err(sql_err)?;
        }
        if let Some(key) = &a.idempotency_key {
            batch_keys.insert((a.conversation_id, key.clone()), a.clone());
        }
        out.push(Ok(Written::New(a)));
    }

    known::publish(conversations.into_iter().filter_map(|(id, state)| Some((id, state?))));
    Ok(out)
}

fn load_state(conn: &Connection, id: Id) -> StoreResult<Option<ConversationState>> {
    conn.prepare_cached(
        "SELECT tenant_id, status, (SELECT coalesce(max(seq), 0) FROM activities WHERE conversation_id = ?1) \
         FROM conversations WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.query_row([id], |r| {
            let status: ConversationStatus = r.get(1)?;
            Ok(ConversationState {
                tenant_id: r.get(0)?,
                open: status == ConversationStatus::Active,
                last_seq: r.get(2)?,
            })
        })
        .optional()
    })
    .map_err(sql_err)
}

fn by_idempotency_key(conn: &Connection, conversation_id: Id, key: &str) -> StoreResult<Option<Activity>> {
    conn.prepare_cached(&format!(
        "SELECT {ACTIVITY_COLS} FROM activities WHERE conversation_id = ? AND idempotency_key = ?"
    ))
    .and_then(|mut s| s.query_row(params![conversation_id, key], rows::activity).optional())
    .map_err(sql_err)
}

pub(crate) fn get_activity(conn: &Connection, scope: Scope, id: Id) -> StoreResult<Activity> {
    let sql = format!("SELECT {ACTIVITY_COLS} FROM activities WHERE id = ?");
    let a =
        rows::found(Entity::Activity, conn.prepare_cached(&sql).and_then(|mut s| s.query_row([id], rows::activity)))?;
    in_scope(scope, a.tenant_id, Entity::Activity)?;
    Ok(a)
}

pub(crate) fn read_range(
    conn: &Connection,
    scope: Scope,
    conversation_id: Id,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<Activity>> {
    let owner: Option<Id> = conn
        .prepare_cached("SELECT tenant_id FROM conversations WHERE id = ?")
        .and_then(|mut s| s.query_row([conversation_id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    in_scope(scope, owner.ok_or(StoreError::NotFound(Entity::Conversation))?, Entity::Conversation)?;
    let limit = crate::PageRequest::clamp(limit);
    conn.prepare_cached(&format!(
        "SELECT {ACTIVITY_COLS} FROM activities WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?"
    ))
    .and_then(|mut s| {
        s.query_map(params![conversation_id, after_seq, limit], rows::activity)?.collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(sql_err)
}
