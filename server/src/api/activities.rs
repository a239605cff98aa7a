//! `/api/v1/conversations/{id}/activities`: create (201 new, 200 replay of an
//! idempotency key, with `Idempotent-Replayed: true`) and the ordered page
//! after a watermark, `{"data": […], "last_seq": N}`.

use converger_storage::{Activity, Entity, Scope};
use serde::Serialize;

use super::query::Query;
use super::render::path_id;
use super::{auth, body, ApiError, App, Params};
use crate::net::http::{Request, Response};
use crate::service::activities::ActivityInput;
use crate::service::broadcast::BroadcastInput;
use serde_json::{json, Value};

pub async fn create(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let conversation_id = path_id(params, Entity::Conversation)?;
    let input = ActivityInput::from_json(body::object(request)?, idempotency_header(request)?)?;
    let written = app.hub.create_activity(caller, conversation_id, input).await?;
    Ok(if written.is_replay() {
        Response::json(200, written.activity()).with_header("idempotent-replayed", "true")
    } else {
        Response::json(201, written.activity())
    })
}

/// `POST /api/v1/broadcast`: 200 `{"results": [{conversation_id, status,
/// activity | error}, …]}`, one per conversation in the request's order.
pub async fn broadcast(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let input = BroadcastInput::from_json(body::object(request)?, idempotency_header(request)?)?;
    let results = app.hub.broadcast(caller, input).await?;
    let results: Vec<Value> = results
        .into_iter()
        .map(|(conversation_id, result)| match result {
            Ok(written) => {
                let status = if written.is_replay() { 200 } else { 201 };
                json!({"conversation_id": conversation_id, "status": status, "activity": written.activity()})
            }
            Err(e) => {
                let public = e.public();
                let mut error = json!({"code": public.code, "message": public.message});
                if let Some(field) = public.field {
                    error["field"] = Value::String(field);
                }
                json!({"conversation_id": conversation_id, "status": public.status, "error": error})
            }
        })
        .collect();
    Ok(Response::json(200, &json!({ "results": results })))
}

/// `Idempotency-Key` or `X-Idempotency-Key`; both may be sent only when equal.
fn idempotency_header(request: &Request) -> Result<Option<&str>, ApiError> {
    match (request.header_str("idempotency-key"), request.header_str("x-idempotency-key")) {
        (Some(a), Some(b)) if a != b => Err(ApiError::from(crate::service::ServiceError::invalid(
            "idempotency_key",
            "the Idempotency-Key and X-Idempotency-Key headers differ",
        ))),
        (a, b) => Ok(a.or(b)),
    }
}

pub async fn list(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    page(app, caller.scope(), params, request).await
}

#[derive(Serialize)]
struct ActivityPage<'a> {
    data: &'a [Activity],
    last_seq: i64,
}

/// The page for `scope` (shared with the admin endpoint).
pub async fn page(app: &App, scope: Scope, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let id = path_id(params, Entity::Conversation)?;
    let q = Query::parse(request.query.as_deref())?;
    let after_seq = q.int("after_seq", 0..=i64::MAX)?.unwrap_or(0);
    let reader = q.reader()?;
    let (data, last_seq) = app.hub.list_activities(scope, id, after_seq, q.limit()?, reader).await?;
    Ok(Response::json(200, &ActivityPage { data: &data, last_seq }))
}
