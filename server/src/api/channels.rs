//! `/api/v1/channels`: create (201, with the secret), list, read, update,
//! rotate the secret (200, with the new secret). Tenant API key only.

use converger_storage::{ChannelFilter, Entity, Status};

use super::query::Query;
use super::render::{self, path_id};
use super::{auth, body, ApiError, App, Params};
use crate::net::http::{Request, Response};
use crate::service::channels::{ChannelPatchInput, NewChannelInput};

pub async fn create(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let input = NewChannelInput::from_json(body::object(request)?)?;
    let channel = app.hub.create_channel(caller, input).await?;
    Ok(render::channel_with_secret(201, &channel))
}

pub async fn list(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let q = Query::parse(request.query.as_deref())?;
    let filter = ChannelFilter { status: q.parsed("status", "active or inactive", Status::parse)? };
    let page = app.hub.list_channels(caller.scope(), filter, q.page()?).await?;
    Ok(render::page(&page))
}

pub async fn get(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let channel = app.hub.get_channel(caller.scope(), path_id(params, Entity::Channel)?).await?;
    Ok(Response::json(200, &channel))
}

pub async fn update(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let id = path_id(params, Entity::Channel)?;
    let patch = ChannelPatchInput::from_json(body::object(request)?)?;
    let channel = app.hub.update_channel(caller.scope(), id, patch).await?;
    Ok(Response::json(200, &channel))
}

pub async fn rotate_secret(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let channel = app.hub.rotate_channel_secret(caller.scope(), path_id(params, Entity::Channel)?).await?;
    Ok(render::channel_with_secret(200, &channel))
}
