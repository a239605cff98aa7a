//! `GET|POST /api/v1/channels/{id}/inbound[/{secret}]`: provider webhooks.
//! No API key: the channel's adapter verifies the request itself (a signature,
//! or the channel secret in a header or the path), so the request is handed
//! over as it came, raw body included (signatures cover its exact bytes).
//! HEAD is handed over as GET, as the router promises HEAD wherever GET is
//! (the connection leaves the body out).

use converger_storage::Entity;
use serde_json::json;

use super::render::path_id;
use super::router::Params;
use super::{ApiError, App};
use crate::adapters::InboundRequest;
use crate::net::http::{Method, Request, Response};
use crate::service::inbound::InboundAnswer;

pub async fn receive(app: &App, params: &Params, request: &Request) -> Result<Response, ApiError> {
    let channel = path_id(params, Entity::Channel)?;
    let inbound = InboundRequest {
        method: if request.method == Method::Head { "GET" } else { request.method.as_str() }.to_string(),
        query: request.query.clone(),
        headers: request
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into_owned()))
            .collect(),
        body: request.body.to_vec(),
        path_secret: params.get("secret").map(str::to_string),
    };
    Ok(match app.hub.receive_inbound(channel, inbound).await? {
        InboundAnswer::Challenge(text) => Response::text(200, "text/plain; charset=utf-8", text),
        InboundAnswer::Accepted(summary) => Response::json(200, &json!({"accepted": summary})),
    })
}
