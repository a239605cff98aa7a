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
use crate::lifecycle::{self, Effects, Lifecycle, Needs};
use crate::{
    new_id, Activity, ConversationStatus, Entity, Id, NewActivity, PageRequest, ReactionCount, Scope, StoreError,
    StoreResult, Written,
};

/// A lifecycle batch locks the messages it acts on (in id order, like the
/// conversations), so two nodes editing or deleting one message take turns
/// and each sees the other's result.
const LOCK_TARGETS: &str = "SELECT id, tenant_id, conversation_id, seq, kind, text, attachments, sender, metadata, \
     idempotency_key, created_at, target_id, parent_id, edited_at, deleted_at, reply_count \
     FROM activities WHERE id = ANY($1) ORDER BY id FOR UPDATE";

/// The stored reactions a batch adds or removes, with the activity that added each.
const FIND_REACTIONS: &str = "SELECT r.activity_id, r.sender, r.emoji, a.id, a.tenant_id, a.conversation_id, a.seq, \
     a.kind, a.text, a.attachments, a.sender, a.metadata, a.idempotency_key, a.created_at, a.target_id, a.parent_id, \
     a.edited_at, a.deleted_at, a.reply_count \
     FROM reactions r JOIN activities a ON a.id = r.reaction_id \
     WHERE (r.activity_id, r.sender, r.emoji) IN (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]))";

const FIND_MEMBERS: &str = "SELECT conversation_id, sender FROM members \
     WHERE (conversation_id, sender) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))";

/// Reaction summaries of the page `read_range` reads (same parameters), so
/// both go out in one round trip.
const RANGE_REACTIONS: &str = "SELECT activity_id, emoji, count(*), coalesce(bool_or(sender = $4), false) \
     FROM reactions WHERE activity_id IN \
     (SELECT id FROM activities WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) \
     GROUP BY activity_id, emoji";

const REPLY_REACTIONS: &str = "SELECT activity_id, emoji, count(*), coalesce(bool_or(sender = $4), false) \
     FROM reactions WHERE activity_id IN \
     (SELECT id FROM activities WHERE parent_id = $1 AND seq > $2 ORDER BY seq LIMIT $3) \
     GROUP BY activity_id, emoji";

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
        let needs = lifecycle::needs(batch);

        let mut conn = self.pool.get().await?;
        let lock = conn.prepare(if exclusive { LOCK_CONVERSATIONS_EXCLUSIVELY } else { LOCK_CONVERSATIONS }).await?;
        let seqs = conn.prepare(LAST_SEQS).await?;
        let replay_sql = format!(
            "SELECT {ACTIVITY_COLS} FROM activities WHERE (conversation_id, idempotency_key) IN \
             (SELECT * FROM unnest($1::uuid[], $2::text[]))"
        );
        let replay = conn.prepare(&replay_sql).await?;
        let lifecycle_statements = match &needs {
            Some(_) => Some((
                conn.prepare(LOCK_TARGETS).await?,
                conn.prepare(FIND_REACTIONS).await?,
                conn.prepare(FIND_MEMBERS).await?,
            )),
            None => None,
        };

        conn.set_in_tx(true);
        let client = &conn.client;
        // join! polls in order, so the requests leave in this order on the one connection.
        let (begun, locked, fetched, existing, loaded) = tokio::join!(
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
            async {
                match (&needs, &lifecycle_statements) {
                    (Some(n), Some(st)) => load_lifecycle(client, n, st).await.map(Some),
                    _ => Ok(None),
                }
            },
        );
        let planned = match begun.and(locked).and_then(|l| Ok((l, fetched?, existing?, loaded?))) {
            Ok((locked, fetched, existing, loaded)) => {
                for r in &fetched {
                    // NULL: no activity yet (the plan starts from 0).
                    if let Some(seq) = r.try_get::<_, Option<i64>>(1).map_err(schema)? {
                        last_seqs.insert(r.try_get(0).map_err(schema)?, seq);
                    }
                }
                match loaded.map(|(t, r, m)| lifecycle_of(needs.as_ref(), t, r, m)).transpose() {
                    Ok(lifecycle) => plan(batch, &locked, &last_seqs, &existing, lifecycle),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(map_err(e)),
        };
        let written = match planned {
            Ok((out, deliveries, moved, effects)) => {
                let mut activities: Vec<&Activity> = out.iter().filter_map(new_activity).collect();
                activities.sort_unstable_by_key(|a| (a.conversation_id, a.seq));
                let rows = Rows { activities, deliveries, effects: effects.filter(|e| !e.is_empty()) };
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
        reader: Option<&str>,
    ) -> StoreResult<Vec<Activity>> {
        let range = format!(
            "SELECT {ACTIVITY_COLS} FROM activities WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let owner = "SELECT 1 FROM conversations WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)";
        let page = self
            .read_page(
                scope,
                conversation_id,
                owner,
                conversation_id,
                &range,
                RANGE_REACTIONS,
                after_seq,
                limit,
                reader,
            )
            .await;
        page.map_err(|e| match e {
            StoreError::NotFound(_) => StoreError::NotFound(Entity::Conversation),
            other => other,
        })
    }

    pub(super) async fn read_replies_impl(
        &self,
        scope: Scope,
        conversation_id: Id,
        parent_id: Id,
        after_seq: i64,
        limit: u32,
        reader: Option<&str>,
    ) -> StoreResult<Vec<Activity>> {
        // The parent must be a message of the conversation, of the tenant.
        let owner = "SELECT 1 FROM activities WHERE id = $3 AND conversation_id = $1 AND kind = 'message' \
             AND ($2::uuid IS NULL OR tenant_id = $2)";
        let range =
            format!("SELECT {ACTIVITY_COLS} FROM activities WHERE parent_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
        self.get_conversation_impl(scope, conversation_id).await?;
        let page = self
            .read_page(scope, conversation_id, owner, parent_id, &range, REPLY_REACTIONS, after_seq, limit, reader)
            .await;
        page.map_err(|e| match e {
            StoreError::NotFound(_) => StoreError::NotFound(Entity::Activity),
            other => other,
        })
    }

    /// A page of activities keyed by `key` (`range` and `reactions` take
    /// `key, after_seq, limit[, reader]`), checked by `owner` (`conversation,
    /// tenant[, key]`): the three queries in one round trip; the page is
    /// thrown away if the check fails (`NotFound`).
    #[allow(clippy::too_many_arguments)]
    async fn read_page(
        &self,
        scope: Scope,
        conversation_id: Id,
        owner: &str,
        key: Id,
        range: &str,
        reactions: &str,
        after_seq: i64,
        limit: u32,
        reader: Option<&str>,
    ) -> StoreResult<Vec<Activity>> {
        let limit = i64::from(PageRequest::clamp(limit));
        let tenant = scope.tenant();
        let mut conn = self.pool.get().await?;
        let owner_stmt = conn.prepare(owner).await?;
        let range = conn.prepare(range).await?;
        let reactions = conn.prepare(reactions).await?;
        let reader_name = reader.unwrap_or("");
        let client = &conn.client;
        let keyed = owner_stmt.params().len() == 3;
        let (found, rows, counts) = tokio::join!(
            async {
                if keyed {
                    client.query_opt(&owner_stmt, &[&conversation_id, &tenant, &key]).await
                } else {
                    client.query_opt(&owner_stmt, &[&conversation_id, &tenant]).await
                }
            },
            async { client.query(&range, &[&key, &after_seq, &limit]).await },
            async { client.query(&reactions, &[&key, &after_seq, &limit, &reader_name]).await },
        );
        if found.map_err(map_err)?.is_none() {
            return Err(StoreError::NotFound(Entity::Activity));
        }
        let mut page = rows::all(&rows.map_err(map_err)?, rows::activity)?;
        let mut summaries: HashMap<Id, Vec<ReactionCount>> = HashMap::new();
        for r in counts.map_err(map_err)? {
            let me: bool = r.try_get(3).map_err(schema)?;
            summaries.entry(r.try_get(0).map_err(schema)?).or_default().push(ReactionCount {
                emoji: r.try_get(1).map_err(schema)?,
                count: r.try_get(2).map_err(schema)?,
                me: me && reader.is_some(),
            });
        }
        for a in page.iter_mut() {
            if let (Some(mut counts), Some(state)) = (summaries.remove(&a.id), a.state.as_mut()) {
                ReactionCount::sort(&mut counts);
                state.reactions = counts;
            }
        }
        Ok(page)
    }
}

/// Each item's answer, the delivery rows to create, the last seq of every
/// conversation the batch moved, and what its lifecycle items change.
type Plan = (Vec<StoreResult<Written>>, Vec<NewDelivery>, Vec<(Id, i64)>, Option<Effects>);

type Loaded = (Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>);

/// Round 1's lifecycle reads: the targets (locked), the reactions and the members.
async fn load_lifecycle(
    client: &tokio_postgres::Client,
    needs: &Needs,
    (targets, reactions, members): &(tokio_postgres::Statement, tokio_postgres::Statement, tokio_postgres::Statement),
) -> Result<Loaded, tokio_postgres::Error> {
    let (r_ids, (r_senders, r_emoji)): (Vec<Id>, (Vec<&str>, Vec<&str>)) =
        needs.reactions.iter().map(|(id, s, e)| (*id, (s.as_str(), e.as_str()))).unzip();
    let (m_convs, m_senders): (Vec<Id>, Vec<&str>) = needs.members.iter().map(|(c, s)| (*c, s.as_str())).unzip();
    let (t, r, m) = tokio::join!(
        async { client.query(targets, &[&needs.targets]).await },
        async {
            if r_ids.is_empty() {
                return Ok(Vec::new());
            }
            client.query(reactions, &[&r_ids, &r_senders, &r_emoji]).await
        },
        async {
            if m_convs.is_empty() {
                return Ok(Vec::new());
            }
            client.query(members, &[&m_convs, &m_senders]).await
        },
    );
    Ok((t?, r?, m?))
}

fn lifecycle_of(
    needs: Option<&Needs>,
    targets: Vec<tokio_postgres::Row>,
    reactions: Vec<tokio_postgres::Row>,
    members: Vec<tokio_postgres::Row>,
) -> StoreResult<Lifecycle> {
    let Some(needs) = needs else {
        return Err(StoreError::Internal("lifecycle rows loaded for a batch that needs none".into()));
    };
    let targets = rows::all(&targets, rows::activity)?;
    let mut found = Vec::with_capacity(reactions.len());
    for r in &reactions {
        let key = (r.try_get(0).map_err(schema)?, r.try_get(1).map_err(schema)?, r.try_get(2).map_err(schema)?);
        found.push((key, rows::activity_at(r, 3)?));
    }
    let members = members
        .iter()
        .map(|r| Ok((r.try_get(0).map_err(schema)?, r.try_get(1).map_err(schema)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Lifecycle::new(needs, targets, found, members))
}

/// Decides each item's fate from the locked conversations, their last seqs and
/// the activities already stored under the batch's idempotency keys: pure, no I/O.
fn plan(
    batch: &[NewActivity],
    locked: &[tokio_postgres::Row],
    last_seqs: &HashMap<Id, i64>,
    existing: &[tokio_postgres::Row],
    lifecycle: Option<Lifecycle>,
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
    Ok(assign(batch, convs, stored, lifecycle))
}

fn assign(
    batch: &[NewActivity],
    mut convs: HashMap<Id, ConversationState>,
    mut stored: HashMap<(Id, String), Activity>,
    mut lifecycle: Option<Lifecycle>,
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
        if let Some(answer) = lifecycle.as_ref().and_then(|l| l.answer_instead(item)) {
            out.push(answer);
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
                metadata: item.delivery_metadata(),
            });
        }
        let a = item.clone().into_stored(state.last_seq);
        if let Some(l) = lifecycle.as_mut() {
            l.record(item, &a);
        }
        if let Some(key) = &a.idempotency_key {
            stored.insert((a.conversation_id, key.clone()), a.clone());
        }
        out.push(Ok(Written::New(a)));
    }
    let mut bumped: Vec<(Id, i64)> =
        convs.into_iter().filter(|(_, s)| s.last_seq != s.first_seq).map(|(id, s)| (id, s.last_seq)).collect();
    bumped.sort_unstable();
    (out, deliveries, bumped, lifecycle.map(Lifecycle::finish))
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
            target_id: None,
            parent_id: None,
            author_only: false,
            member: None,
            announce: false,
            traceparent: None,
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
        let (out, _, bumped, _) = assign(&batch, convs, HashMap::new(), None);
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
        let (out, deliveries, bumped, _) = assign(&batch, convs, HashMap::new(), None);
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
        let (out, _, bumped, _) = assign(&batch, convs, HashMap::new(), None);
        assert!(matches!(&out[0], Ok(Written::New(x)) if x.seq == 1));
        assert!(matches!(&out[1], Ok(Written::Replay(x)) if x.id == first_id && x.seq == 1));
        assert!(matches!(&out[2], Ok(Written::New(x)) if x.seq == 2));
        assert_eq!(bumped, vec![(a, 2)]);
    }

    #[test]
    fn a_stored_key_replays_without_taking_a_seq() {
        let (t, a) = (new_id(), new_id());
        let convs = HashMap::from([(a, state(t, true, 4))]);
        let (original, _, _, _) =
            assign(&[item(t, a, Some("k"), vec![])], HashMap::from([(a, state(t, true, 0))]), HashMap::new(), None);
        let original = original.into_iter().next().unwrap().unwrap().into_activity();
        let stored = HashMap::from([((a, "k".to_string()), original.clone())]);
        let (out, deliveries, bumped, _) = assign(&[item(t, a, Some("k"), vec![new_id()])], convs, stored, None);
        assert_eq!(out[0].as_ref().unwrap(), &Written::Replay(original));
        assert!(deliveries.is_empty() && bumped.is_empty());
    }

    #[test]
    fn each_channel_gets_one_delivery_row() {
        let (t, a, ch) = (new_id(), new_id(), new_id());
        let convs = HashMap::from([(a, state(t, true, 0))]);
        let created = item(t, a, None, vec![ch, ch]);
        let (out, deliveries, _, _) = assign(&[created], convs, HashMap::new(), None);
        let activity = out[0].as_ref().unwrap().activity();
        assert_eq!(deliveries.len(), 1);
        assert_eq!((deliveries[0].activity_id, deliveries[0].channel_id), (activity.id, ch));
        assert_eq!(deliveries[0].at, activity.created_at);
    }
}
