//! The insert half of `write_batch`: a batch's activities and their delivery
//! rows, then COMMIT, in one of two ways.
//!
//! - [`BulkInsert::Unnest`]: each table gets one `INSERT … SELECT FROM
//!   unnest($1::uuid[], …)` whose parameters are whole columns. The two
//!   statements and the COMMIT are pipelined: one round trip in all. If one
//!   fails, the server skips the rest of the transaction and COMMIT rolls back.
//! - [`BulkInsert::Copy`]: `COPY … FROM STDIN (FORMAT binary)` per table. COPY
//!   takes over the connection while it runs, so nothing is pipelined with it:
//!   two round trips per table, but no array parameters to decode.
//!
//! UNNEST is the default: it is never slower within the noise and wins clearly
//! on small batches, where round trips dominate. Activities/s, one writer, one
//! delivery row each, fsync on, 2-core machine (best of 3 rounds):
//!
//! | batch | conversations | UNNEST | COPY  |
//! |------:|--------------:|-------:|------:|
//! |     1 |            10 |   1347 |   892 |
//! |     1 |          1000 |   1386 |   889 |
//! |   100 |            10 |  22423 | 21873 |
//! |   100 |          1000 |  16686 | 16427 |
//! |  1000 |            10 |  22944 | 23613 |
//! |  1000 |          1000 |  14746 | 14537 |
//!
//! Rerun: `cargo test --release -p converger-storage --test pg_smoke -- --ignored bulk_bench --nocapture`
//! with `DATABASE_URL` set.

use std::pin::pin;

use bytes::Bytes;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::errors::map_err;
use super::pool::Conn;
use crate::lifecycle::Effects;
use crate::{Activity, Id, Json, StoreResult, Timestamp};

/// How `write_batch` inserts rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BulkInsert {
    /// Array parameters and `unnest`, pipelined with the COMMIT.
    #[default]
    Unnest,
    /// Binary COPY, one table after the other.
    Copy,
}

/// A delivery row to create: pending, due when its activity was created.
pub(super) struct NewDelivery {
    pub(super) id: Id,
    pub(super) activity_id: Id,
    pub(super) channel_id: Id,
    pub(super) tenant_id: Id,
    pub(super) at: Timestamp,
    /// What `deliveries.metadata` starts as (the write's trace, if any).
    pub(super) metadata: Json,
}

/// Everything the batch changes.
pub(super) struct Rows<'a> {
    pub(super) activities: Vec<&'a Activity>,
    pub(super) deliveries: Vec<NewDelivery>,
    /// What lifecycle items change besides their own rows (none in a batch of
    /// plain messages): written after the inserts, before the COMMIT.
    pub(super) effects: Option<Effects>,
}

const INSERT_ACTIVITIES: &str = "INSERT INTO activities \
     (id, tenant_id, conversation_id, seq, kind, text, attachments, sender, metadata, idempotency_key, created_at, \
     target_id, parent_id) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::text[], $7::jsonb[], \
     $8::text[], $9::jsonb[], $10::text[], $11::timestamptz[], $12::uuid[], $13::uuid[])";

/// The messages an edit, delete or reply changed, with their new state.
const UPDATE_MESSAGES: &str = "UPDATE activities a SET text = u.text, attachments = u.attachments, \
     metadata = u.metadata, edited_at = u.edited_at, deleted_at = u.deleted_at, reply_count = u.reply_count \
     FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[], $7::int4[]) \
     AS u(id, text, attachments, metadata, edited_at, deleted_at, reply_count) WHERE a.id = u.id";

/// The edits of deleted messages carried their content too.
const ERASE_EDITS: &str = "UPDATE activities SET text = NULL, attachments = NULL, metadata = '{}' \
     WHERE target_id = ANY($1) AND kind = 'edit'";

const DROP_REACTIONS_OF: &str = "DELETE FROM reactions WHERE activity_id = ANY($1)";

/// Deliveries of a deleted message, or of its edits, that have not gone out do not.
const CANCEL_DELIVERIES: &str = "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = $3 \
     WHERE status = 'pending' AND (activity_id = ANY($1) \
     OR activity_id IN (SELECT id FROM activities WHERE target_id = ANY($1) AND kind = 'edit'))";

const SET_REACTIONS: &str = "INSERT INTO reactions (activity_id, sender, emoji, reaction_id, conversation_id) \
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[]) \
     ON CONFLICT (activity_id, sender, emoji) DO UPDATE SET reaction_id = excluded.reaction_id";

const REMOVE_REACTIONS: &str = "DELETE FROM reactions WHERE (activity_id, sender, emoji) IN \
     (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]))";

const SET_MEMBERS: &str = "INSERT INTO members (id, tenant_id, conversation_id, sender, role, metadata, joined_at) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[]) \
     ON CONFLICT (conversation_id, sender) DO UPDATE SET role = excluded.role, metadata = excluded.metadata";

const REMOVE_MEMBERS: &str = "DELETE FROM members WHERE (conversation_id, sender) IN \
     (SELECT * FROM unnest($1::uuid[], $2::text[]))";

const INSERT_DELIVERIES: &str = "INSERT INTO deliveries \
     (id, activity_id, channel_id, tenant_id, status, attempts, next_attempt_at, metadata, created_at, updated_at) \
     SELECT d.id, d.activity_id, d.channel_id, d.tenant_id, 'pending', 0, d.at, d.metadata, d.at, d.at \
     FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::timestamptz[], $6::jsonb[]) \
     AS d(id, activity_id, channel_id, tenant_id, at, metadata)";

const COPY_ACTIVITIES: &str = "COPY activities \
     (id, tenant_id, conversation_id, seq, kind, text, attachments, sender, metadata, idempotency_key, created_at, \
     target_id, parent_id) FROM STDIN (FORMAT binary)";

const ACTIVITY_TYPES: [Type; 13] = [
    Type::UUID,
    Type::UUID,
    Type::UUID,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::UUID,
    Type::UUID,
];

const COPY_DELIVERIES: &str = "COPY deliveries \
     (id, activity_id, channel_id, tenant_id, status, attempts, next_attempt_at, metadata, created_at, updated_at) \
     FROM STDIN (FORMAT binary)";

const DELIVERY_TYPES: [Type; 10] = [
    Type::UUID,
    Type::UUID,
    Type::UUID,
    Type::UUID,
    Type::TEXT,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::JSONB,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
];

/// Writes `rows` and commits the caller's open transaction. On error the
/// transaction is aborted (or already rolled back), never committed.
pub(super) async fn write_and_commit(conn: &mut Conn, mode: BulkInsert, rows: &Rows<'_>) -> StoreResult<()> {
    match mode {
        BulkInsert::Unnest => unnest(conn, rows).await,
        BulkInsert::Copy => copy(conn, rows).await,
    }
}

/// Writes a lifecycle batch's effects inside its open transaction, one
/// statement after the other (each may depend on the rows the previous wrote).
async fn write_effects(conn: &mut Conn, e: &Effects) -> StoreResult<()> {
    // The member events, once the member rows below are written or not: any order works.
    super::events::write_pending(conn, &e.events).await?;
    if !e.updated.is_empty() {
        let u = &e.updated;
        let ids: Vec<Id> = u.iter().map(|a| a.id).collect();
        let texts: Vec<Option<&str>> = u.iter().map(|a| a.text.as_deref()).collect();
        let attachments: Vec<Option<&Json>> = u.iter().map(|a| a.attachments.as_ref()).collect();
        let metadata: Vec<&Json> = u.iter().map(|a| &a.metadata).collect();
        let state = |a: &Activity| a.state.clone().unwrap_or_default();
        let edited: Vec<Option<Timestamp>> = u.iter().map(|a| state(a).edited_at).collect();
        let deleted: Vec<Option<Timestamp>> = u.iter().map(|a| state(a).deleted_at).collect();
        let replies: Vec<i32> = u.iter().map(|a| i32::try_from(state(a).reply_count).unwrap_or(i32::MAX)).collect();
        let params: [&(dyn ToSql + Sync); 7] = [&ids, &texts, &attachments, &metadata, &edited, &deleted, &replies];
        conn.query(UPDATE_MESSAGES, &params).await?;
    }
    if !e.deleted.is_empty() {
        conn.query(ERASE_EDITS, &[&e.deleted]).await?;
        conn.query(DROP_REACTIONS_OF, &[&e.deleted]).await?;
        let params: [&(dyn ToSql + Sync); 3] = [&e.deleted, &crate::CANCELLED_BY_DELETE, &Timestamp::now()];
        conn.query(CANCEL_DELIVERIES, &params).await?;
    }
    if !e.reactions_removed.is_empty() {
        let (ids, (senders, emoji)): (Vec<Id>, (Vec<&str>, Vec<&str>)) =
            e.reactions_removed.iter().map(|(id, s, m)| (*id, (s.as_str(), m.as_str()))).unzip();
        conn.query(REMOVE_REACTIONS, &[&ids, &senders, &emoji]).await?;
    }
    if !e.reactions_set.is_empty() {
        let r = &e.reactions_set;
        let ids: Vec<Id> = r.iter().map(|(k, _, _)| k.0).collect();
        let senders: Vec<&str> = r.iter().map(|(k, _, _)| k.1.as_str()).collect();
        let emoji: Vec<&str> = r.iter().map(|(k, _, _)| k.2.as_str()).collect();
        let by: Vec<Id> = r.iter().map(|(_, by, _)| *by).collect();
        let convs: Vec<Id> = r.iter().map(|(_, _, c)| *c).collect();
        conn.query(SET_REACTIONS, &[&ids, &senders, &emoji, &by, &convs]).await?;
    }
    if !e.members_removed.is_empty() {
        let (convs, senders): (Vec<Id>, Vec<&str>) = e.members_removed.iter().map(|(c, s)| (*c, s.as_str())).unzip();
        conn.query(REMOVE_MEMBERS, &[&convs, &senders]).await?;
    }
    if !e.members_set.is_empty() {
        let m = &e.members_set;
        let ids: Vec<Id> = m.iter().map(|_| crate::new_id()).collect();
        let tenants: Vec<Id> = m.iter().map(|(_, r)| r.tenant_id).collect();
        let convs: Vec<Id> = m.iter().map(|(k, _)| k.0).collect();
        let senders: Vec<&str> = m.iter().map(|(k, _)| k.1.as_str()).collect();
        let roles: Vec<Option<&str>> = m.iter().map(|(_, r)| r.role.as_deref()).collect();
        let metadata: Vec<&Json> = m.iter().map(|(_, r)| &r.metadata).collect();
        let joined: Vec<Timestamp> = m.iter().map(|(_, r)| r.joined_at).collect();
        let params: [&(dyn ToSql + Sync); 7] = [&ids, &tenants, &convs, &senders, &roles, &metadata, &joined];
        conn.query(SET_MEMBERS, &params).await?;
    }
    Ok(())
}

async fn unnest(conn: &mut Conn, rows: &Rows<'_>) -> StoreResult<()> {
    let ins_a = conn.prepare(INSERT_ACTIVITIES).await?;
    let ins_d = conn.prepare(INSERT_DELIVERIES).await?;

    let acts = &rows.activities;
    let ids: Vec<Id> = acts.iter().map(|a| a.id).collect();
    let tenants: Vec<Id> = acts.iter().map(|a| a.tenant_id).collect();
    let convs: Vec<Id> = acts.iter().map(|a| a.conversation_id).collect();
    let seqs: Vec<i64> = acts.iter().map(|a| a.seq).collect();
    let kinds: Vec<&str> = acts.iter().map(|a| a.kind.as_str()).collect();
    let texts: Vec<Option<&str>> = acts.iter().map(|a| a.text.as_deref()).collect();
    let attachments: Vec<Option<&Json>> = acts.iter().map(|a| a.attachments.as_ref()).collect();
    let senders: Vec<&str> = acts.iter().map(|a| a.sender.as_str()).collect();
    let metadata: Vec<&Json> = acts.iter().map(|a| &a.metadata).collect();
    let keys: Vec<Option<&str>> = acts.iter().map(|a| a.idempotency_key.as_deref()).collect();
    let created: Vec<Timestamp> = acts.iter().map(|a| a.created_at).collect();
    let targets: Vec<Option<Id>> = acts.iter().map(|a| a.target_id).collect();
    let parents: Vec<Option<Id>> = acts.iter().map(|a| a.parent_id).collect();

    let ds = &rows.deliveries;
    let d_ids: Vec<Id> = ds.iter().map(|d| d.id).collect();
    let d_acts: Vec<Id> = ds.iter().map(|d| d.activity_id).collect();
    let d_chans: Vec<Id> = ds.iter().map(|d| d.channel_id).collect();
    let d_tenants: Vec<Id> = ds.iter().map(|d| d.tenant_id).collect();
    let d_at: Vec<Timestamp> = ds.iter().map(|d| d.at).collect();
    let d_metadata: Vec<&Json> = ds.iter().map(|d| &d.metadata).collect();

    let client = &conn.client;
    let a_params: [&(dyn ToSql + Sync); 13] = [
        &ids,
        &tenants,
        &convs,
        &seqs,
        &kinds,
        &texts,
        &attachments,
        &senders,
        &metadata,
        &keys,
        &created,
        &targets,
        &parents,
    ];
    let d_params: [&(dyn ToSql + Sync); 6] = [&d_ids, &d_acts, &d_chans, &d_tenants, &d_at, &d_metadata];
    if let Some(effects) = &rows.effects {
        // The effects read what the inserts wrote: no pipelining past them.
        if !acts.is_empty() {
            client.execute(&ins_a, &a_params).await.map_err(map_err)?;
        }
        if !ds.is_empty() {
            client.execute(&ins_d, &d_params).await.map_err(map_err)?;
        }
        write_effects(conn, effects).await?;
        return conn.client.batch_execute("COMMIT").await.map_err(map_err);
    }
    // join! polls in order, so the requests leave in this order on the one connection.
    let (a, d, c) = tokio::join!(
        async {
            if acts.is_empty() {
                return Ok(0);
            }
            client.execute(&ins_a, &a_params).await
        },
        async {
            if ds.is_empty() {
                return Ok(0);
            }
            client.execute(&ins_d, &d_params).await
        },
        client.batch_execute("COMMIT"),
    );
    a.map_err(map_err)?;
    d.map_err(map_err)?;
    c.map_err(map_err)
}

async fn copy(conn: &mut Conn, rows: &Rows<'_>) -> StoreResult<()> {
    let copy_a = conn.prepare(COPY_ACTIVITIES).await?;
    let copy_d = conn.prepare(COPY_DELIVERIES).await?;
    let client = &conn.client;

    if !rows.activities.is_empty() {
        let sink = client.copy_in::<_, Bytes>(&copy_a).await.map_err(map_err)?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &ACTIVITY_TYPES));
        for a in &rows.activities {
            let row: [&(dyn ToSql + Sync); 13] = [
                &a.id,
                &a.tenant_id,
                &a.conversation_id,
                &a.seq,
                &a.kind,
                &a.text,
                &a.attachments,
                &a.sender,
                &a.metadata,
                &a.idempotency_key,
                &a.created_at,
                &a.target_id,
                &a.parent_id,
            ];
            writer.as_mut().write(&row).await.map_err(map_err)?;
        }
        writer.finish().await.map_err(map_err)?;
    }
    if !rows.deliveries.is_empty() {
        let sink = client.copy_in::<_, Bytes>(&copy_d).await.map_err(map_err)?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &DELIVERY_TYPES));
        for d in &rows.deliveries {
            let row: [&(dyn ToSql + Sync); 10] = [
                &d.id,
                &d.activity_id,
                &d.channel_id,
                &d.tenant_id,
                &"pending",
                &0i32,
                &d.at,
                &d.metadata,
                &d.at,
                &d.at,
            ];
            writer.as_mut().write(&row).await.map_err(map_err)?;
        }
        writer.finish().await.map_err(map_err)?;
    }
    if let Some(effects) = &rows.effects {
        write_effects(conn, effects).await?;
    }
    conn.client.batch_execute("COMMIT").await.map_err(map_err)
}
