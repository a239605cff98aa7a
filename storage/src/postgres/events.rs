//! Lifecycle events on PostgreSQL: event endpoints, the fan-out SQL every
//! change folds into its own statement or transaction, and the events queue
//! (claims with `FOR UPDATE SKIP LOCKED`, fenced outcomes) like deliveries'.
//!
//! The fan-out is one `INSERT … SELECT` joining the change's rows with the
//! tenant's active endpoints that take the event's type; the row ids come
//! from `converger_uuid_v7()` (migration 0007), so a change that reports to
//! several endpoints still takes one statement. Folded into the change's
//! statement as a data-modifying CTE, it commits or fails with it.

use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::pool::Conn;
use super::query::ListQuery;
use super::PgStore;
use crate::events::types_from_names;
use crate::lifecycle::PendingEvent;
use crate::{
    DeliveryOutcome, DeliveryStatus, Entity, Event, EventClaim, EventEndpoint, EventEndpointPatch, EventFilter,
    EventType, Id, Json, NewEventEndpoint, Page, PageRequest, PresenceChange, Scope, StoreError, StoreResult,
    Timestamp, ENDPOINT_DELETED,
};

const ENDPOINT_COLS: &str = "id, tenant_id, url, events, secret, created_at, updated_at";
const EVENT_COLS: &str = "id, tenant_id, endpoint_id, type, data, status, attempts, last_error, next_attempt_at, \
     delivered_at, created_at, updated_at";

/// `INSERT INTO events …`: one pending event per active endpoint of
/// `src.tenant_id` taking `src.type`. `src` is a FROM item (aliased `src`)
/// with the columns tenant_id, type, data (jsonb), at.
pub(super) fn fan_out(src: &str) -> String {
    format!(
        "INSERT INTO events (id, tenant_id, endpoint_id, type, data, status, attempts, next_attempt_at, created_at, \
         updated_at) \
         SELECT converger_uuid_v7(), src.tenant_id, ep.id, src.type, src.data, 'pending', 0, src.at, src.at, src.at \
         FROM {src} JOIN event_endpoints ep ON ep.tenant_id = src.tenant_id AND ep.status = 'active' \
         AND src.type = ANY (ep.events)"
    )
}

/// The `data` of a conversation event, from a conversations row (see
/// `crate::events::conversation_data`).
pub(super) const CONVERSATION_DATA: &str = "jsonb_build_object('conversation_id', id, 'channel_id', channel_id, \
     'external_id', external_id, 'metadata', metadata)";

/// The `data` of `delivery.failed`, from a deliveries row (see
/// `crate::events::delivery_failed_data`).
pub(super) const DELIVERY_FAILED_DATA: &str = "jsonb_build_object('delivery_id', id, 'activity_id', activity_id, \
     'conversation_id', (SELECT a.conversation_id FROM activities a WHERE a.id = activity_id), \
     'channel_id', channel_id, 'attempts', attempts, 'error', last_error)";

/// The batch's member events, inside its open transaction.
pub(super) async fn write_pending(conn: &mut Conn, events: &[PendingEvent]) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let tenants: Vec<Id> = events.iter().map(|e| e.tenant_id).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let data: Vec<Json> = events.iter().map(|e| Json::from_value(&e.data)).collect();
    let at: Vec<Timestamp> = events.iter().map(|e| e.at).collect();
    let sql =
        fan_out("unnest($1::uuid[], $2::text[], $3::jsonb[], $4::timestamptz[]) AS src(tenant_id, type, data, at)");
    let params: [&(dyn ToSql + Sync); 4] = [&tenants, &kinds, &data, &at];
    conn.query(&sql, &params).await.map(|_| ())
}

fn col_err(table: &str) -> impl Fn(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Schema(format!("{table}: {e}"))
}

fn endpoint(r: &Row) -> StoreResult<EventEndpoint> {
    endpoint_at(r, 0)
}

fn event(r: &Row) -> StoreResult<Event> {
    let col = col_err("events");
    let kind: &str = r.try_get(3).map_err(&col)?;
    let status: &str = r.try_get(5).map_err(&col)?;
    Ok(Event {
        id: r.try_get(0).map_err(&col)?,
        tenant_id: r.try_get(1).map_err(&col)?,
        endpoint_id: r.try_get(2).map_err(&col)?,
        kind: EventType::parse(kind).ok_or_else(|| StoreError::Schema(format!("events: unknown type {kind:?}")))?,
        data: r.try_get(4).map_err(&col)?,
        status: DeliveryStatus::parse(status)
            .ok_or_else(|| StoreError::Schema(format!("events: unknown status {status:?}")))?,
        attempts: r.try_get(6).map_err(&col)?,
        last_error: r.try_get(7).map_err(&col)?,
        next_attempt_at: r.try_get(8).map_err(&col)?,
        delivered_at: r.try_get(9).map_err(&col)?,
        created_at: r.try_get(10).map_err(&col)?,
        updated_at: r.try_get(11).map_err(&col)?,
    })
}

fn names(types: &[EventType]) -> Vec<&'static str> {
    types.iter().map(|t| t.as_str()).collect()
}

impl PgStore {
    pub(super) async fn create_event_endpoint_impl(&self, new: NewEventEndpoint) -> StoreResult<EventEndpoint> {
        self.get_tenant_impl(new.tenant_id).await?;
        let now = Timestamp::now();
        let e = EventEndpoint {
            id: crate::new_id(),
            tenant_id: new.tenant_id,
            url: new.url,
            events: new.events,
            secret: new.secret,
            created_at: now,
            updated_at: now,
        };
        let sql = format!(
            "INSERT INTO event_endpoints ({ENDPOINT_COLS}, status) VALUES ($1, $2, $3, $4, $5, $6, $6, 'active')"
        );
        let events = names(&e.events);
        let params: [&(dyn ToSql + Sync); 6] = [&e.id, &e.tenant_id, &e.url, &events, &e.secret, &now];
        self.pool.get().await?.query(&sql, &params).await?;
        Ok(e)
    }

    pub(super) async fn get_event_endpoint_impl(&self, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint> {
        let sql = format!(
            "SELECT {ENDPOINT_COLS} FROM event_endpoints WHERE id = $1 AND tenant_id = $2 AND status = 'active'"
        );
        self.pool.get().await?.one(&sql, &[&id, &tenant_id], endpoint, Entity::EventEndpoint).await
    }

    pub(super) async fn list_event_endpoints_impl(&self, tenant_id: Id, limit: u32) -> StoreResult<Vec<EventEndpoint>> {
        let sql = format!(
            "SELECT {ENDPOINT_COLS} FROM event_endpoints WHERE tenant_id = $1 AND status = 'active' ORDER BY id LIMIT $2"
        );
        let found = self.pool.get().await?.query(&sql, &[&tenant_id, &i64::from(limit)]).await?;
        found.iter().map(endpoint).collect()
    }

    pub(super) async fn update_event_endpoint_impl(
        &self,
        tenant_id: Id,
        id: Id,
        patch: EventEndpointPatch,
    ) -> StoreResult<EventEndpoint> {
        let sql = format!(
            "UPDATE event_endpoints SET url = coalesce($3, url), events = coalesce($4::text[], events), updated_at = $5 \
             WHERE id = $1 AND tenant_id = $2 AND status = 'active' RETURNING {ENDPOINT_COLS}"
        );
        let events = patch.events.as_deref().map(names);
        let params: [&(dyn ToSql + Sync); 5] = [&id, &tenant_id, &patch.url, &events, &Timestamp::now()];
        self.pool.get().await?.one(&sql, &params, endpoint, Entity::EventEndpoint).await
    }

    pub(super) async fn delete_event_endpoint_impl(&self, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint> {
        // One statement: the endpoint and its pending events, together.
        let sql = format!(
            "WITH ep AS (UPDATE event_endpoints SET status = 'deleted', updated_at = $3 \
                 WHERE id = $1 AND tenant_id = $2 AND status = 'active' RETURNING {ENDPOINT_COLS}), \
             failed AS (UPDATE events SET status = 'failed', last_error = $4, updated_at = $3 \
                 WHERE endpoint_id IN (SELECT id FROM ep) AND status = 'pending') \
             SELECT * FROM ep"
        );
        let params: [&(dyn ToSql + Sync); 4] = [&id, &tenant_id, &Timestamp::now(), &ENDPOINT_DELETED];
        self.pool.get().await?.one(&sql, &params, endpoint, Entity::EventEndpoint).await
    }

    pub(super) async fn event_types_impl(&self, tenant_id: Id) -> StoreResult<Vec<EventType>> {
        let sql = "SELECT DISTINCT unnest(events) FROM event_endpoints WHERE tenant_id = $1 AND status = 'active'";
        let found = self.pool.get().await?.query(sql, &[&tenant_id]).await?;
        let mut names = Vec::with_capacity(found.len());
        for r in &found {
            names.push(r.try_get::<_, String>(0).map_err(col_err("event_endpoints"))?);
        }
        let mut types = types_from_names(names.iter().map(String::as_str));
        types.sort();
        Ok(types)
    }

    pub(super) async fn record_presence_impl(
        &self,
        tenant_id: Id,
        sender: &str,
        change: PresenceChange,
    ) -> StoreResult<()> {
        let kind = change.event_type().as_str();
        let data = Json::from_value(&change.data(sender));
        let src = "(SELECT $1::uuid AS tenant_id, $4::text AS type, $5::jsonb AS data, $3::timestamptz AS at) src";
        let seen = "INSERT INTO users (tenant_id, sender, last_seen) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, sender) DO UPDATE SET last_seen = greatest(users.last_seen, excluded.last_seen)";
        let sql = match (change.online, change.announce) {
            (true, false) => return Ok(()),
            (false, false) => seen.to_string(),
            // Both in one statement: the last seen and its event commit together.
            (false, true) => format!("WITH seen AS ({seen} RETURNING 1), ev AS ({}) SELECT 1", fan_out(src)),
            // $2 is in the event's data; named here so every variant takes the same parameters.
            (true, true) => format!("WITH ev AS ({}) SELECT $2::text", fan_out(src)),
        };
        let params: [&(dyn ToSql + Sync); 5] = [&tenant_id, &sender, &change.at, &kind, &data];
        let params = if sql == seen { &params[..3] } else { &params[..] };
        match self.pool.get().await?.query(&sql, params).await {
            Err(StoreError::ForeignKey(_)) => Err(StoreError::NotFound(Entity::Tenant)),
            other => other.map(|_| ()),
        }
    }

    pub(super) async fn get_event_impl(&self, scope: Scope, id: Id) -> StoreResult<Event> {
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)");
        self.pool.get().await?.one(&sql, &[&id, &scope.tenant()], event, Entity::Event).await
    }

    pub(super) async fn list_events_impl(
        &self,
        scope: Scope,
        filter: EventFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Event>> {
        let mut conn = self.pool.get().await?;
        ListQuery::new(EVENT_COLS, "events")
            .eq("tenant_id", scope.tenant())
            .eq("endpoint_id", filter.endpoint_id)
            .eq("status", filter.status.map(DeliveryStatus::as_str))
            .eq("type", filter.kind.map(EventType::as_str))
            .fetch(&mut conn, page, event, |e| e.id)
            .await
    }

    pub(super) async fn claim_events_impl(
        &self,
        now: Timestamp,
        limit: u32,
        lease: Duration,
        max_attempts: i32,
    ) -> StoreResult<Vec<EventClaim>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.get().await?;
        let gave_up: [&(dyn ToSql + Sync); 4] = [&crate::gave_up(max_attempts), &Timestamp::now(), &now, &max_attempts];
        conn.query(
            "UPDATE events SET status = 'failed', last_error = $1, updated_at = $2 \
             WHERE status = 'pending' AND next_attempt_at <= $3 AND attempts >= $4",
            &gave_up,
        )
        .await?;
        let qualified: Vec<String> = EVENT_COLS.split(", ").map(|c| format!("e.{c}")).collect();
        let endpoint_cols: Vec<String> = ENDPOINT_COLS.split(", ").map(|c| format!("ep.{c}")).collect();
        let sql = format!(
            "WITH due AS (\
                 SELECT id, next_attempt_at FROM events \
                 WHERE status = 'pending' AND next_attempt_at <= $1 AND attempts < $5 \
                 ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
             leased AS (UPDATE events e SET attempts = e.attempts + 1, next_attempt_at = $3, updated_at = $4 \
                 FROM due WHERE e.id = due.id RETURNING {}, due.next_attempt_at AS due_at) \
             SELECT e.*, {}, ep.status AS endpoint_status FROM leased e \
             JOIN event_endpoints ep ON ep.id = e.endpoint_id ORDER BY e.due_at, e.id",
            qualified.join(", "),
            endpoint_cols.join(", ")
        );
        let until = now.plus(lease);
        let params: [&(dyn ToSql + Sync); 5] = [&now, &i64::from(limit), &until, &Timestamp::now(), &max_attempts];
        let found = conn.query(&sql, &params).await?;
        let mut claimed = Vec::with_capacity(found.len());
        for r in &found {
            let e = event(r)?;
            // The endpoint's columns follow the event's 12 and due_at.
            let status: &str = r.try_get("endpoint_status").map_err(col_err("event_endpoints"))?;
            let endpoint = if status == "active" { Some(endpoint_at(r, 13)?) } else { None };
            claimed.push(EventClaim { event: e, endpoint });
        }
        Ok(claimed)
    }

    pub(super) async fn complete_event_impl(
        &self,
        id: Id,
        attempt: i32,
        outcome: DeliveryOutcome,
    ) -> StoreResult<Event> {
        let (status, error, next, delivered_at) = match outcome {
            DeliveryOutcome::Delivered { at, .. } => (DeliveryStatus::Delivered, None, None, Some(at)),
            DeliveryOutcome::Retry { error, next_attempt_at } => {
                (DeliveryStatus::Pending, Some(error), Some(next_attempt_at), None)
            }
            DeliveryOutcome::Failed { error } => (DeliveryStatus::Failed, Some(error), None, None),
        };
        let sql = format!(
            "UPDATE events SET status = $2, last_error = $3, \
             next_attempt_at = COALESCE($4::timestamptz, next_attempt_at), delivered_at = $5, updated_at = $6 \
             WHERE id = $1 AND attempts = $7 AND status = 'pending' RETURNING {EVENT_COLS}"
        );
        let params: [&(dyn ToSql + Sync); 7] =
            [&id, &status.as_str(), &error, &next, &delivered_at, &Timestamp::now(), &attempt];
        match self.pool.get().await?.one(&sql, &params, event, Entity::Event).await {
            Err(StoreError::NotFound(_)) => {
                let current = self.get_event_impl(Scope::Admin, id).await?;
                Err(StoreError::Conflict(format!(
                    "stale claim: event is {} with {} attempts, not attempt {attempt}",
                    current.status, current.attempts
                )))
            }
            other => other,
        }
    }
}

/// An endpoint whose columns start at `at` in a wider row.
fn endpoint_at(r: &Row, at: usize) -> StoreResult<EventEndpoint> {
    let col = col_err("event_endpoints");
    let names: Vec<String> = r.try_get(at + 3).map_err(&col)?;
    Ok(EventEndpoint {
        id: r.try_get(at).map_err(&col)?,
        tenant_id: r.try_get(at + 1).map_err(&col)?,
        url: r.try_get(at + 2).map_err(&col)?,
        events: types_from_names(names.iter().map(String::as_str)),
        secret: r.try_get(at + 4).map_err(&col)?,
        created_at: r.try_get(at + 5).map_err(&col)?,
        updated_at: r.try_get(at + 6).map_err(&col)?,
    })
}
