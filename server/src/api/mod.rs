//! The REST API: [`router`] maps a method and path to an [`Endpoint`], thin
//! handlers (one file per area, e.g. [`health`]) do the work, and [`ApiError`]
//! turns every failure into a status and the one JSON error shape, here at the
//! edge. [`App`] is the shard-local state handlers see.

pub mod activities;
pub mod admin;
mod auth;
mod body;
pub mod channels;
pub mod conversations;
pub mod cors;
pub mod deliveries;
pub mod error;
pub mod event_endpoints;
pub mod health;
pub mod inbound;
mod members;
pub mod openapi;
pub(crate) mod query;
mod render;
pub mod router;
pub mod signing_keys;
pub mod socket;
mod tenant;
pub mod tenants_admin;
pub mod tokens;

use std::rc::Rc;
use std::sync::Arc;

use converger_storage::Store;
use tracing::{debug, Instrument};

pub use error::ApiError;
pub use router::{Endpoint, Params};

use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::{Registry, ShardMetrics};
use crate::net::http::{Method, Request, Response, Service};
use crate::service::{Hub, Publisher};
use crate::trace;

/// What every handler can reach. One per shard; the store is shared.
pub struct App {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// The service layer; handlers call it and only translate HTTP around it.
    pub hub: Rc<Hub>,
    /// This shard's live stream (absent in an app built without shards).
    pub engine: Option<Rc<Engine>>,
    /// This shard's counters, and every shard's for `/metrics`.
    pub metrics: Arc<ShardMetrics>,
    pub registry: Registry,
}

impl App {
    /// An app without shards: publishes go straight to the store (tests).
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>) -> App {
        let registry = Registry::new(1);
        let hub = Hub::new(store.clone(), config.clone(), Publisher::direct(store.clone()));
        App::for_shard(store, config, hub, None, registry.shard(0), registry)
    }

    /// The app of one shard, publishing through the owner shards.
    pub fn for_shard(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        hub: Hub,
        engine: Option<Rc<Engine>>,
        metrics: Arc<ShardMetrics>,
        registry: Registry,
    ) -> App {
        App { store, config, hub: Rc::new(hub), engine, metrics, registry }
    }

    /// Routes and runs one request; never fails: errors become responses.
    ///
    /// Everything under `/admin` passes the admin gate before it is routed
    /// (the address for all, the token too under `/admin/api`), so a refused
    /// caller gets the same answer for every path there, known or not,
    /// whatever the method: the admin routes cannot be enumerated.
    ///
    /// Each request runs in a `request` span whose `request_id` its log
    /// lines carry and `x-request-id` echoes: the client's own `x-request-id`
    /// when it is 1–128 visible ASCII characters, else a new one.
    ///
    /// With traces on (`--otlp-endpoint`), each request is also a SERVER span,
    /// a child of the request's `traceparent` when it has a valid one.
    pub async fn handle(&self, mut request: Request) -> Response {
        request.id = request_id(&request);
        let id = request.id.clone();
        let span = tracing::info_span!("request", request_id = %id);
        let response = if trace::enabled() {
            self.answer_traced(request).instrument(span).await
        } else {
            self.answer(request).instrument(span).await.1
        };
        response.with_header("x-request-id", id)
    }

    /// [`App::answer`] in a span named `{METHOD} {route pattern}`, whose
    /// context the write path picks up ([`trace::current`]).
    async fn answer_traced(&self, request: Request) -> Response {
        let parent = request.header("traceparent").and_then(trace::SpanContext::parse);
        let Some(mut span) = trace::span("HTTP request", trace::Kind::Server, parent) else {
            return self.answer(request).await.1;
        };
        let method = request.method.to_string();
        span.attr("converger.request_id", request.id.clone());
        let (pattern, response) = trace::in_context(span.context(), self.answer(request)).await;
        if pattern.starts_with('/') {
            span.set_name(format!("{method} {pattern}"));
            span.attr("http.route", pattern);
        } else {
            // Not routed (preflight, refused, unmatched): the method alone, as OpenTelemetry names it.
            span.set_name(method.clone());
        }
        span.attr("http.request.method", method);
        span.attr("http.response.status_code", response.status);
        if response.status >= 500 {
            span.error(format!("answered {}", response.status));
        }
        response
    }

    /// The response, and the route pattern it is counted under.
    async fn answer(&self, request: Request) -> (&'static str, Response) {
        let started = std::time::Instant::now();
        let method = request.method.clone();
        let path = request.path.clone();
        let gated = crate::auth::admin::is_admin_path(&request.path);
        let refused = if gated { auth::admin(self, &request).err() } else { None };
        let origin = request.header_str("origin").map(str::to_string);
        let edge = &self.config.edge;
        let (pattern, result) = match refused {
            // One metrics label for the gate's refusals, never the path asked for.
            Some(e) => ("/admin", Err(e)),
            None => match cors::preflight(edge, &request) {
                Some(answer) => ("preflight", answer),
                None => match self.admit_address(&request) {
                    Err(e) => ("rate_limited", Err(e)),
                    Ok(()) => match router::route(&request.method, &request.path) {
                        Ok((endpoint, params)) => (endpoint.pattern(), self.dispatch(endpoint, params, request).await),
                        Err(e) => ("unmatched", Err(e)),
                    },
                },
            },
        };
        let response = cors::decorate(edge, origin.as_deref(), result.unwrap_or_else(ApiError::into_response));
        self.metrics.request(pattern, response.status, started.elapsed());
        debug!(%method, %path, status = response.status, "request");
        (pattern, response)
    }

    /// The client address's request budget; health checks and metrics are
    /// not counted (a load balancer probing them is not limited).
    fn admit_address(&self, request: &Request) -> Result<(), ApiError> {
        let exempt = matches!(request.path.as_str(), "/metrics" | "/health") || request.path.starts_with("/health/");
        match request.peer {
            Some(peer) if !exempt => Ok(self.hub.admit_address(peer.ip())?),
            _ => Ok(()),
        }
    }

    async fn dispatch(&self, endpoint: Endpoint, params: Params, request: Request) -> Result<Response, ApiError> {
        use Endpoint as E;
        let (p, r) = (&params, &request);
        match endpoint {
            E::Health => health::health(),
            E::Live => health::live(),
            E::Ready => health::ready(self).await,
            E::Metrics => Ok(health::metrics(self).await),
            E::OpenApi => Ok(openapi::serve()),
            E::PhoenixSocket => socket::phoenix(self, r).await,
            E::BinarySocket => socket::binary(self, r).await,
            E::TenantGet => tenant::get(self, r).await,
            E::TenantUpdate => tenant::update(self, r).await,
            E::ChannelCreate => channels::create(self, r).await,
            E::ChannelList => channels::list(self, r).await,
            E::ChannelGet => channels::get(self, p, r).await,
            E::ChannelUpdate => channels::update(self, p, r).await,
            E::ChannelRotateSecret => channels::rotate_secret(self, p, r).await,
            E::ChannelInbound
            | E::ChannelInboundVerify
            | E::ChannelInboundWithSecret
            | E::ChannelInboundVerifyWithSecret => inbound::receive(self, p, r).await,
            E::ConversationCreate => conversations::create(self, r).await,
            E::ConversationList => conversations::list(self, r).await,
            E::ConversationGet => conversations::get(self, p, r).await,
            E::ConversationClose => conversations::close(self, p, r).await,
            E::ConversationDisconnect => conversations::disconnect(self, p, r).await,
            E::ConversationPresence => conversations::presence(self, p, r).await,
            E::Broadcast => activities::broadcast(self, r).await,
            E::ActivityCreate => activities::create(self, p, r).await,
            E::ActivityList => activities::list(self, p, r).await,
            E::ActivityReplies => members::replies(self, p, r).await,
            E::ConversationUpdate => members::update_conversation(self, p, r).await,
            E::MemberAdd => members::add(self, p, r).await,
            E::MemberList => members::list(self, p, r).await,
            E::MemberGet => members::get(self, p, r).await,
            E::MemberRemove => members::remove(self, p, r).await,
            E::MemberReceipts => members::receipts(self, p, r).await,
            E::TokenIssue => tokens::issue(self, r).await,
            E::TokenRefresh => tokens::refresh(self, r).await,
            E::SigningKeyCreate => signing_keys::create(self, r).await,
            E::SigningKeyList => signing_keys::list(self, r).await,
            E::SigningKeyRevoke => signing_keys::revoke(self, p, r).await,
            E::EventEndpointCreate => event_endpoints::create(self, r).await,
            E::EventEndpointList => event_endpoints::list(self, r).await,
            E::EventEndpointGet => event_endpoints::get(self, p, r).await,
            E::EventEndpointUpdate => event_endpoints::update(self, p, r).await,
            E::EventEndpointDelete => event_endpoints::delete(self, p, r).await,
            E::EventList => event_endpoints::list_events(self, r).await,
            E::EventGet => event_endpoints::get_event(self, p, r).await,
            E::DeliveryList => deliveries::list(self, r).await,
            E::DeliveryGet => deliveries::get(self, p, r).await,
            E::AdminTenantCreate => tenants_admin::create(self, r).await,
            E::AdminTenantList => tenants_admin::list(self, r).await,
            E::AdminTenantGet => tenants_admin::get(self, p).await,
            E::AdminTenantUpdate => tenants_admin::update(self, p, r).await,
            E::AdminTenantRotateKey => tenants_admin::rotate_key(self, p).await,
            E::AdminChannelList => admin::channels(self, r).await,
            E::AdminConversationList => admin::conversations(self, r).await,
            E::AdminConversationGet => admin::conversation(self, p).await,
            E::AdminActivityList => admin::activities(self, p, r).await,
            E::AdminDeliveryList => admin::deliveries(self, r).await,
            E::AdminDeliveryRetry => admin::retry_delivery(self, p).await,
            E::AdminStats => admin::stats(self).await,
            E::AdminActivityCreate => admin::create_activity(self, p, r).await,
            E::AdminChannelCreate => admin::create_channel(self, p, r).await,
            E::AdminChannelUpdate => admin::update_channel(self, p, r).await,
            E::AdminChannelRotateSecret => admin::rotate_channel_secret(self, p).await,
            E::AdminLiveToken => admin::live_token(self, p).await,
            E::AdminChannelDeliveryCounts => admin::delivery_counts(self, p).await,
            E::AdminChannelRetryFailed => admin::retry_failed(self, p).await,
            E::AdminConsole | E::AdminConsoleSlash => Ok(crate::admin::page()),
            E::AdminConsoleAsset => crate::admin::asset(p.get("file").unwrap_or_default())
                .ok_or_else(|| ApiError::NoRoute { path: r.path.clone() }),
        }
    }
}

impl Service for App {
    async fn call(&self, request: Request) -> Response {
        // HEAD is answered like GET; the connection leaves the body out.
        self.handle(request).await
    }
}

/// True for the methods a GET route also answers.
fn is_get_like(m: &Method) -> bool {
    matches!(m, Method::Get | Method::Head)
}

/// The id of a request: the client's `x-request-id` if usable (1–128
/// visible ASCII characters, so it is safe in a header and a log line), else
/// a new one, unique across nodes and restarts.
fn request_id(request: &Request) -> String {
    match request.header("x-request-id") {
        Some(v) if (1..=128).contains(&v.len()) && v.iter().all(|b| (0x21..=0x7e).contains(b)) => {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => converger_storage::new_id().simple().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Options};
    use crate::testing::StubStore;

    fn app(admin_allow: &str) -> App {
        let o = Options {
            admin_token: Some("tok".into()),
            admin_allow: Some(admin_allow.parse().expect("cidr")),
            jwt_secret: Some("j".into()),
            ..Options::default()
        };
        let config = Config::resolve(o, FileConfig::default()).expect("config");
        App::new(Arc::new(StubStore::default()), Arc::new(config))
    }

    fn answer(app: &App, method: Method, path: &str, token: Option<&str>) -> (u16, String) {
        let request = Request {
            method,
            path: path.into(),
            query: None,
            minor_version: 1,
            headers: token
                .map(|t| ("authorization".to_string(), format!("Bearer {t}").into_bytes()))
                .into_iter()
                .collect(),
            body: Default::default(),
            peer: Some("127.0.0.1:5000".parse().expect("addr")),
            id: String::new(),
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let response = rt.block_on(app.handle(request));
        let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
        (response.status, body["error"]["code"].as_str().unwrap_or_default().to_string())
    }

    #[test]
    fn outside_the_allow_list_every_admin_path_is_403_before_routing() {
        let app = app("10.0.0.0/8");
        for path in ["/admin", "/admin/", "/admin/api", "/admin/api/tenants", "/admin/api/anything", "/admin/x/y"] {
            for method in [Method::Get, Method::Post, Method::Delete, Method::Other("PROPFIND".into())] {
                let label = format!("{method} {path}");
                assert_eq!(answer(&app, method, path, Some("tok")), (403, "forbidden".into()), "{label}");
            }
        }
        // Outside the gate, routing goes on as before.
        assert_eq!(answer(&app, Method::Get, "/administrator", None), (404, "not_found".into()));
    }

    #[test]
    fn inside_the_allow_list_the_token_is_checked_before_routing_too() {
        let app = app("127.0.0.0/8");
        assert_eq!(answer(&app, Method::Get, "/admin/api/anything", None), (401, "unauthorized".into()));
        assert_eq!(answer(&app, Method::Get, "/admin/api", None), (401, "unauthorized".into()));
        assert_eq!(answer(&app, Method::Post, "/admin/api/tenants", Some("nope")), (401, "unauthorized".into()));
        assert_eq!(answer(&app, Method::Get, "/admin/api/anything", Some("tok")), (404, "not_found".into()));
        assert_eq!(answer(&app, Method::Delete, "/admin/api/tenants", Some("tok")).0, 405);
    }

    #[test]
    fn the_console_pages_need_an_allowed_address_but_no_token() {
        let app = app("127.0.0.0/8");
        for path in ["/admin", "/admin/", "/admin/assets/app.js", "/admin/assets/app.css"] {
            assert_eq!(raw(&app, Method::Get, path).status, 200, "{path}");
        }
        assert_eq!(answer(&app, Method::Get, "/admin/assets/nope.js", None), (404, "not_found".into()));
        assert_eq!(answer(&app, Method::Post, "/admin", None).0, 405);
        let page = raw(&app, Method::Get, "/admin");
        let header = |n: &str| page.headers.iter().find(|(h, _)| *h == n).map(|(_, v)| v.clone()).unwrap_or_default();
        assert!(header("content-security-policy").contains("script-src 'self'"));
        assert!(!header("content-security-policy").contains("unsafe"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("cache-control"), "no-store");
    }

    fn raw(app: &App, method: Method, path: &str) -> Response {
        let request = Request {
            method,
            path: path.into(),
            query: None,
            minor_version: 1,
            headers: Vec::new(),
            body: Default::default(),
            peer: Some("127.0.0.1:5000".parse().expect("addr")),
            id: String::new(),
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(app.handle(request))
    }
}
