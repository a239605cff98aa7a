//! `/api/v1/event-endpoints` and `/api/v1/events`: where a tenant's
//! lifecycle events go (API key only), and the events themselves. Create
//! answers 201 with the endpoint and its `secret` this once; list answers
//! `{"data": [...], "next_cursor": null}` (at most `MAX_ENDPOINTS_PER_TENANT`,
//! never a secret); delete answers 204. Events list like deliveries
//! (`endpoint_id`, `status`, `type` filters, cursor pages).

use converger_storage::{Entity, EventFilter, EventType};

use super::query::Query;
use super::render::{self, path_id};
use super::{auth, body, ApiError, App, Params};
use crate::net::http::{Request, Response};
use crate::service::event_endpoints::{parse_status, EndpointInput};

pub async fn create(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let input = EndpointInput::from_json(body::object(request)?, true)?;
    let created = app.hub.create_event_endpoint(caller, input).await?;
    Ok(Response::json(201, &created))
}

pub async fn list(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let endpoints = app.hub.list_event_endpoints(caller).await?;
    Ok(Response::json(200, &serde_json::json!({ "data": endpoints, "next_cursor": null })))
}

pub async fn get(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let endpoint = app.hub.get_event_endpoint(caller, path_id(params, Entity::EventEndpoint)?).await?;
    Ok(Response::json(200, &endpoint))
}

pub async fn update(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let id = path_id(params, Entity::EventEndpoint)?;
    let input = EndpointInput::from_json(body::object(request)?, false)?;
    let endpoint = app.hub.update_event_endpoint(caller, id, input).await?;
    Ok(Response::json(200, &endpoint))
}

pub async fn delete(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    app.hub.delete_event_endpoint(caller, path_id(params, Entity::EventEndpoint)?).await?;
    Ok(Response::new(204))
}

pub async fn list_events(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let q = Query::parse(request.query.as_deref())?;
    let filter = EventFilter {
        endpoint_id: q.id("endpoint_id")?,
        status: q.parsed("status", "pending, delivered or failed", parse_status)?,
        kind: q.parsed("type", "a lifecycle event type", EventType::parse)?,
    };
    let page = app.hub.list_events(caller.scope(), filter, q.page()?).await?;
    Ok(render::page(&page))
}

pub async fn get_event(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let event = app.hub.get_event(caller.scope(), path_id(params, Entity::Event)?).await?;
    Ok(Response::json(200, &event))
}
