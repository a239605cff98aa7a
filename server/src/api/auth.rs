//! Authentication at the HTTP edge: reads the credential headers and asks the
//! service layer who the caller is. Which credentials an endpoint takes is
//! decided here, per endpoint:
//!
//! - every `/api/v1` endpoint: the tenant API key;
//! - `POST /api/v1/conversations` and `POST /api/v1/tokens`: the API key or the
//!   channel secret of the channel concerned (see the handlers);
//! - `POST /api/v1/tokens/refresh`: a client token;
//! - `/admin/api/…`: the admin token from an allowed address.

use converger_storage::Id;

use super::{ApiError, App};
use crate::auth::{admin, credentials, AuthError, Credential};
use crate::net::http::Request;
use crate::service::Caller;

/// The credential the request presents.
pub fn credential(request: &Request) -> Result<Credential<'_>, ApiError> {
    Ok(credentials::presented(request.header_str("authorization"), request.header_str("x-api-key"))?)
}

/// The tenant of the API key; any other credential is refused.
pub async fn tenant(app: &App, request: &Request) -> Result<Caller, ApiError> {
    match credential(request)? {
        Credential::ApiKey(key) => {
            let caller = app.hub.caller_by_api_key(key).await?;
            app.hub.admit_request(caller.tenant_id()).await?;
            Ok(caller)
        }
        Credential::ChannelSecret(_) => Err(AuthError::WrongKind(
            "a channel secret only creates conversations and issues tokens on its channel; use the tenant API key",
        )
        .into()),
        Credential::Token(_) => Err(AuthError::WrongKind(
            "a client token is for real-time connections and POST /api/v1/tokens/refresh; use the tenant API key",
        )
        .into()),
    }
}

/// A caller for an endpoint that also takes a channel secret: the API key
/// is checked before the body is read; a secret is checked after, against the
/// channel the body names (`channel_of` resolves it).
pub enum Pending<'r> {
    Known(Caller),
    ChannelSecret(&'r str),
}

pub async fn tenant_or_channel_secret<'r>(app: &App, request: &'r Request) -> Result<Pending<'r>, ApiError> {
    match credential(request)? {
        Credential::ChannelSecret(secret) => Ok(Pending::ChannelSecret(secret)),
        _ => Ok(Pending::Known(tenant(app, request).await?)),
    }
}

/// Checks a pending channel secret against the channel `channel_id`.
pub async fn resolve_channel(app: &App, pending: Pending<'_>, channel_id: Id) -> Result<Caller, ApiError> {
    match pending {
        Pending::Known(caller) => Ok(caller),
        Pending::ChannelSecret(secret) => {
            let caller = app.hub.caller_by_channel_secret(channel_id, secret).await?;
            app.hub.admit_request(caller.tenant_id()).await?;
            Ok(caller)
        }
    }
}

/// Checks a pending channel secret against the channel of conversation `conversation_id`.
pub async fn resolve_conversation(app: &App, pending: Pending<'_>, conversation_id: Id) -> Result<Caller, ApiError> {
    match pending {
        Pending::Known(caller) => Ok(caller),
        Pending::ChannelSecret(secret) => {
            let caller = app.hub.caller_by_channel_secret_for_conversation(conversation_id, secret).await?;
            app.hub.admit_request(caller.tenant_id()).await?;
            Ok(caller)
        }
    }
}

/// The admin gate: an allowed address for every path under `/admin`; the
/// admin API on and the admin token too for `/admin/api/…`.
pub fn admin(app: &App, request: &Request) -> Result<(), ApiError> {
    let peer = request.peer.map(|p| p.ip());
    if !admin::is_admin_api_path(&request.path) {
        return Ok(admin::check_address(&app.config.admin_allow, peer)?);
    }
    Ok(admin::check(
        app.config.admin_token.as_ref().map(|t| t.expose()),
        &app.config.admin_allow,
        peer,
        request.header_str("authorization"),
    )?)
}
