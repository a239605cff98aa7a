//! `GET /socket/websocket?vsn=2.0.0&token=<jwt>`: the Phoenix Channels V2
//! socket, and `GET /socket/binary`: the binary protocol over WebSocket. The version and the client token are checked here, before the
//! upgrade, so a refused client gets a JSON error it can read; the session
//! itself lives in `engine::phoenix_session`.

use std::future::Future;

use futures_util::FutureExt;
use tracing::{Instrument, Span};

use crate::api::query::Query;
use crate::api::{ApiError, App};
use crate::auth::AuthError;
use crate::net::http::{Request, Response};
use crate::net::ws::{handshake, Upgrade, WsLimits};
use crate::sessions::binary as binary_session;
use crate::sessions::binary::link::WsLink;
use crate::sessions::phoenix as phoenix_session;

pub async fn phoenix(app: &App, request: &Request) -> Result<Response, ApiError> {
    super::cors::check_socket_origin(&app.config.edge, request)?;
    let query = Query::parse(request.query.as_deref())?;
    if query.get("vsn")? != Some("2.0.0") {
        return Err(ApiError::BadRequest(
            "this socket speaks the Phoenix V2 serializer: connect with `vsn=2.0.0` (V1 is not supported)".into(),
        ));
    }
    let token =
        query.get("token")?.ok_or(AuthError::Invalid("a `token` query parameter (a client token) is required"))?;
    let claims = app.hub.verify_token(token).await?;
    let Some(engine) = app.engine.clone() else {
        return Err(ApiError::BadRequest("real-time sockets are not served here".into()));
    };
    let hub = app.hub.clone();
    let limits = app.config.ws_limits();
    let span = connection_span(request);
    Ok(match handshake::accept(request) {
        Ok(switching) => switching.with_upgrade(Upgrade::new(limits, move |ws| {
            logged("phoenix", span, phoenix_session::run(ws, hub, engine, claims))
        })),
        Err(refusal) => refusal,
    })
}

/// `GET /socket/binary[?token=<jwt>]`: the binary protocol, one frame per
/// WebSocket binary message. A token in the query is checked here, so a
/// browser with a bad token gets a 401 it can read; the Hello then carries
/// the credential as on TCP.
pub async fn binary(app: &App, request: &Request) -> Result<Response, ApiError> {
    super::cors::check_socket_origin(&app.config.edge, request)?;
    let query = Query::parse(request.query.as_deref())?;
    let token = query.get("token")?.map(str::to_string);
    if let Some(token) = &token {
        app.hub.verify_token(token).await?;
    }
    let Some(engine) = app.engine.clone() else {
        return Err(ApiError::BadRequest("real-time sockets are not served here".into()));
    };
    let hub = app.hub.clone();
    // The WebSocket reader handles shutdown (close 1001 `going away`).
    let shutdown = crate::rt::latch::Latch::new();
    let limits = binary_session::Limits::from_config(&app.config);
    let ws_limits = WsLimits { messages_per_second: u32::MAX, ..app.config.ws_limits() };
    let span = connection_span(request);
    Ok(match handshake::accept(request) {
        Ok(switching) => switching.with_upgrade(Upgrade::new(ws_limits, move |ws| {
            let link = WsLink { ws, max_frame: limits.max_frame, version: converger_protocol::Version::V1 };
            logged("binary", span, binary_session::run(link, hub, engine, shutdown, limits, token))
        })),
        Err(refusal) => refusal,
    })
}

/// The span a socket session runs in: its `connection_id` is the id of the
/// upgrade request (what `x-request-id` answered), so the session's log lines
/// follow on from the request's.
fn connection_span(request: &Request) -> Span {
    tracing::info_span!(parent: None, "connection", connection_id = %request.id)
}

/// `session`, with a debug line when it starts and when it ends. Not an
/// `async fn`: one would hold `session` twice (the argument, then the
/// awaited copy), doubling every socket's session task.
/// The lines are in the connection's `span`.
fn logged(protocol: &'static str, span: Span, session: impl Future<Output = ()>) -> impl Future<Output = ()> {
    span.in_scope(|| tracing::debug!(protocol, "socket session started"));
    session.map(move |()| tracing::debug!(protocol, "socket session ended")).instrument(span)
}
