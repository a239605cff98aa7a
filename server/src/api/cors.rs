//! CORS (the Fetch standard's protocol) for browsers calling the API from
//! another origin, when `--cors-origins` is set: a preflight (`OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`) is answered here, before
//! routing, with what the path allows; every other answer to a listed origin
//! carries `Access-Control-Allow-Origin`. An origin not in the list gets no
//! CORS header (the browser then refuses the answer), and its preflight a 403
//! `origin_not_allowed`. The same list guards WebSocket upgrades (`socket.rs`).

use crate::config::{Edge, Origins};
use crate::net::http::{Method, Request, Response};

use super::router;
use super::ApiError;

/// Request headers a browser may send (besides the CORS-safelisted ones).
const ALLOW_HEADERS: &str =
    "authorization, content-type, idempotency-key, x-idempotency-key, x-api-key, x-converger-secret, x-request-id, traceparent";
/// Response headers a browser script may read.
const EXPOSE_HEADERS: &str = "retry-after, www-authenticate, allow, x-request-id";
/// How long a browser may cache a preflight answer (seconds).
const MAX_AGE: &str = "600";

/// The answer to a preflight, or `None` when `request` is not one (or CORS is off).
pub fn preflight(edge: &Edge, request: &Request) -> Option<Result<Response, ApiError>> {
    if !edge.cors_origins.is_set() || request.method != Method::Options {
        return None;
    }
    let origin = request.header_str("origin")?;
    let wanted = request.header_str("access-control-request-method")?;
    if !edge.cors_origins.allows(origin) {
        return Some(Err(ApiError::OriginNotAllowed));
    }
    let allow = match router::route(&Method::parse(wanted), &request.path) {
        Ok(_) => wanted.to_ascii_uppercase(),
        Err(ApiError::MethodNotAllowed { allow, .. }) => allow,
        Err(e) => return Some(Err(e)),
    };
    let response = Response::new(204)
        .with_header("access-control-allow-methods", &allow)
        .with_header("access-control-allow-headers", ALLOW_HEADERS)
        .with_header("access-control-max-age", MAX_AGE);
    Some(Ok(allow_origin(edge, origin, response)))
}

/// `response` with the CORS headers for `Origin: origin`, when it is allowed.
pub fn decorate(edge: &Edge, origin: Option<&str>, response: Response) -> Response {
    match origin {
        Some(origin) if edge.cors_origins.is_set() && edge.cors_origins.allows(origin) => {
            allow_origin(edge, origin, response).with_header("access-control-expose-headers", EXPOSE_HEADERS)
        }
        _ => response,
    }
}

fn allow_origin(edge: &Edge, origin: &str, response: Response) -> Response {
    let response = match (&edge.cors_origins, edge.cors_credentials) {
        // `*` is never sent with credentials (the config refuses that pair).
        (Origins::Any, false) => response.with_header("access-control-allow-origin", "*"),
        _ => response.with_header("access-control-allow-origin", origin).with_header("vary", "origin"),
    };
    if edge.cors_credentials {
        response.with_header("access-control-allow-credentials", "true")
    } else {
        response
    }
}

/// The WebSocket origin check (Phoenix's `check_origin`): with a list set, a
/// browser upgrade from another Origin is refused; clients that send no
/// Origin (not browsers) are let through.
pub fn check_socket_origin(edge: &Edge, request: &Request) -> Result<(), ApiError> {
    match request.header_str("origin") {
        Some(origin) if !edge.cors_origins.allows(origin) => Err(ApiError::OriginNotAllowed),
        _ => Ok(()),
    }
}
