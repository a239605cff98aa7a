//! `/api/v1/signing-keys`: a tenant's own keys for signing client tokens
//! (API key only). Create answers 201 with the key, and an HS256 key's
//! `secret` this once; list answers `{"data": [...], "next_cursor": null}`
//! (at most `MAX_KEYS_PER_TENANT` keys, never a secret); delete revokes: 204.

use super::{auth, body, ApiError, App, Params};
use crate::net::http::{Request, Response};
use crate::service::signing_keys::NewKeyInput;

pub async fn create(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let input = NewKeyInput::from_json(body::object(request)?)?;
    let key = app.hub.create_signing_key(caller, input).await?;
    Ok(Response::json(201, &key))
}

pub async fn list(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let keys = app.hub.list_signing_keys(caller).await?;
    Ok(Response::json(200, &serde_json::json!({ "data": keys, "next_cursor": null })))
}

pub async fn revoke(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    app.hub.revoke_signing_key(caller, params.get("kid").unwrap_or_default()).await?;
    Ok(Response::new(204))
}
