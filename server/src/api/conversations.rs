//! `/api/v1/conversations`: create (API key, or the channel secret of the
//! channel named in the body), list with filters, read, close.

use converger_storage::{ConversationFilter, ConversationStatus, Entity};

use super::query::Query;
use super::render::{self, path_id};
use super::{auth, body, ApiError, App, Params};
use crate::net::http::{Request, Response};
use crate::service::conversations::NewConversationInput;
use crate::service::presence::disconnect_from_json;

pub async fn create(app: &App, request: &Request) -> Result<Response, ApiError> {
    let pending = auth::tenant_or_channel_secret(app, request).await?;
    let input = NewConversationInput::from_json(body::object(request)?)?;
    let caller = auth::resolve_channel(app, pending, input.channel_id).await?;
    let conversation = app.hub.create_conversation(caller, input).await?;
    Ok(Response::json(201, &conversation))
}

pub async fn list(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let q = Query::parse(request.query.as_deref())?;
    let filter = filter(&q)?;
    let page = app.hub.list_conversations(caller.scope(), filter, q.page()?).await?;
    Ok(render::page(&page))
}

/// `channel_id` and `status` filters (shared with the admin list).
pub fn filter(q: &Query) -> Result<ConversationFilter, ApiError> {
    Ok(ConversationFilter {
        channel_id: q.id("channel_id")?,
        status: q.parsed("status", "active or closed", ConversationStatus::parse)?,
    })
}

pub async fn get(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let conversation = app.hub.get_conversation(caller.scope(), path_id(params, Entity::Conversation)?).await?;
    Ok(Response::json(200, &conversation))
}

pub async fn close(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let conversation = app.hub.close_conversation(caller.scope(), path_id(params, Entity::Conversation)?).await?;
    Ok(Response::json(200, &conversation))
}

/// `POST …/disconnect {sender?, reason}`: `{"disconnected": n}`, this node's count.
pub async fn disconnect(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let id = path_id(params, Entity::Conversation)?;
    let disconnect = disconnect_from_json(body::object(request)?)?;
    let n = app.hub.disconnect(caller.scope(), id, disconnect).await?;
    Ok(Response::json(200, &serde_json::json!({ "disconnected": n })))
}

/// `GET …/presence`: `{"data": [{sender, connections, online_at}, …]}`.
pub async fn presence(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let present = app.hub.presence(caller.scope(), path_id(params, Entity::Conversation)?).await?;
    Ok(Response::json(200, &serde_json::json!({ "data": present })))
}
