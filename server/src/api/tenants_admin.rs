//! `/admin/api/tenants`: create (201 `{"tenant": …, "api_key": "…"}`, the only
//! time the key is shown), list, read, PATCH name/status, rotate the key (200,
//! same shape as create). The admin gate runs before these (see `App`).

use converger_storage::{Entity, Tenant};
use serde::Serialize;

use super::query::Query;
use super::render::{self, path_id};
use super::{body, ApiError, App, Params};
use crate::net::http::{Request, Response};
use crate::service::tenants::{tenant_name_from_json, TenantPatchInput};

#[derive(Serialize)]
struct WithKey<'a> {
    tenant: &'a Tenant,
    api_key: &'a str,
}

pub async fn create(app: &App, request: &Request) -> Result<Response, ApiError> {
    let name = tenant_name_from_json(body::object(request)?)?;
    let (tenant, api_key) = app.hub.create_tenant(name).await?;
    Ok(Response::json(201, &WithKey { tenant: &tenant, api_key: &api_key }))
}

pub async fn list(app: &App, request: &Request) -> Result<Response, ApiError> {
    let q = Query::parse(request.query.as_deref())?;
    Ok(render::page(&app.hub.list_tenants(q.page()?).await?))
}

pub async fn get(app: &App, params: &Params) -> Result<Response, ApiError> {
    let tenant = app.hub.get_tenant(path_id(params, Entity::Tenant)?).await?;
    Ok(Response::json(200, &tenant))
}

pub async fn update(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let id = path_id(params, Entity::Tenant)?;
    let patch = TenantPatchInput::from_json(body::object(request)?)?;
    Ok(Response::json(200, &app.hub.update_tenant(id, patch).await?))
}

pub async fn rotate_key(app: &App, params: &Params) -> Result<Response, ApiError> {
    let (tenant, api_key) = app.hub.rotate_tenant_key(path_id(params, Entity::Tenant)?).await?;
    Ok(Response::json(200, &WithKey { tenant: &tenant, api_key: &api_key }))
}
