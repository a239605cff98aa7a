//! The delivery queue: lookups, leased claims, outcomes, admin retries, stats.
//!
//! A claim is one statement: pick due pending rows with `FOR UPDATE SKIP
//! LOCKED` (concurrent claimers skip each other's rows instead of waiting) and
//! push their `next_attempt_at` to the end of the lease; a picked row with
//! every attempt used fails there instead. It reads at most its limit of
//! rows: a separate pass for used-up rows read every due row, per claim. The lease is the only
//! state: a claimer that dies leaves rows that fall due again by themselves.

use std::time::Duration;

use tokio_postgres::types::ToSql;

use super::events::{fan_out, DELIVERY_FAILED_DATA};
use super::query::ListQuery;
use super::rows::{self, DELIVERY_COLS};
use super::PgStore;
use crate::{
    Delivery, DeliveryFilter, DeliveryOutcome, DeliveryStatus, Entity, Id, Json, Page, PageRequest, Scope, Stats,
    StoreError, StoreResult, Timestamp,
};

const SCOPED: &str = "id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)";

impl PgStore {
    pub(super) async fn get_delivery_impl(&self, scope: Scope, id: Id) -> StoreResult<Delivery> {
        let sql = format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE {SCOPED}");
        self.pool.get().await?.one(&sql, &[&id, &scope.tenant()], rows::delivery, Entity::Delivery).await
    }

    pub(super) async fn list_deliveries_impl(
        &self,
        scope: Scope,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        let mut conn = self.pool.get().await?;
        ListQuery::new(DELIVERY_COLS, "deliveries")
            .eq("tenant_id", scope.tenant())
            .eq("activity_id", filter.activity_id)
            .eq("channel_id", filter.channel_id)
            .eq("status", filter.status.map(DeliveryStatus::as_str))
            .fetch(&mut conn, page, rows::delivery, |d| d.id)
            .await
    }

    pub(super) async fn claim_deliveries_impl(
        &self,
        now: Timestamp,
        limit: u32,
        lease: Duration,
        max_attempts: i32,
    ) -> StoreResult<Vec<Delivery>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut client = self.pool.get().await?;
        // One statement: the oldest due rows (at most `limit`); those with
        // every attempt used (the last one never recorded an outcome) fail,
        // with their `delivery.failed` events, and the others are leased. A
        // claim so reads its limit of rows, never the whole backlog.
        let src = format!(
            "(SELECT tenant_id, 'delivery.failed'::text AS type, {DELIVERY_FAILED_DATA} AS data, updated_at AS at \
             FROM failed) src"
        );
        // RETURNING has no order of its own: the due time before the lease
        // (selected in the CTE) puts the claim back in queue order.
        let sql = format!(
            "WITH due AS (\
                 SELECT id, next_attempt_at, attempts FROM deliveries \
                 WHERE status = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
             failed AS (UPDATE deliveries d SET status = 'failed', last_error = $6, updated_at = $4 \
                 FROM due WHERE d.id = due.id AND due.attempts >= $5 RETURNING {cols}), \
             ev AS ({events}), \
             leased AS (UPDATE deliveries d SET attempts = d.attempts + 1, next_attempt_at = $3, updated_at = $4 \
                 FROM due WHERE d.id = due.id AND due.attempts < $5 \
                 RETURNING {cols}, due.next_attempt_at AS due_at) \
             SELECT * FROM leased",
            cols = qualified("d", DELIVERY_COLS),
            events = fan_out(&src),
        );
        let until = now.plus(lease);
        let gave_up = crate::gave_up(max_attempts);
        let params: [&(dyn ToSql + Sync); 6] =
            [&now, &i64::from(limit), &until, &Timestamp::now(), &max_attempts, &gave_up];
        let rows = client.query(&sql, &params).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let due: Timestamp = r.try_get("due_at").map_err(|e| StoreError::Schema(e.to_string()))?;
            claimed.push((due, rows::delivery(r)?));
        }
        claimed.sort_by_key(|(due, d)| (*due, d.id));
        Ok(claimed.into_iter().map(|(_, d)| d).collect())
    }

    pub(super) async fn complete_delivery_impl(
        &self,
        id: Id,
        attempt: i32,
        outcome: DeliveryOutcome,
    ) -> StoreResult<Delivery> {
        let row = Outcome::new(id, attempt, outcome)?;
        let sql = complete_sql();
        match self.pool.get().await?.one(&sql, &row.params(), rows::delivery, Entity::Delivery).await {
            Err(StoreError::NotFound(_)) => self.stale(id, attempt).await,
            other => other,
        }
    }

    /// [`complete_delivery_impl`] for each outcome, in one transaction whose
    /// statements are pipelined: one commit for the group.
    pub(super) async fn complete_deliveries_impl(
        &self,
        outcomes: Vec<(Id, i32, DeliveryOutcome)>,
    ) -> StoreResult<Vec<StoreResult<Delivery>>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        // Refused outcomes (a patch that is not an object) answer alone, unwritten.
        let checked: Vec<StoreResult<Outcome>> =
            outcomes.into_iter().map(|(id, attempt, outcome)| Outcome::new(id, attempt, outcome)).collect();
        let mut conn = self.pool.get().await?;
        let stmt = conn.prepare(&complete_sql()).await?;
        conn.set_in_tx(true);
        let client = &conn.client;
        let params: Vec<_> = checked.iter().filter_map(|c| c.as_ref().ok()).map(Outcome::params).collect();
        let updates = futures_util::future::join_all(params.iter().map(|p| client.query_opt(&stmt, p)));
        // join! polls in order, so BEGIN, the updates and COMMIT leave in this order on the one connection.
        let (begun, updated, committed) =
            tokio::join!(client.batch_execute("BEGIN"), updates, async { client.batch_execute("COMMIT").await });
        let updated: Result<Vec<_>, _> = updated.into_iter().collect();
        let updated = match begun.and(updated).and_then(|u| committed.map(|()| u)) {
            Ok(updated) => updated,
            Err(e) => {
                if conn.client.batch_execute("ROLLBACK").await.is_ok() {
                    conn.set_in_tx(false);
                }
                return Err(super::errors::map_err(e));
            }
        };
        conn.set_in_tx(false);
        drop(conn);
        let mut updated = updated.into_iter();
        let mut answers = Vec::with_capacity(checked.len());
        for c in checked {
            answers.push(match c {
                Err(e) => Err(e),
                Ok(outcome) => match updated.next().flatten() {
                    Some(row) => rows::delivery(&row),
                    None => self.stale(outcome.id, outcome.attempt).await,
                },
            });
        }
        Ok(answers)
    }

    /// The answer to an outcome whose claim is not the current one.
    async fn stale(&self, id: Id, attempt: i32) -> StoreResult<Delivery> {
        let current = self.get_delivery_impl(Scope::Admin, id).await?;
        Err(StoreError::stale_claim(&current, attempt))
    }

    /// Undoes the claim numbered `attempt`: one attempt fewer, due at `due`.
    pub(super) async fn release_delivery_impl(&self, id: Id, attempt: i32, due: Timestamp) -> StoreResult<Delivery> {
        let sql = format!(
            "UPDATE deliveries SET attempts = attempts - 1, next_attempt_at = $3, updated_at = $4 \
             WHERE id = $1 AND attempts = $2 AND status = 'pending' RETURNING {DELIVERY_COLS}"
        );
        let params: [&(dyn ToSql + Sync); 4] = [&id, &attempt, &due, &Timestamp::now()];
        match self.pool.get().await?.one(&sql, &params, rows::delivery, Entity::Delivery).await {
            Err(StoreError::NotFound(_)) => self.stale(id, attempt).await,
            other => other,
        }
    }

    /// A shallow merge (`||`): the patch's keys replace the stored ones.
    pub(super) async fn merge_delivery_metadata_impl(
        &self,
        scope: Scope,
        id: Id,
        patch: Json,
    ) -> StoreResult<Delivery> {
        if !patch.is_object() {
            return Err(StoreError::Invalid("a metadata patch must be a JSON object".into()));
        }
        let sql = format!(
            "UPDATE deliveries SET metadata = \
             (CASE WHEN jsonb_typeof(metadata) = 'object' THEN metadata ELSE '{{}}'::jsonb END) || $3::jsonb, \
             updated_at = $4 WHERE {SCOPED} RETURNING {DELIVERY_COLS}"
        );
        let params: [&(dyn ToSql + Sync); 4] = [&id, &scope.tenant(), &patch, &Timestamp::now()];
        self.pool.get().await?.one(&sql, &params, rows::delivery, Entity::Delivery).await
    }

    /// Served by the index `deliveries_channel_provider_message_id` (migration
    /// 0002): the expression here must be written exactly as in the index.
    pub(super) async fn find_delivery_by_provider_id_impl(
        &self,
        channel_id: Id,
        provider_message_id: &str,
    ) -> StoreResult<Option<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLS} FROM deliveries \
             WHERE channel_id = $1 AND (metadata->>'provider_message_id') = $2 ORDER BY id LIMIT 1"
        );
        let row = self.pool.get().await?.query_opt(&sql, &[&channel_id, &provider_message_id]).await?;
        row.as_ref().map(rows::delivery).transpose()
    }

    pub(super) async fn retry_delivery_impl(&self, scope: Scope, id: Id) -> StoreResult<Delivery> {
        let sql = format!(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $3, updated_at = $3 \
             WHERE {SCOPED} AND status = 'failed' RETURNING {DELIVERY_COLS}"
        );
        let now = Timestamp::now();
        let mut conn = self.pool.get().await?;
        if let Some(row) = conn.query_opt(&sql, &[&id, &scope.tenant(), &now]).await? {
            return rows::delivery(&row);
        }
        // Nothing updated: tell a missing delivery from one that is not failed.
        let get = format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE {SCOPED}");
        let d = conn.one(&get, &[&id, &scope.tenant()], rows::delivery, Entity::Delivery).await?;
        Err(StoreError::Conflict(format!("delivery is {}, only a failed one can be retried", d.status)))
    }

    pub(super) async fn stats_impl(&self) -> StoreResult<Stats> {
        let sql = "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM channels), \
                   (SELECT count(*) FROM conversations), \
                   (SELECT count(*) FROM activities), \
                   (SELECT count(*) FROM deliveries WHERE status = 'pending'), \
                   (SELECT count(*) FROM deliveries WHERE status = 'delivered'), \
                   (SELECT count(*) FROM deliveries WHERE status = 'failed')";
        let row = self.pool.get().await?.query_opt(sql, &[]).await?;
        let row = row.ok_or_else(|| StoreError::Internal("stats returned no row".into()))?;
        let n = |i: usize| -> StoreResult<i64> { row.try_get(i).map_err(|e| StoreError::Schema(e.to_string())) };
        Ok(Stats {
            tenants: n(0)?,
            channels: n(1)?,
            conversations: n(2)?,
            activities: n(3)?,
            deliveries_pending: n(4)?,
            deliveries_delivered: n(5)?,
            deliveries_failed: n(6)?,
        })
    }
}

/// `cols` with each name prefixed by `alias.`.
fn qualified(alias: &str, cols: &str) -> String {
    cols.split(',').map(|c| format!("{alias}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

/// One outcome's parameters for [`complete_sql`].
struct Outcome {
    id: Id,
    attempt: i32,
    status: &'static str,
    error: Option<String>,
    next: Option<Timestamp>,
    delivered_at: Option<Timestamp>,
    patch: Option<Json>,
    now: Timestamp,
}

impl Outcome {
    fn new(id: Id, attempt: i32, outcome: DeliveryOutcome) -> StoreResult<Outcome> {
        let c = outcome.columns()?;
        Ok(Outcome {
            id,
            attempt,
            status: c.status.as_str(),
            error: c.error,
            next: c.next_attempt_at,
            delivered_at: c.delivered_at,
            patch: c.patch,
            now: Timestamp::now(),
        })
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [&self.id, &self.status, &self.error, &self.next, &self.delivered_at, &self.now, &self.attempt, &self.patch]
    }
}

/// Records one outcome, fenced by the claim's attempt number; a failure for
/// good writes its `delivery.failed` events in the same statement (a
/// cancellation by a delete is not a failure; its text has no quote).
fn complete_sql() -> String {
    let cancelled = crate::CANCELLED_BY_DELETE;
    let src = format!(
        "(SELECT tenant_id, 'delivery.failed'::text AS type, {DELIVERY_FAILED_DATA} AS data, updated_at AS at \
         FROM done WHERE status = 'failed' AND last_error IS DISTINCT FROM '{cancelled}') src"
    );
    format!(
        "WITH done AS (UPDATE deliveries SET status = $2, last_error = $3, \
         next_attempt_at = COALESCE($4::timestamptz, next_attempt_at), delivered_at = $5, updated_at = $6, \
         metadata = CASE WHEN $8::jsonb IS NULL THEN metadata ELSE \
           (CASE WHEN jsonb_typeof(metadata) = 'object' THEN metadata ELSE '{{}}'::jsonb END) || $8::jsonb END \
         WHERE id = $1 AND attempts = $7 AND status = 'pending' RETURNING {DELIVERY_COLS}), \
         ev AS ({}) SELECT * FROM done",
        fan_out(&src)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifies_every_column() {
        assert_eq!(qualified("d", "id, status,\n  metadata"), "d.id, d.status, d.metadata");
    }
}
