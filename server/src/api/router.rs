//! The route table: (method, path pattern) → [`Endpoint`]. Patterns are
//! literal segments and `{name}` captures, e.g. `/api/v1/channels/{id}`.
//! A path that matches with another method answers 405 with `Allow`; no match
//! is 404. HEAD is accepted wherever GET is.

use super::{is_get_like, ApiError};
use crate::net::http::Method;

/// Every operation the HTTP API offers; `App::dispatch` maps each to a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Live,
    Ready,
    Metrics,
    OpenApi,
    PhoenixSocket,
    BinarySocket,
    /// The tenant's own settings (API key).
    TenantGet,
    TenantUpdate,
    ChannelCreate,
    ChannelList,
    ChannelGet,
    ChannelUpdate,
    ChannelRotateSecret,
    /// Provider webhooks (POST) and verifications (GET), with the channel
    /// secret in the path or not: one handler, one route each (metrics label
    /// every route by its own pattern).
    ChannelInbound,
    ChannelInboundVerify,
    ChannelInboundWithSecret,
    ChannelInboundVerifyWithSecret,
    ConversationCreate,
    ConversationList,
    ConversationGet,
    ConversationClose,
    ConversationUpdate,
    ConversationDisconnect,
    ConversationPresence,
    Broadcast,
    ActivityCreate,
    ActivityList,
    ActivityReplies,
    MemberAdd,
    MemberList,
    MemberGet,
    MemberRemove,
    MemberReceipts,
    TokenIssue,
    TokenRefresh,
    SigningKeyCreate,
    SigningKeyList,
    SigningKeyRevoke,
    EventEndpointCreate,
    EventEndpointList,
    EventEndpointGet,
    EventEndpointUpdate,
    EventEndpointDelete,
    EventList,
    EventGet,
    DeliveryList,
    DeliveryGet,
    AdminTenantCreate,
    AdminTenantList,
    AdminTenantGet,
    AdminTenantUpdate,
    AdminTenantRotateKey,
    AdminChannelList,
    AdminConversationList,
    AdminConversationGet,
    AdminActivityList,
    AdminDeliveryList,
    AdminDeliveryRetry,
    AdminStats,
    AdminActivityCreate,
    AdminChannelCreate,
    AdminChannelUpdate,
    AdminChannelRotateSecret,
    AdminLiveToken,
    AdminChannelDeliveryCounts,
    AdminChannelRetryFailed,
    /// The console's page (`/admin`, `/admin/`) and its compiled-in assets.
    AdminConsole,
    AdminConsoleSlash,
    AdminConsoleAsset,
}

impl Endpoint {
    /// The route pattern, as metrics label requests (never the raw path, whose
    /// ids would make one series per object).
    pub fn pattern(self) -> &'static str {
        ROUTES.iter().find(|(_, _, e)| *e == self).map(|(_, p, _)| *p).unwrap_or("unknown")
    }
}

const ROUTES: &[(Method, &str, Endpoint)] = &[
    (Method::Get, "/health", Endpoint::Health),
    (Method::Get, "/health/live", Endpoint::Live),
    (Method::Get, "/health/ready", Endpoint::Ready),
    (Method::Get, "/metrics", Endpoint::Metrics),
    (Method::Get, "/api/v1/openapi.json", Endpoint::OpenApi),
    (Method::Get, "/socket/websocket", Endpoint::PhoenixSocket),
    (Method::Get, "/socket/binary", Endpoint::BinarySocket),
    (Method::Get, "/api/v1/tenant", Endpoint::TenantGet),
    (Method::Patch, "/api/v1/tenant", Endpoint::TenantUpdate),
    (Method::Post, "/api/v1/channels", Endpoint::ChannelCreate),
    (Method::Get, "/api/v1/channels", Endpoint::ChannelList),
    (Method::Get, "/api/v1/channels/{id}", Endpoint::ChannelGet),
    (Method::Patch, "/api/v1/channels/{id}", Endpoint::ChannelUpdate),
    (Method::Post, "/api/v1/channels/{id}/rotate-secret", Endpoint::ChannelRotateSecret),
    (Method::Post, "/api/v1/channels/{id}/inbound", Endpoint::ChannelInbound),
    (Method::Get, "/api/v1/channels/{id}/inbound", Endpoint::ChannelInboundVerify),
    (Method::Post, "/api/v1/channels/{id}/inbound/{secret}", Endpoint::ChannelInboundWithSecret),
    (Method::Get, "/api/v1/channels/{id}/inbound/{secret}", Endpoint::ChannelInboundVerifyWithSecret),
    (Method::Post, "/api/v1/conversations", Endpoint::ConversationCreate),
    (Method::Get, "/api/v1/conversations", Endpoint::ConversationList),
    (Method::Get, "/api/v1/conversations/{id}", Endpoint::ConversationGet),
    (Method::Post, "/api/v1/conversations/{id}/close", Endpoint::ConversationClose),
    (Method::Post, "/api/v1/conversations/{id}/disconnect", Endpoint::ConversationDisconnect),
    (Method::Get, "/api/v1/conversations/{id}/presence", Endpoint::ConversationPresence),
    (Method::Post, "/api/v1/broadcast", Endpoint::Broadcast),
    (Method::Post, "/api/v1/conversations/{id}/activities", Endpoint::ActivityCreate),
    (Method::Get, "/api/v1/conversations/{id}/activities", Endpoint::ActivityList),
    (Method::Patch, "/api/v1/conversations/{id}", Endpoint::ConversationUpdate),
    (Method::Get, "/api/v1/conversations/{id}/activities/{activity}/replies", Endpoint::ActivityReplies),
    (Method::Post, "/api/v1/conversations/{id}/members", Endpoint::MemberAdd),
    (Method::Get, "/api/v1/conversations/{id}/members", Endpoint::MemberList),
    (Method::Get, "/api/v1/conversations/{id}/members/{sender}", Endpoint::MemberGet),
    (Method::Delete, "/api/v1/conversations/{id}/members/{sender}", Endpoint::MemberRemove),
    (Method::Post, "/api/v1/conversations/{id}/members/{sender}/receipts", Endpoint::MemberReceipts),
    (Method::Post, "/api/v1/tokens", Endpoint::TokenIssue),
    (Method::Post, "/api/v1/tokens/refresh", Endpoint::TokenRefresh),
    (Method::Post, "/api/v1/signing-keys", Endpoint::SigningKeyCreate),
    (Method::Get, "/api/v1/signing-keys", Endpoint::SigningKeyList),
    (Method::Delete, "/api/v1/signing-keys/{kid}", Endpoint::SigningKeyRevoke),
    (Method::Post, "/api/v1/event-endpoints", Endpoint::EventEndpointCreate),
    (Method::Get, "/api/v1/event-endpoints", Endpoint::EventEndpointList),
    (Method::Get, "/api/v1/event-endpoints/{id}", Endpoint::EventEndpointGet),
    (Method::Patch, "/api/v1/event-endpoints/{id}", Endpoint::EventEndpointUpdate),
    (Method::Delete, "/api/v1/event-endpoints/{id}", Endpoint::EventEndpointDelete),
    (Method::Get, "/api/v1/events", Endpoint::EventList),
    (Method::Get, "/api/v1/events/{id}", Endpoint::EventGet),
    (Method::Get, "/api/v1/deliveries", Endpoint::DeliveryList),
    (Method::Get, "/api/v1/deliveries/{id}", Endpoint::DeliveryGet),
    (Method::Post, "/admin/api/tenants", Endpoint::AdminTenantCreate),
    (Method::Get, "/admin/api/tenants", Endpoint::AdminTenantList),
    (Method::Get, "/admin/api/tenants/{id}", Endpoint::AdminTenantGet),
    (Method::Patch, "/admin/api/tenants/{id}", Endpoint::AdminTenantUpdate),
    (Method::Post, "/admin/api/tenants/{id}/rotate-key", Endpoint::AdminTenantRotateKey),
    (Method::Get, "/admin/api/channels", Endpoint::AdminChannelList),
    (Method::Get, "/admin/api/conversations", Endpoint::AdminConversationList),
    (Method::Get, "/admin/api/conversations/{id}", Endpoint::AdminConversationGet),
    (Method::Get, "/admin/api/conversations/{id}/activities", Endpoint::AdminActivityList),
    (Method::Get, "/admin/api/deliveries", Endpoint::AdminDeliveryList),
    (Method::Post, "/admin/api/deliveries/{id}/retry", Endpoint::AdminDeliveryRetry),
    (Method::Get, "/admin/api/stats", Endpoint::AdminStats),
    (Method::Post, "/admin/api/conversations/{id}/activities", Endpoint::AdminActivityCreate),
    (Method::Post, "/admin/api/tenants/{id}/channels", Endpoint::AdminChannelCreate),
    (Method::Patch, "/admin/api/channels/{id}", Endpoint::AdminChannelUpdate),
    (Method::Post, "/admin/api/channels/{id}/rotate-secret", Endpoint::AdminChannelRotateSecret),
    (Method::Post, "/admin/api/conversations/{id}/live-token", Endpoint::AdminLiveToken),
    (Method::Get, "/admin/api/channels/{id}/delivery-counts", Endpoint::AdminChannelDeliveryCounts),
    (Method::Post, "/admin/api/channels/{id}/retry-failed", Endpoint::AdminChannelRetryFailed),
    (Method::Get, "/admin", Endpoint::AdminConsole),
    (Method::Get, "/admin/", Endpoint::AdminConsoleSlash),
    (Method::Get, "/admin/assets/{file}", Endpoint::AdminConsoleAsset),
];

/// Every (method, pattern) the router serves, for the OpenAPI check.
pub fn routes() -> impl Iterator<Item = (&'static Method, &'static str)> {
    ROUTES.iter().map(|(m, p, _)| (m, *p))
}

/// Path captures, in pattern order: `("id", "0190…")`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// Finds the endpoint for `method` and `path`.
pub fn route(method: &Method, path: &str) -> Result<(Endpoint, Params), ApiError> {
    let mut allowed: Vec<&str> = Vec::new();
    for (route_method, pattern, endpoint) in ROUTES {
        let Some(params) = match_path(pattern, path) else {
            continue;
        };
        if route_method == method || (*route_method == Method::Get && is_get_like(method)) {
            return Ok((*endpoint, params));
        }
        allowed.push(route_method.as_str());
        if *route_method == Method::Get {
            allowed.push("HEAD");
        }
    }
    if allowed.is_empty() {
        Err(ApiError::NoRoute { path: path.to_string() })
    } else {
        Err(ApiError::MethodNotAllowed { method: method.to_string(), allow: allowed.join(", ") })
    }
}

/// Matches `path` against `pattern`, capturing `{name}` segments. Every
/// request tries the routes in turn, so a pattern that does not match costs
/// no allocation.
fn match_path(pattern: &'static str, path: &str) -> Option<Params> {
    let pairs = || pattern.split('/').zip(path.split('/'));
    let same_shape = pattern.split('/').count() == path.split('/').count();
    if !same_shape || !pairs().all(|(p, g)| if is_capture(p).is_some() { !g.is_empty() } else { p == g }) {
        return None;
    }
    Some(Params(pairs().filter_map(|(p, g)| Some((is_capture(p)?, g.to_string()))).collect()))
}

/// The name of a `{name}` pattern segment.
fn is_capture(segment: &'static str) -> Option<&'static str> {
    segment.strip_prefix('{').and_then(|n| n.strip_suffix('}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_and_head_to_health_endpoints() {
        let endpoint = |m, p| route(&m, p).expect("route").0;
        assert_eq!(endpoint(Method::Get, "/health"), Endpoint::Health);
        assert_eq!(endpoint(Method::Head, "/health/ready"), Endpoint::Ready);
        assert_eq!(endpoint(Method::Get, "/health/live"), Endpoint::Live);
    }

    #[test]
    fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
        assert!(matches!(route(&Method::Get, "/nope"), Err(ApiError::NoRoute { .. })));
        assert!(matches!(route(&Method::Get, "/health/"), Err(ApiError::NoRoute { .. })));
        match route(&Method::Post, "/health") {
            Err(ApiError::MethodNotAllowed { allow, .. }) => assert_eq!(allow, "GET, HEAD"),
            other => panic!("expected 405, got {other:?}"),
        }
    }

    #[test]
    fn every_endpoint_has_exactly_one_route() {
        for (_, pattern, endpoint) in ROUTES {
            assert_eq!(ROUTES.iter().filter(|(_, _, e)| e == endpoint).count(), 1, "{endpoint:?}");
            assert_eq!(endpoint.pattern(), *pattern);
        }
        let endpoint = |m, p| route(&m, p).expect("route").0;
        assert_eq!(endpoint(Method::Post, "/api/v1/tokens/refresh"), Endpoint::TokenRefresh);
        assert_eq!(endpoint(Method::Patch, "/api/v1/channels/x"), Endpoint::ChannelUpdate);
        // The admin gate goes by path, before routing: every admin endpoint must be under it.
        for (_, pattern, endpoint) in ROUTES {
            let admin = format!("{endpoint:?}").starts_with("Admin");
            assert_eq!(crate::auth::admin::is_admin_path(pattern), admin, "{pattern}");
        }
    }

    #[test]
    fn captures_named_segments() {
        let p = match_path("/api/v1/channels/{id}/inbound", "/api/v1/channels/abc/inbound").expect("match");
        assert_eq!(p.get("id"), Some("abc"));
        assert!(match_path("/api/v1/channels/{id}", "/api/v1/channels/").is_none());
        assert!(match_path("/api/v1/channels/{id}", "/api/v1/channels/a/b").is_none());
    }

    #[test]
    fn every_get_route_answers_head_and_405_names_head() {
        for (method, pattern, endpoint) in ROUTES.iter().filter(|(m, _, _)| *m == Method::Get) {
            let path = pattern.replace("{id}", "0190f0f0-0000-7000-8000-000000000000").replace("{secret}", "s");
            let (got, _) = route(&Method::Head, &path).unwrap_or_else(|e| panic!("HEAD {path}: {e}"));
            assert_eq!(got, *endpoint, "HEAD {pattern} ({method})");
            if let Err(ApiError::MethodNotAllowed { allow, .. }) = route(&Method::Other("PURGE".into()), &path) {
                assert!(allow.contains("GET, HEAD") || allow.contains("HEAD"), "{pattern}: {allow}");
            } else {
                panic!("PURGE {pattern} is not 405");
            }
        }
    }
}
