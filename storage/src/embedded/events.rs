//! Lifecycle events on SQLite: event endpoints, the fan-out every change
//! calls inside its own job (so inside its savepoint and transaction), and
//! the events queue (leased claims, fenced outcomes) like deliveries'.

use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::crud::{get_tenant, in_scope};
use super::query::{id_value, ListQuery};
use super::rows::{found, optional, sql_err};
use crate::events::{types_from_names, types_to_json};
use crate::{
    new_id, DeliveryOutcome, DeliveryStatus, Entity, Event, EventClaim, EventEndpoint, EventEndpointPatch, EventFilter,
    EventType, Id, Json, NewEventEndpoint, Page, PageRequest, PresenceChange, Scope, StoreError, StoreResult,
    Timestamp, ENDPOINT_DELETED,
};

impl ToSql for EventType {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for EventType {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        let s = v.as_str()?;
        EventType::parse(s).ok_or_else(|| FromSqlError::Other(format!("unknown event type {s:?}").into()))
    }
}

const ENDPOINT_COLS: &str = "id, tenant_id, url, events, secret, created_at, updated_at";
const EVENT_COLS: &str = "id, tenant_id, endpoint_id, type, data, status, attempts, last_error, next_attempt_at, \
     delivered_at, created_at, updated_at";

fn endpoint(r: &Row<'_>) -> rusqlite::Result<EventEndpoint> {
    let events: String = r.get(3)?;
    let names: Vec<String> = serde_json::from_str(&events)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(EventEndpoint {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        url: r.get(2)?,
        events: types_from_names(names.iter().map(String::as_str)),
        secret: r.get(4)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

fn event(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        endpoint_id: r.get(2)?,
        kind: r.get(3)?,
        data: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        next_attempt_at: r.get(8)?,
        delivered_at: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

/// Writes one pending `kind` event with `data` for every active endpoint of
/// the tenant that takes it. Called inside the job that makes the change.
pub(crate) fn fan_out(
    conn: &Connection,
    tenant_id: Id,
    kind: EventType,
    data: &serde_json::Value,
    at: Timestamp,
) -> StoreResult<usize> {
    let endpoints: Vec<Id> = conn
        .prepare_cached(
            "SELECT id FROM event_endpoints WHERE tenant_id = ? AND status = 'active' \
             AND EXISTS (SELECT 1 FROM json_each(events) WHERE value = ?) ORDER BY id",
        )
        .and_then(|mut s| s.query_map(params![tenant_id, kind], |r| r.get(0))?.collect())
        .map_err(sql_err)?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let data = Json::from_value(data);
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (id, tenant_id, endpoint_id, type, data, status, attempts, next_attempt_at, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        )
        .map_err(sql_err)?;
    for endpoint in &endpoints {
        insert.execute(params![new_id(), tenant_id, endpoint, kind, data, at, at, at]).map_err(sql_err)?;
    }
    Ok(endpoints.len())
}

/// The `delivery.failed` events of deliveries that just failed for good.
pub(crate) fn delivery_failed(conn: &Connection, d: &crate::Delivery) -> StoreResult<()> {
    let conversation: Option<Id> = conn
        .prepare_cached("SELECT conversation_id FROM activities WHERE id = ?")
        .and_then(|mut s| s.query_row([d.activity_id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    let data = crate::events::delivery_failed_data(d, conversation);
    fan_out(conn, d.tenant_id, EventType::DeliveryFailed, &data, d.updated_at).map(|_| ())
}

pub(crate) fn create_endpoint(conn: &Connection, new: NewEventEndpoint) -> StoreResult<EventEndpoint> {
    get_tenant(conn, new.tenant_id)?;
    let now = Timestamp::now();
    let e = EventEndpoint {
        id: new_id(),
        tenant_id: new.tenant_id,
        url: new.url,
        events: new.events,
        secret: new.secret,
        created_at: now,
        updated_at: now,
    };
    conn.prepare_cached(&format!(
        "INSERT INTO event_endpoints ({ENDPOINT_COLS}, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'active')"
    ))
    .and_then(|mut s| {
        s.execute(params![e.id, e.tenant_id, e.url, types_to_json(&e.events), e.secret, e.created_at, e.updated_at])
    })
    .map_err(sql_err)?;
    Ok(e)
}

pub(crate) fn get_endpoint(conn: &Connection, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint> {
    let sql =
        format!("SELECT {ENDPOINT_COLS} FROM event_endpoints WHERE id = ? AND tenant_id = ? AND status = 'active'");
    found(
        Entity::EventEndpoint,
        conn.prepare_cached(&sql).and_then(|mut s| s.query_row(params![id, tenant_id], endpoint)),
    )
}

pub(crate) fn list_endpoints(conn: &Connection, tenant_id: Id, limit: u32) -> StoreResult<Vec<EventEndpoint>> {
    let sql = format!(
        "SELECT {ENDPOINT_COLS} FROM event_endpoints WHERE tenant_id = ? AND status = 'active' ORDER BY id LIMIT ?"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_map(params![tenant_id, limit], endpoint)?.collect())
        .map_err(sql_err)
}

pub(crate) fn update_endpoint(
    conn: &Connection,
    tenant_id: Id,
    id: Id,
    patch: EventEndpointPatch,
) -> StoreResult<EventEndpoint> {
    let mut e = get_endpoint(conn, tenant_id, id)?;
    if let Some(url) = patch.url {
        e.url = url;
    }
    if let Some(events) = patch.events {
        e.events = events;
    }
    e.updated_at = Timestamp::now();
    conn.prepare_cached("UPDATE event_endpoints SET url = ?, events = ?, updated_at = ? WHERE id = ?")
        .and_then(|mut s| s.execute(params![e.url, types_to_json(&e.events), e.updated_at, id]))
        .map_err(sql_err)?;
    Ok(e)
}

pub(crate) fn delete_endpoint(conn: &Connection, tenant_id: Id, id: Id) -> StoreResult<EventEndpoint> {
    let e = get_endpoint(conn, tenant_id, id)?;
    let now = Timestamp::now();
    conn.prepare_cached("UPDATE event_endpoints SET status = 'deleted', updated_at = ? WHERE id = ?")
        .and_then(|mut s| s.execute(params![now, id]))
        .map_err(sql_err)?;
    conn.prepare_cached(
        "UPDATE events SET status = 'failed', last_error = ?, updated_at = ? WHERE endpoint_id = ? AND status = 'pending'",
    )
    .and_then(|mut s| s.execute(params![ENDPOINT_DELETED, now, id]))
    .map_err(sql_err)?;
    Ok(e)
}

pub(crate) fn event_types(conn: &Connection, tenant_id: Id) -> StoreResult<Vec<EventType>> {
    let names: Vec<String> = conn
        .prepare_cached(
            "SELECT DISTINCT j.value FROM event_endpoints e, json_each(e.events) j \
             WHERE e.tenant_id = ? AND e.status = 'active'",
        )
        .and_then(|mut s| s.query_map([tenant_id], |r| r.get(0))?.collect())
        .map_err(sql_err)?;
    let mut types = types_from_names(names.iter().map(String::as_str));
    types.sort();
    Ok(types)
}

pub(crate) fn record_presence(
    conn: &Connection,
    tenant_id: Id,
    sender: &str,
    change: PresenceChange,
) -> StoreResult<()> {
    if change.online {
        get_tenant(conn, tenant_id)?;
    } else {
        super::members::set_last_seen(conn, tenant_id, sender, change.at)?;
    }
    if change.announce {
        fan_out(conn, tenant_id, change.event_type(), &change.data(sender), change.at)?;
    }
    Ok(())
}

pub(crate) fn get_event(conn: &Connection, scope: Scope, id: Id) -> StoreResult<Event> {
    let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = ?");
    let e = found(Entity::Event, conn.prepare_cached(&sql).and_then(|mut s| s.query_row([id], event)))?;
    in_scope(scope, e.tenant_id, Entity::Event)?;
    Ok(e)
}

pub(crate) fn list_events(
    conn: &Connection,
    scope: Scope,
    filter: EventFilter,
    page: PageRequest,
) -> StoreResult<Page<Event>> {
    ListQuery::new(EVENT_COLS, "events")
        .eq("tenant_id", scope.tenant().map(id_value))
        .eq("endpoint_id", filter.endpoint_id.map(id_value))
        .eq("status", filter.status.map(|s| s.as_str().to_string().into()))
        .eq("type", filter.kind.map(|k| k.as_str().to_string().into()))
        .fetch(conn, page, event, |e| e.id)
}

pub(crate) fn claim_events(
    conn: &Connection,
    now: Timestamp,
    limit: u32,
    lease: Duration,
    max_attempts: i32,
) -> StoreResult<Vec<EventClaim>> {
    let due = super::query::due_rows(conn, "events", now, limit)?;
    // Due again with every attempt used: the last one never recorded an outcome.
    let (gave_up, ids): (Vec<_>, Vec<_>) = due.into_iter().partition(|(_, a)| *a >= max_attempts);
    let mut give_up = conn
        .prepare_cached("UPDATE events SET status = 'failed', last_error = ?, updated_at = ? WHERE id = ?")
        .map_err(sql_err)?;
    for (id, _) in gave_up {
        give_up.execute(params![crate::gave_up(max_attempts), Timestamp::now(), id]).map_err(sql_err)?;
    }
    let until = now.plus(lease);
    let mut lease_row = conn
        .prepare_cached(&format!(
            "UPDATE events SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ? \
             WHERE id = ? RETURNING {EVENT_COLS}"
        ))
        .map_err(sql_err)?;
    let mut endpoint_of = conn
        .prepare_cached(&format!("SELECT {ENDPOINT_COLS} FROM event_endpoints WHERE id = ? AND status = 'active'"))
        .map_err(sql_err)?;
    let mut claimed = Vec::with_capacity(ids.len());
    for (id, _) in ids {
        let event = lease_row.query_row(params![until, Timestamp::now(), id], event).map_err(sql_err)?;
        let endpoint = endpoint_of.query_row([event.endpoint_id], endpoint).optional().map_err(sql_err)?;
        claimed.push(EventClaim { event, endpoint });
    }
    Ok(claimed)
}

pub(crate) fn complete_event(conn: &Connection, id: Id, attempt: i32, outcome: DeliveryOutcome) -> StoreResult<Event> {
    let (status, error, next, delivered_at) = match outcome {
        DeliveryOutcome::Delivered { at, .. } => (DeliveryStatus::Delivered, None, None, Some(at)),
        DeliveryOutcome::Retry { error, next_attempt_at } => {
            (DeliveryStatus::Pending, Some(error), Some(next_attempt_at), None)
        }
        DeliveryOutcome::Failed { error } => (DeliveryStatus::Failed, Some(error), None, None),
    };
    let sql = format!(
        "UPDATE events SET status = ?, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at), \
         delivered_at = ?, updated_at = ? WHERE id = ? AND attempts = ? AND status = 'pending' RETURNING {EVENT_COLS}"
    );
    let updated = conn.prepare_cached(&sql).and_then(|mut s| {
        s.query_row(params![status, error, next, delivered_at, Timestamp::now(), id, attempt], event)
    });
    match optional(updated)? {
        Some(e) => Ok(e),
        None => {
            let current = get_event(conn, Scope::Admin, id)?;
            Err(StoreError::Conflict(format!(
                "stale claim: event is {} with {} attempts, not attempt {attempt}",
                current.status, current.attempts
            )))
        }
    }
}
