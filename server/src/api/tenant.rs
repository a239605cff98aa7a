//! `/api/v1/tenant`: the calling tenant itself (API key only). GET answers
//! the tenant (id, name, status, limits, config); PATCH `{config}` replaces
//! its config — today its default pre-publish hook — and answers the tenant.

use super::{auth, body, ApiError, App};
use crate::net::http::{Request, Response};
use crate::service::tenants::own_config_from_json;

pub async fn get(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    Ok(Response::json(200, &app.hub.own_tenant(caller).await?))
}

pub async fn update(app: &App, request: &Request) -> Result<Response, ApiError> {
    let caller = auth::tenant(app, request).await?;
    let config = own_config_from_json(body::object(request)?)?;
    Ok(Response::json(200, &app.hub.configure_own_tenant(caller, config).await?))
}
