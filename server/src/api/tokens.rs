//! `/api/v1/tokens`: issue a client token for a conversation (API key, or the
//! secret of the conversation's channel), and refresh a still-valid token
//! presented as `Authorization: Bearer <token>`. Both answer 200
//! `{token, expires_at, conversation_id}`: a token is not a stored resource.

use super::{auth, body, ApiError, App};
use crate::auth::{AuthError, Credential};
use crate::net::http::{Request, Response};
use crate::service::tokens::TokenInput;

pub async fn issue(app: &App, request: &Request) -> Result<Response, ApiError> {
    let pending = auth::tenant_or_channel_secret(app, request).await?;
    let input = TokenInput::from_json(body::object(request)?)?;
    let caller = auth::resolve_conversation(app, pending, input.conversation_id).await?;
    let token = app.hub.issue_token(caller, input).await?;
    Ok(Response::json(200, &token))
}

pub async fn refresh(app: &App, request: &Request) -> Result<Response, ApiError> {
    let Credential::Token(token) = auth::credential(request)? else {
        return Err(AuthError::WrongKind(
            "refresh takes the client token to replace as `Authorization: Bearer <token>`",
        )
        .into());
    };
    let token = app.hub.refresh_token(token).await?;
    Ok(Response::json(200, &token))
}
