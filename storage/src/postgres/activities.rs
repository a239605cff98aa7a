//! The batched write and the range read.
//!
//! `write_batch` is one transaction in two round trips (plus the first use of
//! each statement on a connection):
//! 1. BEGIN, share-lock the batch's conversations, read the last seq of those
//!    this process does not remember (see [`super::seqs`]), and look up the
//!    batch's idempotency keys — pipelined. The share lock makes a concurrent
//!    close wait for this batch (and this batch see a close that committed
//!    first) without making writers of one conversation wait for each other.
//! 2. insert the activities (sorted by conversation, so concurrent writers take
//!    index entries in one global order and cannot deadlock) and their delivery
//!    rows, then COMMIT — pipelined (see [`super::bulk`]).
//!
//! Two writers of one conversation (two nodes, or a race the shards would never
//! produce) may pick the same seq or idempotency key: the unique indexes refuse
//! the second, which rolls back, forgets what it assumed, and tries again, this
//! time holding the conversations exclusively and reading their last seqs
//! fresh. So seq stays gap-free and each key is written once, without a lock
//! between writers on the hot path. A conversation that lost a race is written
//! that pessimistic way for the next seconds (it has another writer: guessing
//! would mostly roll back again).

use std::collections::HashMap;

use super::bulk::{self, NewDelivery, Rows};
use super::errors::map_err;
use super::rows::{self, ACTIVITY_COLS};
use super::PgStore;
use crate::{
    new_id, Activity, ConversationStatus, Entity, Id, NewActivity, PageRequest, Scope, StoreError, StoreResult, Written,
};

/// Locks are taken in id order by every writer, so they cannot deadlock.
const LOCK_CONVERSATIONS: &str =
    "SELECT id, tenant_id, status FROM conversations WHERE id = ANY($1) ORDER BY id FOR SHARE";

/// A batch that lost a race retries holding its conversations exclusively: it
/// waits for the writers already in, shuts out new ones, and so cannot lose twice.
const LOCK_CONVERSATIONS_EXCLUSIVELY: &str =
    "SELECT id, tenant_id, status FROM conversations WHERE id = ANY($1) ORDER BY id FOR UPDATE";

/// One descent of the `(conversation_id, seq)` index per conversation: an
/// ungrouped `max` per row uses the index's last entry, where `GROUP BY` over
/// `= ANY($1)` read every entry of the conversations (slower with each write).
const LAST_SEQS: &str =
    "SELECT c.id, (SELECT max(seq) FROM activities WHERE conversation_id = c.id) FROM unnest($1::uuid[]) AS c(id)";

/// Tries of one batch that lost a seq or key race. The second try holds its
/// conversations exclusively and cannot lose, so a third means something else.
const ATTEMPTS: usize = 3;

/// The unique constraints a racing writer can hit; anything else is a real error.
const RACE_CONSTRAINTS: [&str; 2] = ["activities_conversation_seq_key", "activities_conversation_idempotency_key"];

/// What the batch knows of one conversation it writes to.
struct ConversationState {
    tenant_id: Id,
    active: bool,
    last_seq: i64,
    first_seq: i64,
}

impl PgStore {
    pub(super) async fn write_batch_impl(&self, batch: Vec<NewActivity>) -> StoreResult<Vec<StoreResult<Written>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut conv_ids: Vec<Id> = batch.iter().map(|a| a.conversation_id).collect();
        conv_ids.sort_unstable();
        conv_ids.dedup();
        // Conversations written by another node too start pessimistic (see SeqCache::mark_contended).
        let mut exclusive = self.seqs.any_contended(&conv_ids);
        let mut attempt = 1;
        loop {
            match self.try_write_batch(&batch, &conv_ids, exclusive).await {
                Err(StoreError::Conflict(c)) if RACE_CONSTRAINTS.contains(&c.as_str()) && attempt < ATTEMPTS => {
                    self.seqs.forget(&conv_ids);
                    self.seqs.mark_contended(&conv_ids);
                    exclusive = true;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn try_write_batch(
        &self,
        batch: &[NewActivity],
        conv_ids: &[Id],
        exclusive: bool,
    ) -> StoreResult<Vec<StoreResult<Written>>> {
        // Holding the conversations exclusively, the last seqs are read fresh:
        // another node may have written since this process remembered them.
        let known = if exclusive { vec![None; conv_ids.len()] } else { self.seqs.get_many(conv_ids) };
        let unknown: Vec<Id> = conv_ids.iter().zip(&known).filter(|(_, k)| k.is_none()).map(|(id, _)| *id).collect();
        let mut last_seqs: HashMap<Id, i64> =
            conv_ids.iter().zip(known).filter_map(|(id, k)| Some((*id, k?))).collect();
        let (key_convs, keys): (Vec<Id>, Vec<&str>) =
            batch.iter().filter_map(|a| a.idempotency_key.as_deref().map(|k| (a.conversation_id, k))).unzip();

        let mut conn = self.pool.get().await?;
        let lock = conn.prepare(if exclusive { LOCK_CONVERSATIONS_EXCLUSIVELY } else { LOCK_CONVERSATIONS }).await?;
        let seqs = conn.prepare(LAST_SEQS).await?;
        let replay_sql = format!(
            "SELECT {ACTIVITY_COLS} FROM activities WHERE (conversation_id, idempotency_key) IN \
             (SELECT * FROM unnest($1::uuid[], $2::text[]))"
        );
        let replay = conn.prepare(&replay_sql).await?;

        conn.set_in_tx(true);
        let client = &conn.client;
        // join! polls in order, so the requests leave in this order on the one connection.
        let (begun, locked, fetched, existing) = tokio::join!(
            client.batch_execute("BEGIN"),
            async { client.query(&lock, &[&conv_ids]).await },
            async {
                if unknown.is_empty() {
                    return Ok(Vec::new());
                }
                client.query(&seqs, &[&unknown]).await
            },
            async {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                client.query(&replay, &[&key_convs, &keys]).await
            },
        );
        let planned = match begun.and(locked).and_then(|l| Ok((l, fetched?, existing?))) {
            Ok((locked, fetched, existing)) => {
                for r in &fetched {
                    // NULL: no activity yet (the plan starts from 0).
                    if let Some(seq) = r.try_get::<_, Option<i64>>(1).map_err(schema)? {
                        last_seqs.insert(r.try_get(0).map_err(schema)?, seq);
                    }
                }
                plan(batch, &locked, &last_seqs, &existing)
            }
            Err(e) => Err(map_err(e)),
        };
        let written = match planned {
            Ok((out, deliveries, moved)) => {
                let mut activities: Vec<&Activity> = out.iter().filter_map(new_activity).collect();
                activities.sort_unstable_by_key(|a| (a.conversation_id, a.seq));
                let rows = Rows { activities, deliveries };
                let committed = bulk::write_and_commit(&mut conn, self.bulk, &rows).await;
                drop(rows);
                committed.map(|()| (out, moved))
            }
            Err(e) => Err(e),
        };
        match written {
            Ok((out, moved)) => {
                conn.set_in_tx(false);
                self.seqs.remember(moved);
                Ok(out)
            }
            Err(e) => {
                // After a failed COMMIT there is no transaction left and this
                // only warns; either way the connection is clean again.
                if conn.client.batch_execute("ROLLBACK").await.is_ok() {
                    conn.set_in_tx(false);
                }
                Err(e)
            }
        }
    }

    pub(super) async fn get_activity_impl(&self, scope: Scope, id: Id) -> StoreResult<Activity> {
        let sql =
            format!("SELECT {ACTIVITY_COLS} FROM activities WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)");
        self.pool.get().await?.one(&sql, &[&id, &scope.tenant()], rows::activity, Entity::Activity).await
    }

    pub(super) async fn read_range_impl(
        &self,
        scope: Scope,
        conversation_id: Id,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<Activity>> {
        let limit = i64::from(PageRequest::clamp(limit));
        let tenant = scope.tenant();
        let mut conn = self.pool.get().await?;
        let owner =
            conn.prepare("SELECT 1 FROM conversations WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)").await?;
        let range = conn
            .prepare(&format!(
                "SELECT {ACTIVITY_COLS} FROM activities WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ))
            .await?;
        let client = &conn.client;
        // Both in one round trip; the range is thrown away if the scope check fails.
        let (found, rows) =
            tokio::join!(async { client.query_opt(&owner, &[&conversation_id, &tenant]).await }, async {
                client.query(&range, &[&conversation_id, &after_seq, &limit]).await
            },);
        if found.map_err(map_err)?.is_none() {
            return Err(StoreError::NotFound(Entity::Conversation));
        }
        rows::all(&rows.map_err(map_err)?, rows::activity)
    }
}

/// Each item's answer, the delivery rows to create, and the last seq of every
/// conversation the batch moved.
type Plan = (Vec<StoreResult<Written>>, Vec<NewDelivery>, Vec<(Id, i64)>);

/// Decides each item's fate from the locked conversations, their last seqs and
/// the activities already stored under the batch's idempotency keys: pure, no I/O.
fn plan(
    batch: &[NewActivity],
    locked: &[tokio_postgres::Row],
    last_seqs: &HashMap<Id, i64>,
    existing: &[tokio_postgres::Row],
) -> StoreResult<Plan> {
    let mut convs: HashMap<Id, ConversationState> = HashMap::with_capacity(locked.len());
    for r in locked {
        let id: Id = r.try_get(0).map_err(schema)?;
        let status: &str = r.try_get(2).map_err(schema)?;
        let last_seq = last_seqs.get(&id).copied().unwrap_or(0);
        convs.insert(
            id,
            ConversationState {
                tenant_id: r.try_get(1).map_err(schema)?,
                active: ConversationStatus::parse(status) == Some(ConversationStatus::Active),
                last_seq,
                first_seq: last_seq,
            },
        );
    }
    let mut stored: HashMap<(Id, String), Activity> = HashMap::with_capacity(existing.len());
    for r in existing {
        let a = rows::activity(r)?;
        if let Some(k) = a.idempotency_key.clone() {
            stored.insert((a.conversation_id, k), a);
        }
    }
    Ok(assign(batch, convs, stored))
}

fn assign(
    batch: &[NewActivity],
    mut convs: HashMap<Id, ConversationState>,
    mut stored: HashMap<(Id, String), Activity>,
) -> Plan {
    let mut out = Vec::with_capacity(batch.len());
    let mut deliveries = Vec::new();
    for item in batch {
        let state = match convs.get_mut(&item.conversation_id) {
            Some(s) if s.tenant_id == item.tenant_id => s,
            _ => {
                out.push(Err(StoreError::NotFound(Entity::Conversation)));
                continue;
            }
        };
        if let Some(key) = &item.idempotency_key {
            // Stored before, or written earlier in this batch (recorded below).
            // A replay answers even on a closed conversation: the write it repeats succeeded.
            if let Some(original) = stored.get(&(item.conversation_id, key.clone())) {
                out.push(Ok(Written::Replay(original.clone())));
                continue;
            }
        }
        if !state.active {
            out.push(Err(StoreError::ConversationClosed));
            continue;
        }
        state.last_seq += 1;
        let mut channels = item.deliver_to.clone();
        channels.sort_unstable();
        channels.dedup();
        for channel_id in channels {
            deliveries.push(NewDelivery {
                id: new_id(),
                activity_id: item.id,
                channel_id,
                tenant_id: item.tenant_id,
                at: item.created_at,
            });
        }
        let a = item.clone().into_stored(state.last_seq);
        if let Some(key) = &a.idempotency_key {
            stored.insert((a.conversation_id, key.clone()), a.clone());
        }
        out.push(Ok(Written::New(a)));
    }
    let mut bumped: Vec<(Id, i64)> =
        convs.into_iter().filter(|(_, s)| s.last_seq != s.first_seq).map(|(id, s)| (id, s.last_seq)).collect();
    bumped.sort_unstable();
    (out, deliveries, bumped)
}

fn new_activity(w: &StoreResult<Written>) -> Option<&Activity> {
    match w {
        Ok(Written::New(a)) => Some(a),
        _ => None,
    }
}

fn schema(e: tokio_postgres::Error) -> StoreError {
    StoreError::Schema(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Json, Timestamp};

    fn item(tenant: Id, conv: Id, key: Option<&str>, deliver_to: Vec<Id>) -> NewActivity {
        NewActivity {
            id: new_id(),
            tenant_id: tenant,
            conversation_id: conv,
            kind: "message".into(),
            text: Some("hi".into()),
            attachments: None,
            sender: "u".into(),
            metadata: Json::empty_object(),
            idempotency_key: key.map(str::to_owned),
            created_at: Timestamp::from_micros(1),
            deliver_to,
        }
    }

    fn state(tenant: Id, active: bool, last_seq: i64) -> ConversationState {
        ConversationState { tenant_id: tenant, active, last_seq, first_seq: last_seq }
    }

    #[test]
    fn seqs_continue_from_last_seq_per_conversation() {
        let (t, a, b) = (new_id(), new_id(), new_id());
        let convs = HashMap::from([(a, state(t, true, 5)), (b, state(t, true, 0))]);
        let batch = vec![item(t, a, None, vec![]), item(t, b, None, vec![]), item(t, a, None, vec![])];
        let (out, _, bumped) = assign(&batch, convs, HashMap::new());
        let seqs: Vec<i64> = out.iter().map(|w| w.as_ref().unwrap().activity().seq).collect();
        assert_eq!(seqs, [6, 1, 7]);
        let mut expected = vec![(a, 7), (b, 1)];
        expected.sort_unstable();
        assert_eq!(bumped, expected);
    }

    #[test]
    fn other_tenants_missing_and_closed_conversations_fail_alone() {
        let (t, other, a, closed) = (new_id(), new_id(), new_id(), new_id());
        let convs = HashMap::from([(a, state(other, true, 0)), (closed, state(t, false, 3))]);
        let batch = vec![item(t, a, None, vec![]), item(t, new_id(), None, vec![]), item(t, closed, None, vec![])];
        let (out, deliveries, bumped) = assign(&batch, convs, HashMap::new());
        assert!(matches!(out[0], Err(StoreError::NotFound(Entity::Conversation))));
        assert!(matches!(out[1], Err(StoreError::NotFound(Entity::Conversation))));
        assert!(matches!(out[2], Err(StoreError::ConversationClosed)));
        assert!(deliveries.is_empty() && bumped.is_empty());
    }

    #[test]
    fn a_key_repeated_in_the_batch_replays_the_first_item() {
        let (t, a) = (new_id(), new_id());
        let convs = HashMap::from([(a, state(t, true, 0))]);
        let batch = vec![item(t, a, Some("k"), vec![]), item(t, a, Some("k"), vec![]), item(t, a, None, vec![])];
        let first_id = batch[0].id;
        let (out, _, bumped) = assign(&batch, convs, HashMap::new());
        assert!(matches!(&out[0], Ok(Written::New(x)) if x.seq == 1));
        assert!(matches!(&out[1], Ok(Written::Replay(x)) if x.id == first_id && x.seq == 1));
        assert!(matches!(&out[2], Ok(Written::New(x)) if x.seq == 2));
        assert_eq!(bumped, vec![(a, 2)]);
    }

    #[test]
    fn a_stored_key_replays_without_taking_a_seq() {
        let (t, a) = (new_id(), new_id());
        let convs = HashMap::from([(a, state(t, true, 4))]);
        let (original, _, _) =
            assign(&[item(t, a, Some("k"), vec![])], HashMap::from([(a, state(t, true, 0))]), HashMap::new());
        let original = original.into_iter().next().unwrap().unwrap().into_activity();
        let stored = HashMap::from([((a, "k".to_string()), original.clone())]);
        let (out, deliveries, bumped) = assign(&[item(t, a, Some("k"), vec![new_id()])], convs, stored);
        assert_eq!(out[0].as_ref().unwrap(), &Written::Replay(original));
        assert!(deliveries.is_empty() && bumped.is_empty());
    }

    #[test]
    fn each_channel_gets_one_delivery_row() {
        let (t, a, ch) = (new_id(), new_id(), new_id());
        let convs = HashMap::from([(a, state(t, true, 0))]);
        let created = item(t, a, None, vec![ch, ch]);
        let (out, deliveries, _) = assign(&[created], convs, HashMap::new());
        let activity = out[0].as_ref().unwrap().activity();
        assert_eq!(deliveries.len(), 1);
        assert_eq!((deliveries[0].activity_id, deliveries[0].channel_id), (activity.id, ch));
        assert_eq!(deliveries[0].at, activity.created_at);
    }
}
