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
use super::rows::{self, sql_err, ACTIVITY_COLS, ACTIVITY_INSERT_COLS};
use crate::lifecycle::{self, Effects, Lifecycle};
use crate::{
    new_id, Activity, ConversationStatus, DeliveryStatus, Entity, Id, NewActivity, ReactionCount, Scope, StoreError,
    StoreResult, Written,
};

pub(crate) fn write_batch(conn: &Connection, batch: Vec<NewActivity>) -> StoreResult<Vec<StoreResult<Written>>> {
    let mut lifecycle = match lifecycle::needs(&batch) {
        Some(needs) => Some(load_lifecycle(conn, &needs)?),
        None => None,
    };
    let mut conversations: HashMap<Id, Option<ConversationState>> = HashMap::new();
    // Keys written earlier in this same batch: a repeat is a replay of that item.
    let mut batch_keys: HashMap<(Id, String), Activity> = HashMap::new();
    let mut out = Vec::with_capacity(batch.len());

    let mut insert_activity = conn
        .prepare_cached(&format!(
            "INSERT INTO activities ({ACTIVITY_INSERT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .map_err(sql_err)?;
    let mut insert_delivery = conn
        .prepare_cached(
            "INSERT INTO deliveries (id, activity_id, channel_id, tenant_id, status, attempts, next_attempt_at, \
             metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?) \
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
        if let Some(answer) = lifecycle.as_ref().and_then(|l| l.answer_instead(&item)) {
            out.push(answer);
            continue;
        }
        state.last_seq += 1;
        let deliver_to = std::mem::take(&mut item.deliver_to);
        let delivery_metadata = if deliver_to.is_empty() { None } else { Some(item.delivery_metadata()) };
        let recorded = lifecycle.as_ref().map(|_| item.clone());
        let a = item.into_stored(state.last_seq);
        if let (Some(l), Some(item)) = (lifecycle.as_mut(), recorded) {
            l.record(&item, &a);
        }
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
                a.created_at,
                a.target_id,
                a.parent_id
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
                    delivery_metadata,
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
    if let Some(l) = lifecycle {
        apply_effects(conn, l.finish())?;
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
    reader: Option<&str>,
) -> StoreResult<Vec<Activity>> {
    let snapshot = conn.unchecked_transaction().map_err(sql_err)?;
    check_conversation(&snapshot, scope, conversation_id)?;
    read_page(&snapshot, Page::Range, conversation_id, after_seq, limit, reader)
}

pub(crate) fn read_replies(
    conn: &Connection,
    scope: Scope,
    conversation_id: Id,
    parent_id: Id,
    after_seq: i64,
    limit: u32,
    reader: Option<&str>,
) -> StoreResult<Vec<Activity>> {
    let snapshot = conn.unchecked_transaction().map_err(sql_err)?;
    check_conversation(&snapshot, scope, conversation_id)?;
    let parent: Option<(Id, String)> = snapshot
        .prepare_cached("SELECT conversation_id, type FROM activities WHERE id = ?")
        .and_then(|mut s| s.query_row([parent_id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(sql_err)?;
    if !parent.is_some_and(|(c, kind)| c == conversation_id && kind == crate::kinds::MESSAGE) {
        return Err(StoreError::NotFound(Entity::Activity));
    }
    read_page(&snapshot, Page::Replies, parent_id, after_seq, limit, reader)
}

fn check_conversation(conn: &Connection, scope: Scope, conversation_id: Id) -> StoreResult<()> {
    let owner: Option<Id> = conn
        .prepare_cached("SELECT tenant_id FROM conversations WHERE id = ?")
        .and_then(|mut s| s.query_row([conversation_id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    in_scope(scope, owner.ok_or(StoreError::NotFound(Entity::Conversation))?, Entity::Conversation)
}

/// Which page [`read_page`] reads: a conversation's log, or a message's thread.
#[derive(Clone, Copy)]
enum Page {
    Range,
    Replies,
}

impl Page {
    /// The page's activities, keyed by `?1` (conversation or parent), `seq > ?2`, `LIMIT ?3`.
    fn rows(self) -> &'static str {
        match self {
            Page::Range => "FROM activities WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            Page::Replies => "FROM activities WHERE parent_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        }
    }
}

/// A page of activities and, in the same read transaction (one snapshot),
/// the reaction summaries of its messages in one query: per emoji, the
/// count and whether `reader` (`?4`) is among the senders.
fn read_page(
    conn: &Connection,
    page: Page,
    key: Id,
    after_seq: i64,
    limit: u32,
    reader: Option<&str>,
) -> StoreResult<Vec<Activity>> {
    let limit = crate::PageRequest::clamp(limit);
    let mut activities = conn
        .prepare_cached(&format!("SELECT {ACTIVITY_COLS} {}", page.rows()))
        .and_then(|mut s| {
            s.query_map(params![key, after_seq, limit], rows::activity)?.collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sql_err)?;
    if !activities.iter().any(|a| a.is_message() && !a.is_deleted()) {
        return Ok(activities);
    }
    let sql = format!(
        "SELECT activity_id, emoji, count(*), max(sender = ?4) FROM reactions \
         WHERE activity_id IN (SELECT id {}) GROUP BY activity_id, emoji",
        page.rows()
    );
    let mut summaries: HashMap<Id, Vec<ReactionCount>> = HashMap::new();
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let counts = stmt
        .query_map(params![key, after_seq, limit, reader.unwrap_or("")], |r| {
            let me: i64 = r.get(3)?;
            Ok((
                r.get::<_, Id>(0)?,
                ReactionCount { emoji: r.get(1)?, count: r.get(2)?, me: me != 0 && reader.is_some() },
            ))
        })
        .map_err(sql_err)?;
    for row in counts {
        let (id, count) = row.map_err(sql_err)?;
        summaries.entry(id).or_default().push(count);
    }
    for a in activities.iter_mut() {
        if let (Some(mut counts), Some(state)) = (summaries.remove(&a.id), a.state.as_mut()) {
            ReactionCount::sort(&mut counts);
            state.reactions = counts;
        }
    }
    Ok(activities)
}

/// The rows the batch's lifecycle items name, as stored.
fn load_lifecycle(conn: &Connection, needs: &lifecycle::Needs) -> StoreResult<Lifecycle> {
    let mut targets = Vec::with_capacity(needs.targets.len());
    let mut by_id =
        conn.prepare_cached(&format!("SELECT {ACTIVITY_COLS} FROM activities WHERE id = ?")).map_err(sql_err)?;
    for id in &needs.targets {
        if let Some(a) = by_id.query_row([id], rows::activity).optional().map_err(sql_err)? {
            targets.push(a);
        }
    }
    let mut reactions = Vec::new();
    let mut reaction = conn
        .prepare_cached(&format!(
            "SELECT {} FROM reactions r JOIN activities a ON a.id = r.reaction_id \
             WHERE r.activity_id = ? AND r.sender = ? AND r.emoji = ?",
            ACTIVITY_COLS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .map_err(sql_err)?;
    for key in &needs.reactions {
        if let Some(a) = reaction.query_row(params![key.0, key.1, key.2], rows::activity).optional().map_err(sql_err)? {
            reactions.push((key.clone(), a));
        }
    }
    let mut members = Vec::new();
    let mut member =
        conn.prepare_cached("SELECT 1 FROM members WHERE conversation_id = ? AND sender = ?").map_err(sql_err)?;
    for key in &needs.members {
        if member.exists(params![key.0, key.1]).map_err(sql_err)? {
            members.push(key.clone());
        }
    }
    Ok(Lifecycle::new(needs, targets, reactions, members))
}

/// Writes what the batch's lifecycle items changed besides their own rows.
fn apply_effects(conn: &Connection, e: Effects) -> StoreResult<()> {
    if e.is_empty() {
        return Ok(());
    }
    for event in &e.events {
        super::events::fan_out(conn, event.tenant_id, event.kind, &event.data, event.at)?;
    }
    let mut update = conn
        .prepare_cached(
            "UPDATE activities SET text = ?, attachments = ?, metadata = ?, edited_at = ?, deleted_at = ?, \
             reply_count = ? WHERE id = ?",
        )
        .map_err(sql_err)?;
    for a in &e.updated {
        let state = a.state.clone().unwrap_or_default();
        update
            .execute(params![
                a.text,
                a.attachments,
                a.metadata,
                state.edited_at,
                state.deleted_at,
                state.reply_count,
                a.id
            ])
            .map_err(sql_err)?;
    }
    for id in &e.deleted {
        // The edits of a deleted message carried its content too.
        conn.prepare_cached(
            "UPDATE activities SET text = NULL, attachments = NULL, metadata = '{}' WHERE target_id = ?1 AND type = 'edit'",
        )
        .and_then(|mut s| s.execute([id]))
        .map_err(sql_err)?;
        conn.prepare_cached("DELETE FROM reactions WHERE activity_id = ?")
            .and_then(|mut s| s.execute([id]))
            .map_err(sql_err)?;
        conn.prepare_cached(
            "UPDATE deliveries SET status = 'failed', last_error = ?2, updated_at = ?3 WHERE status = 'pending' \
             AND (activity_id = ?1 OR activity_id IN (SELECT id FROM activities WHERE target_id = ?1 AND type = 'edit'))",
        )
        .and_then(|mut s| s.execute(params![id, crate::CANCELLED_BY_DELETE, crate::Timestamp::now()]))
        .map_err(sql_err)?;
    }
    for (key, reaction_id, conversation_id) in &e.reactions_set {
        conn.prepare_cached(
            "INSERT INTO reactions (activity_id, sender, emoji, reaction_id, conversation_id) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (activity_id, sender, emoji) DO UPDATE SET reaction_id = excluded.reaction_id",
        )
        .and_then(|mut s| s.execute(params![key.0, key.1, key.2, reaction_id, conversation_id]))
        .map_err(sql_err)?;
    }
    for key in &e.reactions_removed {
        conn.prepare_cached("DELETE FROM reactions WHERE activity_id = ? AND sender = ? AND emoji = ?")
            .and_then(|mut s| s.execute(params![key.0, key.1, key.2]))
            .map_err(sql_err)?;
    }
    for ((conversation_id, sender), m) in &e.members_set {
        conn.prepare_cached(
            "INSERT INTO members (id, tenant_id, conversation_id, sender, role, metadata, joined_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (conversation_id, sender) DO UPDATE SET role = excluded.role, metadata = excluded.metadata",
        )
        .and_then(|mut s| {
            s.execute(params![new_id(), m.tenant_id, conversation_id, sender, m.role, m.metadata, m.joined_at])
        })
        .map_err(sql_err)?;
    }
    for (conversation_id, sender) in &e.members_removed {
        conn.prepare_cached("DELETE FROM members WHERE conversation_id = ? AND sender = ?")
            .and_then(|mut s| s.execute(params![conversation_id, sender]))
            .map_err(sql_err)?;
    }
    Ok(())
}
