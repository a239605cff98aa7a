//! The delivery queue: lookups, leased claims, outcomes, and admin retries.
//!
//! Claims run on the writer thread, the only writer, so selecting due rows and
//! leasing them is atomic without row locks. A lease is simply a later
//! `next_attempt_at`: if the claimer dies, the row is due again when it ends.

use std::time::Duration;

use rusqlite::{params, Connection};

use super::crud::in_scope;
use super::query::{id_value, ListQuery};
use super::rows::{self, found, optional, sql_err, DELIVERY_COLS};
use crate::{
    Delivery, DeliveryFilter, DeliveryOutcome, DeliveryStatus, Entity, Id, Json, Page, PageRequest, Scope, Stats,
    StoreError, StoreResult, Timestamp,
};

pub(crate) fn get_delivery(conn: &Connection, scope: Scope, id: Id) -> StoreResult<Delivery> {
    let sql = format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE id = ?");
    let d = found(Entity::Delivery, conn.prepare_cached(&sql).and_then(|mut s| s.query_row([id], rows::delivery)))?;
    in_scope(scope, d.tenant_id, Entity::Delivery)?;
    Ok(d)
}

pub(crate) fn list_deliveries(
    conn: &Connection,
    scope: Scope,
    filter: DeliveryFilter,
    page: PageRequest,
) -> StoreResult<Page<Delivery>> {
    ListQuery::new(DELIVERY_COLS, "deliveries")
        .eq("tenant_id", scope.tenant().map(id_value))
        .eq("activity_id", filter.activity_id.map(id_value))
        .eq("channel_id", filter.channel_id.map(id_value))
        .eq("status", filter.status.map(|s| s.as_str().to_string().into()))
        .fetch(conn, page, rows::delivery, |d| d.id)
}

pub(crate) fn claim_deliveries(
    conn: &Connection,
    now: Timestamp,
    limit: u32,
    lease: Duration,
    max_attempts: i32,
) -> StoreResult<Vec<Delivery>> {
    let until = now.plus(lease);
    let mut lease_row = conn
        .prepare_cached(&format!(
            "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ? \
             WHERE id = ? RETURNING {DELIVERY_COLS}"
        ))
        .map_err(sql_err)?;
    let mut give_up = conn
        .prepare_cached(&format!(
            "UPDATE deliveries SET status = 'failed', last_error = ?, updated_at = ? WHERE id = ? \
             RETURNING {DELIVERY_COLS}"
        ))
        .map_err(sql_err)?;
    let mut claimed = Vec::new();
    for (id, attempts) in super::query::due_rows(conn, "deliveries", now, limit)? {
        if attempts >= max_attempts {
            // Due again with every attempt used: the last one never recorded an
            // outcome. It fails, with its `delivery.failed` events in the same job.
            let d = give_up
                .query_row(params![crate::gave_up(max_attempts), Timestamp::now(), id], rows::delivery)
                .map_err(sql_err)?;
            super::events::delivery_failed(conn, &d)?;
        } else {
            claimed.push(lease_row.query_row(params![until, Timestamp::now(), id], rows::delivery).map_err(sql_err)?);
        }
    }
    Ok(claimed)
}

pub(crate) fn complete_delivery(
    conn: &Connection,
    id: Id,
    attempt: i32,
    outcome: DeliveryOutcome,
) -> StoreResult<Delivery> {
    let now = Timestamp::now();
    let sql = format!(
        "UPDATE deliveries SET status = ?, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at), \
         delivered_at = ?, updated_at = ? WHERE id = ? AND attempts = ? AND status = 'pending' \
         RETURNING {DELIVERY_COLS}"
    );
    // A patch that is not an object is refused before anything is written (see `complete_deliveries`).
    let crate::model::OutcomeColumns { status, error, next_attempt_at: next, delivered_at, patch } =
        outcome.columns()?;
    let updated = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params![status, error, next, delivered_at, now, id, attempt], rows::delivery));
    let updated = optional(updated)?;
    let failed = |d: &&Delivery| {
        d.status == DeliveryStatus::Failed && d.last_error.as_deref() != Some(crate::CANCELLED_BY_DELETE)
    };
    if let Some(d) = updated.as_ref().filter(failed) {
        // Failed for good (a cancellation by a delete is not a failure):
        // reported in the outcome's own transaction.
        super::events::delivery_failed(conn, d)?;
    }
    match (updated, patch) {
        // In the same job, so in the same transaction as the outcome.
        (Some(_), Some(patch)) => merge_delivery_metadata(conn, Scope::Admin, id, patch),
        (Some(d), None) => Ok(d),
        (None, _) => {
            let current = get_delivery(conn, Scope::Admin, id)?;
            Err(StoreError::stale_claim(&current, attempt))
        }
    }
}

/// [`complete_delivery`] for each outcome, in one job: one savepoint and one
/// answer for the group. An outcome that is refused (a stale claim, a patch
/// that is not an object) wrote nothing and answers alone; any other error
/// fails the job, which the writer rolls back whole.
pub(crate) fn complete_deliveries(
    conn: &Connection,
    outcomes: Vec<(Id, i32, DeliveryOutcome)>,
) -> StoreResult<Vec<StoreResult<Delivery>>> {
    let mut answers = Vec::with_capacity(outcomes.len());
    for (id, attempt, outcome) in outcomes {
        match complete_delivery(conn, id, attempt, outcome) {
            Err(e @ (StoreError::Conflict(_) | StoreError::Invalid(_) | StoreError::NotFound(_))) => {
                answers.push(Err(e))
            }
            Err(e) => return Err(e),
            Ok(d) => answers.push(Ok(d)),
        }
    }
    Ok(answers)
}

/// Undoes the claim numbered `attempt`: one attempt fewer, due at `due`.
pub(crate) fn release_delivery(conn: &Connection, id: Id, attempt: i32, due: Timestamp) -> StoreResult<Delivery> {
    let sql = format!(
        "UPDATE deliveries SET attempts = attempts - 1, next_attempt_at = ?, updated_at = ? \
         WHERE id = ? AND attempts = ? AND status = 'pending' RETURNING {DELIVERY_COLS}"
    );
    let updated = conn
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row(params![due, Timestamp::now(), id, attempt], rows::delivery));
    match optional(updated)? {
        Some(d) => Ok(d),
        None => Err(StoreError::stale_claim(&get_delivery(conn, Scope::Admin, id)?, attempt)),
    }
}

pub(crate) fn merge_delivery_metadata(conn: &Connection, scope: Scope, id: Id, patch: Json) -> StoreResult<Delivery> {
    let d = get_delivery(conn, scope, id)?;
    let merged = merge_objects(&d.metadata, &patch)?;
    let sql = format!("UPDATE deliveries SET metadata = ?, updated_at = ? WHERE id = ? RETURNING {DELIVERY_COLS}");
    found(
        Entity::Delivery,
        conn.prepare_cached(&sql).and_then(|mut s| s.query_row(params![merged, Timestamp::now(), id], rows::delivery)),
    )
}

/// Served by the expression index `deliveries_by_provider_message_id` (schema step 2):
/// the expression here must be written exactly as in the index.
pub(crate) fn find_delivery_by_provider_id(
    conn: &Connection,
    channel_id: Id,
    provider_message_id: &str,
) -> StoreResult<Option<Delivery>> {
    optional(
        conn.prepare_cached(&provider_id_sql())
            .and_then(|mut s| s.query_row(params![channel_id, provider_message_id], rows::delivery)),
    )
}

fn provider_id_sql() -> String {
    format!(
        "SELECT {DELIVERY_COLS} FROM deliveries \
         WHERE channel_id = ? AND json_extract(metadata, '$.provider_message_id') = ? ORDER BY id LIMIT 1"
    )
}

/// The keys of `patch` laid over `base` (both JSON objects), shallowly.
pub(crate) fn merge_objects(base: &Json, patch: &Json) -> StoreResult<Json> {
    let serde_json::Value::Object(patch) = patch.to_value() else {
        return Err(StoreError::Invalid("a metadata patch must be a JSON object".into()));
    };
    let mut merged = match base.to_value() {
        serde_json::Value::Object(m) => m,
        _ => Default::default(),
    };
    merged.extend(patch);
    Ok(Json::from_value(&serde_json::Value::Object(merged)))
}

pub(crate) fn retry_delivery(conn: &Connection, scope: Scope, id: Id) -> StoreResult<Delivery> {
    let d = get_delivery(conn, scope, id)?;
    if d.status != DeliveryStatus::Failed {
        return Err(StoreError::Conflict(format!("delivery is {}, only a failed one can be retried", d.status)));
    }
    let now = Timestamp::now();
    let sql = format!(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ? \
         WHERE id = ? RETURNING {DELIVERY_COLS}"
    );
    found(
        Entity::Delivery,
        conn.prepare_cached(&sql).and_then(|mut s| s.query_row(params![now, now, id], rows::delivery)),
    )
}

pub(crate) fn stats(conn: &Connection) -> StoreResult<Stats> {
    let count = |table: &str| -> StoreResult<i64> {
        conn.prepare_cached(&format!("SELECT count(*) FROM {table}"))
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(sql_err)
    };
    let mut stats = Stats {
        tenants: count("tenants")?,
        channels: count("channels")?,
        conversations: count("conversations")?,
        activities: count("activities")?,
        ..Stats::default()
    };
    let mut by_status =
        conn.prepare_cached("SELECT status, count(*) FROM deliveries GROUP BY status").map_err(sql_err)?;
    let rows = by_status
        .query_map([], |r| Ok((r.get::<_, DeliveryStatus>(0)?, r.get::<_, i64>(1)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(sql_err)?;
    for (status, n) in rows {
        match status {
            DeliveryStatus::Pending => stats.deliveries_pending = n,
            DeliveryStatus::Delivered => stats.deliveries_delivered = n,
            DeliveryStatus::Failed => stats.deliveries_failed = n,
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan SQLite picks for the lookup, one line per step.
    fn plan(conn: &Connection) -> String {
        let sql = format!("EXPLAIN QUERY PLAN {}", provider_id_sql());
        let mut stmt = conn.prepare(&sql).unwrap();
        let rows = stmt.query_map(params![crate::new_id(), "wamid.1"], |r| r.get::<_, String>(3)).unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>().unwrap().join("\n")
    }

    #[test]
    fn the_provider_id_lookup_uses_its_index_without_a_sort() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = super::super::schema::open_connection(&dir.path().join("t.db"), false).unwrap();
        super::super::schema::prepare(&mut conn).unwrap();
        let plan = plan(&conn);
        assert!(plan.contains("USING INDEX deliveries_by_provider_message_id"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort for ORDER BY id: {plan}");
    }
}
