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
}

/// Everything the batch changes.
pub(super) struct Rows<'a> {
    pub(super) activities: Vec<&'a Activity>,
    pub(super) deliveries: Vec<NewDelivery>,
}

const INSERT_ACTIVITIES: &str = "INSERT INTO activities \
     (id, tenant_id, conversation_id, seq, kind, text, attachments, sender, metadata, idempotency_key, created_at) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::text[], $7::jsonb[], \
     $8::text[], $9::jsonb[], $10::text[], $11::timestamptz[])";

const INSERT_DELIVERIES: &str = "INSERT INTO deliveries \
     (id, activity_id, channel_id, tenant_id, status, attempts, next_attempt_at, metadata, created_at, updated_at) \
     SELECT d.id, d.activity_id, d.channel_id, d.tenant_id, 'pending', 0, d.at, '{}', d.at, d.at \
     FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::timestamptz[]) \
     AS d(id, activity_id, channel_id, tenant_id, at)";

const COPY_ACTIVITIES: &str = "COPY activities \
     (id, tenant_id, conversation_id, seq, kind, text, attachments, sender, metadata, idempotency_key, created_at) \
     FROM STDIN (FORMAT binary)";

const ACTIVITY_TYPES: [Type; 11] = [
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

    let ds = &rows.deliveries;
    let d_ids: Vec<Id> = ds.iter().map(|d| d.id).collect();
    let d_acts: Vec<Id> = ds.iter().map(|d| d.activity_id).collect();
    let d_chans: Vec<Id> = ds.iter().map(|d| d.channel_id).collect();
    let d_tenants: Vec<Id> = ds.iter().map(|d| d.tenant_id).collect();
    let d_at: Vec<Timestamp> = ds.iter().map(|d| d.at).collect();

    let client = &conn.client;
    let a_params: [&(dyn ToSql + Sync); 11] =
        [&ids, &tenants, &convs, &seqs, &kinds, &texts, &attachments, &senders, &metadata, &keys, &created];
    let d_params: [&(dyn ToSql + Sync); 5] = [&d_ids, &d_acts, &d_chans, &d_tenants, &d_at];
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
            let row: [&(dyn ToSql + Sync); 11] = [
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
            ];
            writer.as_mut().write(&row).await.map_err(map_err)?;
        }
        writer.finish().await.map_err(map_err)?;
    }
    if !rows.deliveries.is_empty() {
        let sink = client.copy_in::<_, Bytes>(&copy_d).await.map_err(map_err)?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &DELIVERY_TYPES));
        let empty = Json::empty_object();
        for d in &rows.deliveries {
            let row: [&(dyn ToSql + Sync); 10] =
                [&d.id, &d.activity_id, &d.channel_id, &d.tenant_id, &"pending", &0i32, &d.at, &empty, &d.at, &d.at];
            writer.as_mut().write(&row).await.map_err(map_err)?;
        }
        writer.finish().await.map_err(map_err)?;
    }
    client.batch_execute("COMMIT").await.map_err(map_err)
}
