//! `/api/v1/conversations/{id}/members`: add (201, or 200 when the sender
//! was a member: its role and metadata are replaced), list with receipts
//! and unread counts, read one, remove (204), and move a member's receipts
//! forward. Also the thread of a message (`…/activities/{activity}/replies`)
//! and a conversation's PATCH (`metadata`, `members_only`).

use converger_storage::{Entity, StoreError};
use percent_encoding::percent_decode_str;
use serde::Serialize;

use super::query::Query;
use super::render::{self, path_id};
use super::{auth, body, ApiError, App, Params};
use crate::net::http::{Request, Response};
use crate::service::conversations::patch_from_json;
use crate::service::input::parse_id;
use crate::service::members::{receipts_from_json, MemberInput};

pub async fn add(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let conversation = path_id(params, Entity::Conversation)?;
    let input = MemberInput::from_json(body::object(request)?)?;
    let existed = app.hub.get_member(caller.scope(), conversation, &input.sender).await.is_ok();
    let (member, _) = app.hub.add_member(caller, conversation, input).await?;
    Ok(Response::json(if existed { 200 } else { 201 }, &member))
}

pub async fn list(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let q = Query::parse(request.query.as_deref())?;
    let page = app.hub.list_members(caller.scope(), path_id(params, Entity::Conversation)?, q.page()?).await?;
    Ok(render::page(&page))
}

pub async fn get(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let member = app.hub.get_member(caller.scope(), path_id(params, Entity::Conversation)?, &sender(params)?).await?;
    Ok(Response::json(200, &member))
}

pub async fn remove(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    app.hub.remove_member(caller, path_id(params, Entity::Conversation)?, &sender(params)?).await?;
    Ok(Response::new(204))
}

pub async fn receipts(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let receipts = receipts_from_json(body::object(request)?)?;
    let conversation = path_id(params, Entity::Conversation)?;
    let member = app.hub.update_receipts(caller.scope(), conversation, &sender(params)?, receipts).await?;
    Ok(Response::json(200, &member))
}

#[derive(Serialize)]
struct Replies<'a> {
    data: &'a [converger_storage::Activity],
}

pub async fn replies(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let conversation = path_id(params, Entity::Conversation)?;
    let parent =
        params.get("activity").and_then(parse_id).ok_or(ApiError::from(StoreError::NotFound(Entity::Activity)))?;
    let q = Query::parse(request.query.as_deref())?;
    let after_seq = q.int("after_seq", 0..=i64::MAX)?.unwrap_or(0);
    let data = app.hub.list_replies(caller.scope(), conversation, parent, after_seq, q.limit()?, q.reader()?).await?;
    Ok(Response::json(200, &Replies { data: &data }))
}

pub async fn update_conversation(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let patch = patch_from_json(body::object(request)?)?;
    let conversation =
        app.hub.update_conversation(caller.scope(), path_id(params, Entity::Conversation)?, patch).await?;
    Ok(Response::json(200, &conversation))
}

/// The `{sender}` path segment, percent-decoded (a sender id may hold any
/// character; `+` is itself, as in every path). A bad escape names nobody.
fn sender(params: &Params) -> Result<String, ApiError> {
    params
        .get("sender")
        .and_then(|s| percent_decode_str(s).decode_utf8().ok())
        .filter(|s| !s.is_empty())
        .map(|s| s.into_owned())
        .ok_or(ApiError::from(StoreError::NotFound(Entity::Member)))
}
