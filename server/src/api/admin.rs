//! `/admin/api/…` beyond tenants: every tenant's channels, conversations,
//! activities and deliveries (optionally narrowed with `tenant_id`), retrying a
//! failed delivery, and stats. The admin gate runs before these (see `App`).

use converger_storage::{ChannelFilter, Entity, Scope, Status};

use super::query::Query;
use super::render::{self, path_id};
use super::{activities, conversations, deliveries, ApiError, App, Params};
use crate::net::http::{Request, Response};

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
    Ok(Response::json(200, &app.hub.stats().await?))
}
