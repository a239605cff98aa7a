//! `/admin/api/…` beyond tenants: every tenant's channels, conversations,
//! activities and deliveries (optionally narrowed with `tenant_id`), retrying a
//! failed delivery (one, or all failed of a channel), per-channel delivery
//! counts, an operator's activity, a token for the console's live tail, and stats. The admin gate runs before these (see `App`).

use converger_storage::{ChannelFilter, DeliveryFilter, DeliveryStatus, Entity, Id, PageRequest, Scope, Status};

use super::query::Query;
use super::render::{self, path_id};
use super::{activities, body, conversations, deliveries, ApiError, App, Params};
use crate::net::http::{Request, Response};
use crate::service::activities::ActivityInput;
use crate::service::channels::{ChannelPatchInput, NewChannelInput};
use crate::service::tokens::TokenInput;
use crate::service::Caller;

/// `tenant_id=` narrows a list to one tenant; without it the admin sees all.
fn scope(q: &Query) -> Result<Scope, ApiError> {
    Ok(q.id("tenant_id")?.map_or(Scope::Admin, Scope::Tenant))
}

pub async fn channels(app: &App, request: &Request) -> Result<Response, ApiError> {
    let q = Query::parse(request.query.as_deref())?;
    let filter = ChannelFilter { status: q.parsed("status", "active or inactive", Status::parse)? };
    Ok(render::page(&app.hub.list_channels(scope(&q)?, filter, q.page()?).await?))
}

pub async fn conversations(app: &App, request: &Request) -> Result<Response, ApiError> {
    let q = Query::parse(request.query.as_deref())?;
    let filter = conversations::filter(&q)?;
    Ok(render::page(&app.hub.list_conversations(scope(&q)?, filter, q.page()?).await?))
}

pub async fn conversation(app: &App, params: &Params) -> Result<Response, ApiError> {
    let conversation = app.hub.get_conversation(Scope::Admin, path_id(params, Entity::Conversation)?).await?;
    Ok(Response::json(200, &conversation))
}

pub async fn activities(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    activities::page(app, Scope::Admin, params, request).await
}

pub async fn deliveries(app: &App, request: &Request) -> Result<Response, ApiError> {
    let q = Query::parse(request.query.as_deref())?;
    let filter = deliveries::filter(&q)?;
    Ok(render::page(&app.hub.list_deliveries(scope(&q)?, filter, q.page()?).await?))
}

pub async fn retry_delivery(app: &App, params: &Params) -> Result<Response, ApiError> {
    let delivery = app.hub.retry_delivery(Scope::Admin, path_id(params, Entity::Delivery)?).await?;
    Ok(Response::json(200, &delivery))
}

pub async fn stats(app: &App) -> Result<Response, ApiError> {
    let mut stats = app.hub.stats().await?;
    stats.connections = app.registry.connections().unwrap_or(0);
    if let Some(cluster) = app.engine.as_ref().and_then(|e| e.cluster()) {
        stats.nodes = Some(cluster.status.views());
    }
    Ok(Response::json(200, &stats))
}

/// `POST /admin/api/conversations/{id}/activities`: an operator writes into a
/// conversation, through the same service call as the tenant's REST write
/// (`Hub::create_activity`, acting for the conversation's tenant).
pub async fn create_activity(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let conversation = app.hub.get_conversation(Scope::Admin, path_id(params, Entity::Conversation)?).await?;
    let input = ActivityInput::from_json(body::object(request)?, request.header_str("idempotency-key"))?;
    let written = app.hub.create_activity(Caller::Tenant(conversation.tenant_id), conversation.id, input).await?;
    Ok(Response::json(if written.is_replay() { 200 } else { 201 }, written.activity()))
}

/// `POST /admin/api/conversations/{id}/live-token`: a client token (60 s, sender
/// `admin`, a watcher: not in the conversation's presence) for the console to
/// join `conversation:{id}` on the Phoenix socket: its live tail is the
/// real-time core's stream, not a storage poll.
pub async fn live_token(app: &App, params: &Params) -> Result<Response, ApiError> {
    let conversation = app.hub.get_conversation(Scope::Admin, path_id(params, Entity::Conversation)?).await?;
    let input = TokenInput { conversation_id: conversation.id, sender: "admin".into(), ttl_seconds: 60 };
    Ok(Response::json(200, &app.hub.issue_watch_token(Caller::Tenant(conversation.tenant_id), input).await?))
}

/// At most this many deliveries are counted or retried per call.
const SWEEP_CAP: usize = 10_000;

/// `GET /admin/api/channels/{id}/delivery-counts`:
/// `{"channel_id", "pending", "delivered", "failed", "capped"}`.
pub async fn delivery_counts(app: &App, params: &Params) -> Result<Response, ApiError> {
    let channel = app.hub.get_channel(Scope::Admin, path_id(params, Entity::Channel)?).await?;
    let mut counts = serde_json::Map::new();
    let mut capped = false;
    for status in [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed] {
        let (ids, more) = sweep(app, channel.id, status).await?;
        capped |= more;
        counts.insert(status.as_str().to_string(), ids.len().into());
    }
    counts.insert("channel_id".into(), channel.id.to_string().into());
    counts.insert("capped".into(), capped.into());
    Ok(Response::json(200, &counts))
}

/// `POST /admin/api/channels/{id}/retry-failed`: every failed delivery of the
/// channel back to pending, due now: `{"requeued": N, "capped": bool}`.
pub async fn retry_failed(app: &App, params: &Params) -> Result<Response, ApiError> {
    let channel = app.hub.get_channel(Scope::Admin, path_id(params, Entity::Channel)?).await?;
    let (ids, capped) = sweep(app, channel.id, DeliveryStatus::Failed).await?;
    let mut requeued = 0usize;
    for id in ids {
        if app.hub.retry_delivery(Scope::Admin, id).await.is_ok() {
            requeued += 1;
        }
    }
    Ok(Response::json(200, &serde_json::json!({"requeued": requeued, "capped": capped})))
}

/// The ids of a channel's deliveries in `status`, page by page, up to
/// [`SWEEP_CAP`]; true when there were more.
async fn sweep(app: &App, channel_id: Id, status: DeliveryStatus) -> Result<(Vec<Id>, bool), ApiError> {
    let filter = DeliveryFilter { activity_id: None, channel_id: Some(channel_id), status: Some(status) };
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = PageRequest { after, limit: PageRequest::MAX_LIMIT };
        let page = app.hub.list_deliveries(Scope::Admin, filter, page).await?;
        ids.extend(page.items.iter().map(|d| d.id));
        match page.next {
            Some(next) if ids.len() < SWEEP_CAP => after = Some(next),
            Some(_) => return Ok((ids, true)),
            None => return Ok((ids, false)),
        }
    }
}

/// `POST /admin/api/tenants/{id}/channels`: create a channel for a tenant
/// (201, with its secret), the same service call as the tenant's REST create.
pub async fn create_channel(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let tenant = app.hub.get_tenant(path_id(params, Entity::Tenant)?).await?;
    let input = NewChannelInput::from_json(body::object(request)?)?;
    let channel = app.hub.create_channel(Caller::Tenant(tenant.id), input).await?;
    Ok(render::channel_with_secret(201, &channel))
}

/// `PATCH /admin/api/channels/{id}`: any of name, config, status.
pub async fn update_channel(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let id = path_id(params, Entity::Channel)?;
    let patch = ChannelPatchInput::from_json(body::object(request)?)?;
    Ok(Response::json(200, &app.hub.update_channel(Scope::Admin, id, patch).await?))
}

/// `POST /admin/api/channels/{id}/rotate-secret`: 200, with the new secret.
pub async fn rotate_channel_secret(app: &App, params: &Params) -> Result<Response, ApiError> {
    let channel = app.hub.rotate_channel_secret(Scope::Admin, path_id(params, Entity::Channel)?).await?;
    Ok(render::channel_with_secret(200, &channel))
}
