//! `/api/v1/deliveries`: the tenant's deliveries, filtered by activity,
//! channel and status, and one delivery by id.

use converger_storage::{DeliveryFilter, DeliveryStatus, Entity};

use super::query::Query;
use super::render::{self, path_id};
use super::{auth, ApiError, App, Params};
use crate::net::http::{Request, Response};

pub async fn list(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let q = Query::parse(request.query.as_deref())?;
    let page = app.hub.list_deliveries(caller.scope(), filter(&q)?, q.page()?).await?;
    Ok(render::page(&page))
}

/// `activity_id`, `channel_id` and `status` filters (shared with the admin list).
pub fn filter(q: &Query) -> Result<DeliveryFilter, ApiError> {
    Ok(DeliveryFilter {
        activity_id: q.id("activity_id")?,
        channel_id: q.id("channel_id")?,
        status: q.parsed("status", "pending, delivered or failed", DeliveryStatus::parse)?,
    })
}

pub async fn get(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let delivery = app.hub.get_delivery(caller.scope(), path_id(params, Entity::Delivery)?).await?;
    Ok(Response::json(200, &delivery))
}
