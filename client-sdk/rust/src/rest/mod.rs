//! [`Rest`]: the REST calls an integrator makes around the binary protocol
//! (docs/api.md): create a channel and a conversation, add and read its
//! members, issue and refresh client tokens, list a conversation's activities,
//! the server API (broadcast to many conversations, disconnect a sender or
//! everyone, who is present), manage the tenant's own token-signing keys
//! (docs/api.md "Tenant-signed tokens": a token signed with one is used
//! exactly like an issued one) and its lifecycle event endpoints (docs/api.md
//! "Lifecycle events"). Errors in the API's
//! `{"error":{"code","message"}}` shape come back as [`Error::Server`] with
//! the catalogue code.
//!
//! HTTP is `reqwest` with rustls (no OpenSSL): base URLs may be `http://` or
//! `https://`. Only with the default `rest` feature.

use std::sync::Arc;
use std::time::Duration;

use converger_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{Error, Result, ServerError};

mod types;
pub use types::*;
use types::{BroadcastResults, Disconnected, Listed, PresenceList};

/// The largest response accepted (a page of 1000 activities with big texts
/// stays far below).
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// REST calls with one credential: a tenant API key (every call), a channel
/// secret (conversations and tokens of its channel), or a client token
/// ([`Rest::refresh_token`]).
///
/// Clones share one HTTP client and its pool of keep-alive connections.
#[derive(Clone, Debug)]
pub struct Rest {
    http: reqwest::Client,
    /// `scheme://host[:port][/prefix]`, without a trailing slash.
    base: String,
    credential: String,
    timeout: Duration,
}

impl Rest {
    /// `base_url` is `http://host:port` or `https://host[:port]`, optionally
    /// with a path prefix (`https://example.com/converger`); without a scheme,
    /// `http://` is assumed. Server certificates are checked against the
    /// Mozilla root set built into the crate (`webpki-roots`), not the
    /// system's store. Connections go straight to `base_url` (no proxy).
    pub fn new(base_url: &str, credential: impl Into<String>) -> Result<Rest> {
        Rest::build(base_url, credential, None)
    }

    /// [`Rest::new`] that also trusts the CA certificate(s) in `ca_pem`: for a
    /// server whose certificate comes from your own CA.
    pub fn with_ca_pem(base_url: &str, credential: impl Into<String>, ca_pem: &[u8]) -> Result<Rest> {
        let ca = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| Error::InvalidArgument(format!("CA certificate PEM: {e}")))?;
        Rest::build(base_url, credential, Some(ca))
    }

    fn build(base_url: &str, credential: impl Into<String>, ca: Option<Vec<reqwest::Certificate>>) -> Result<Rest> {
        let mut http = reqwest::Client::builder();
        for cert in ca.into_iter().flatten() {
            http = http.add_root_certificate(cert);
        }
        let http = http
            .user_agent(concat!("converger-rust/", env!("CARGO_PKG_VERSION")))
            // A redirect is answered to the caller as `Error::Http`, as any
            // other non-2xx status: the credential goes to `base_url` only.
            .redirect(reqwest::redirect::Policy::none())
            // Straight to `base_url`, as the SDK always did: proxy variables
            // in the environment (`HTTPS_PROXY`, …) are not read.
            .no_proxy()
            .build()
            .map_err(|e| Error::InvalidArgument(format!("cannot build the HTTP client: {e}")))?;
        Ok(Rest { http, base: parse_base(base_url)?, credential: credential.into(), timeout: Duration::from_secs(30) })
    }

    /// Each call's time limit (30 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Rest {
        self.timeout = timeout;
        self
    }

    /// `POST /api/v1/channels`: `kind` is `websocket`, `webhook`, `echo`, …;
    /// `config` a JSON object (`{}` when the type needs none).
    pub async fn create_channel(&self, name: &str, kind: &str, config: Value) -> Result<Channel> {
        self.send("POST", "/api/v1/channels", Some(json!({"name": name, "type": kind, "config": config}))).await
    }

    /// `POST /api/v1/conversations`.
    pub async fn create_conversation(
        &self,
        channel_id: Uuid,
        metadata: Option<Value>,
        external_id: Option<&str>,
    ) -> Result<Conversation> {
        let mut body = json!({"channel_id": channel_id});
        if let Some(m) = metadata {
            body["metadata"] = m;
        }
        if let Some(x) = external_id {
            body["external_id"] = x.into();
        }
        self.send("POST", "/api/v1/conversations", Some(body)).await
    }

    /// `POST /api/v1/tokens`: a client token for `sender` in one
    /// conversation, valid `ttl_seconds` (1–86400; the server's default, one
    /// hour, when `None`).
    pub async fn create_token(&self, conversation_id: Uuid, sender: &str, ttl_seconds: Option<u32>) -> Result<Token> {
        let mut body = json!({"conversation_id": conversation_id, "sender": sender});
        if let Some(ttl) = ttl_seconds {
            body["ttl_seconds"] = ttl.into();
        }
        self.send("POST", "/api/v1/tokens", Some(body)).await
    }

    /// `POST /api/v1/tokens/refresh` with a still-valid `token` (this
    /// client's own credential is not used): the same claims with a new
    /// expiry, for [`crate::Client::reauth`].
    pub async fn refresh_token(&self, token: &str) -> Result<Token> {
        self.send_as(token, "POST", "/api/v1/tokens/refresh", None).await
    }

    /// `POST /api/v1/signing-keys`: a new HS256 key; its `secret` is in this
    /// answer only.
    pub async fn create_signing_key(&self) -> Result<SigningKey> {
        self.send("POST", "/api/v1/signing-keys", None).await
    }

    /// `POST /api/v1/signing-keys {"jwks_url"}`: the tenant's RS256/ES256
    /// keys are published at `jwks_url` (https; fetched once now, so a URL
    /// without a usable key set is refused with `validation_failed`).
    pub async fn register_jwks(&self, jwks_url: &str) -> Result<SigningKey> {
        self.send("POST", "/api/v1/signing-keys", Some(json!({"jwks_url": jwks_url}))).await
    }

    /// `GET /api/v1/signing-keys`: every key of the tenant, oldest first (no secrets).
    pub async fn list_signing_keys(&self) -> Result<Vec<SigningKey>> {
        Ok(self.send::<Listed<SigningKey>>("GET", "/api/v1/signing-keys", None).await?.data)
    }

    /// `DELETE /api/v1/signing-keys/{kid}`: tokens the key signed are refused from now on.
    pub async fn revoke_signing_key(&self, kid: &str) -> Result<()> {
        // A kid is `key_` and base64url: nothing to escape in a path; anything else is no kid.
        if !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(Error::InvalidArgument(format!("{kid:?} is not a signing key id")));
        }
        self.send("DELETE", &format!("/api/v1/signing-keys/{kid}"), None).await
    }

    /// `POST /api/v1/event-endpoints`: the tenant's lifecycle events of
    /// types `events` go to `url`, signed with the returned `secret` (shown
    /// this once). An unknown type is refused with `validation_failed`.
    pub async fn create_event_endpoint(&self, url: &str, events: &[&str]) -> Result<EventEndpoint> {
        self.send("POST", "/api/v1/event-endpoints", Some(json!({"url": url, "events": events}))).await
    }

    /// `GET /api/v1/event-endpoints`: every endpoint of the tenant, oldest first (no secrets).
    pub async fn list_event_endpoints(&self) -> Result<Vec<EventEndpoint>> {
        Ok(self.send::<Listed<EventEndpoint>>("GET", "/api/v1/event-endpoints", None).await?.data)
    }

    /// `PATCH /api/v1/event-endpoints/{id}`: a new `url`, new `events`, or both.
    pub async fn update_event_endpoint(
        &self,
        id: Uuid,
        url: Option<&str>,
        events: Option<&[&str]>,
    ) -> Result<EventEndpoint> {
        let mut body = serde_json::Map::new();
        if let Some(url) = url {
            body.insert("url".into(), json!(url));
        }
        if let Some(events) = events {
            body.insert("events".into(), json!(events));
        }
        self.send("PATCH", &format!("/api/v1/event-endpoints/{id}"), Some(Value::Object(body))).await
    }

    /// `DELETE /api/v1/event-endpoints/{id}`: no new events; its pending ones fail.
    pub async fn delete_event_endpoint(&self, id: Uuid) -> Result<()> {
        self.send("DELETE", &format!("/api/v1/event-endpoints/{id}"), None).await
    }

    /// `GET /api/v1/events?status=…`: the tenant's lifecycle events, oldest
    /// first, at most `limit` (one page), optionally of one `status`
    /// (`pending`, `delivered`, `failed`).
    pub async fn list_events(&self, status: Option<&str>, limit: u32) -> Result<Vec<LifecycleEvent>> {
        let mut path = format!("/api/v1/events?limit={limit}");
        if let Some(status) = status {
            if !status.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(Error::InvalidArgument(format!("{status:?} is not an event status")));
            }
            path.push_str(&format!("&status={status}"));
        }
        Ok(self.send::<Listed<LifecycleEvent>>("GET", &path, None).await?.data)
    }

    /// `GET /api/v1/tenant`: the calling tenant (id, name, status, limits, config).
    pub async fn tenant(&self) -> Result<Value> {
        self.send("GET", "/api/v1/tenant", None).await
    }

    /// `PATCH /api/v1/tenant`: sets the tenant's default pre-publish hook
    /// (`{"url", "timeout_ms"?, "on_failure"?}`, called for conversations
    /// whose channel has no hook of its own), or removes it with `None`;
    /// answers the tenant.
    pub async fn set_default_pre_publish(&self, hook: Option<Value>) -> Result<Value> {
        let config = match hook {
            Some(hook) => json!({"pre_publish": hook}),
            None => json!({}),
        };
        self.send("PATCH", "/api/v1/tenant", Some(json!({"config": config}))).await
    }

    /// `POST /api/v1/conversations/{id}/members`: adds `sender` (or
    /// replaces its role), which writes a `member_joined` activity.
    pub async fn add_member(&self, conversation_id: Uuid, sender: &str, role: Option<&str>) -> Result<Member> {
        let mut body = json!({"sender": sender});
        if let Some(role) = role {
            body["role"] = role.into();
        }
        self.send("POST", &format!("/api/v1/conversations/{conversation_id}/members"), Some(body)).await
    }

    /// `GET /api/v1/conversations/{id}/members/{sender}`: its receipts and unread count.
    pub async fn member(&self, conversation_id: Uuid, sender: &str) -> Result<Member> {
        let sender = sender.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
        self.send("GET", &format!("/api/v1/conversations/{conversation_id}/members/{sender}"), None).await
    }

    /// `GET /api/v1/conversations/{id}/activities?after_seq=&limit=`.
    pub async fn list_activities(&self, conversation_id: Uuid, after_seq: u64, limit: u32) -> Result<ActivityList> {
        let path = format!("/api/v1/conversations/{conversation_id}/activities?after_seq={after_seq}&limit={limit}");
        self.send("GET", &path, None).await
    }

    /// `POST /api/v1/broadcast`: `activity` (a body of `POST …/activities`
    /// without a key) written to each conversation, one result per
    /// conversation in order. With `idempotency_key`, each conversation's
    /// write is keyed `<key>:<conversation id>`: calling again with the same
    /// key writes nothing twice (200 with the original activity).
    pub async fn broadcast(
        &self,
        conversation_ids: &[Uuid],
        activity: Value,
        idempotency_key: Option<&str>,
    ) -> Result<Vec<BroadcastResult>> {
        let mut body = json!({"conversation_ids": conversation_ids, "activity": activity});
        if let Some(key) = idempotency_key {
            body["idempotency_key"] = key.into();
        }
        let answer: BroadcastResults = self.send("POST", "/api/v1/broadcast", Some(body)).await?;
        Ok(answer.results)
    }

    /// `POST /api/v1/conversations/{id}/disconnect`: ends the live following
    /// of the conversation by `sender`'s clients (everyone's when `None`),
    /// telling them `reason`; how many ended on the node that answered.
    pub async fn disconnect(&self, conversation_id: Uuid, sender: Option<&str>, reason: &str) -> Result<u64> {
        let mut body = json!({"reason": reason});
        if let Some(sender) = sender {
            body["sender"] = sender.into();
        }
        let path = format!("/api/v1/conversations/{conversation_id}/disconnect");
        let answer: Disconnected = self.send("POST", &path, Some(body)).await?;
        Ok(answer.disconnected)
    }

    /// `GET /api/v1/conversations/{id}/presence`: who is joined now, by sender.
    pub async fn presence(&self, conversation_id: Uuid) -> Result<Vec<Present>> {
        let answer: PresenceList =
            self.send("GET", &format!("/api/v1/conversations/{conversation_id}/presence"), None).await?;
        Ok(answer.data)
    }

    async fn send<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<Value>) -> Result<T> {
        self.send_as(&self.credential, method, path, body).await
    }

    async fn send_as<T: DeserializeOwned>(
        &self,
        bearer: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<T> {
        let (status, body) = tokio::time::timeout(self.timeout, self.exchange(bearer, method, path, body))
            .await
            .unwrap_or(Err(Error::Timeout(self.timeout)))?;
        if (200..300).contains(&status) {
            // 204 has no body: what answers it is `()`.
            let body = if status == 204 { b"null".to_vec() } else { body };
            return serde_json::from_slice(&body).map_err(|e| Error::Http {
                status,
                body: format!("unexpected answer ({e}): {}", String::from_utf8_lossy(&body)),
            });
        }
        Err(api_error(status, &body))
    }

    /// One request and its whole response body (bounded by [`MAX_RESPONSE`]).
    async fn exchange(&self, bearer: &str, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Vec<u8>)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("bad HTTP method {method:?}")))?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .header(reqwest::header::ACCEPT, "application/json");
        if body.is_some() || method != reqwest::Method::GET {
            let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes);
        }
        let mut response = request.send().await.map_err(|e| transport_error(e, self.timeout))?;
        let status = response.status().as_u16();
        let too_large = || Error::Http { status, body: "response too large".into() };
        if response.content_length().is_some_and(|n| n > MAX_RESPONSE as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(e, self.timeout))? {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// `base_url` checked and normalised: a scheme (`http://` when none is
/// given), a host, an optional path prefix, no trailing slash.
fn parse_base(base_url: &str) -> Result<String> {
    let with_scheme = if base_url.contains("://") { base_url.to_string() } else { format!("http://{base_url}") };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| Error::InvalidArgument(format!("bad base URL {base_url:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidArgument(format!("base URL {base_url:?}: the scheme must be http or https")));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidArgument(format!("no host in {base_url:?}")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidArgument(format!("base URL {base_url:?}: no query or fragment allowed")));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// A failed exchange (no HTTP status): the time limit, a refused or broken
/// connection, a TLS failure. The kind of the underlying I/O error, when
/// there is one, is kept (`ConnectionRefused`, …).
fn transport_error(e: reqwest::Error, timeout: Duration) -> Error {
    if e.is_timeout() {
        return Error::Timeout(timeout);
    }
    if e.is_builder() {
        return Error::InvalidArgument(e.to_string());
    }
    let mut kind = None;
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            kind = Some(io.kind());
            break;
        }
        source = cause.source();
    }
    match kind {
        Some(kind) => Error::Io(Arc::new(std::io::Error::new(kind, e))),
        // Connected, sent, then the connection closed before a whole answer
        // came: the request may or may not have taken effect.
        None if !e.is_connect() && (e.is_request() || e.is_body()) => Error::ConnectionLost,
        None => Error::Io(Arc::new(std::io::Error::other(e))),
    }
}

/// The API's error shape as a [`ServerError`]; anything else as [`Error::Http`].
fn api_error(status: u16, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    let code = error.and_then(|e| e["code"].as_str()).and_then(ErrorCode::from_name);
    match (code, error) {
        (Some(code), Some(e)) => Error::Server(ServerError::new(code, e["message"].as_str().unwrap_or_default())),
        _ => Error::Http { status, body: String::from_utf8_lossy(body).into_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_their_code() {
        let e = api_error(404, br#"{"error":{"code":"not_found","message":"no such conversation"}}"#);
        assert_eq!(e.code(), Some(ErrorCode::NotFound));
        assert!(matches!(api_error(502, b"bad gateway"), Error::Http { status: 502, .. }));
    }

    #[test]
    fn base_urls_parse() {
        assert_eq!(parse_base("http://127.0.0.1:4000").unwrap(), "http://127.0.0.1:4000");
        assert_eq!(parse_base("https://example.com/converger/").unwrap(), "https://example.com/converger");
        assert_eq!(parse_base("example.com:8080").unwrap(), "http://example.com:8080");
        for bad in ["ftp://example.com", "http://", "http://x/?a=1", "https://x/#f"] {
            assert!(matches!(parse_base(bad), Err(Error::InvalidArgument(_))), "{bad}");
        }
    }

    /// An https base URL is accepted and spoken to with TLS: a closed
    /// loopback port is a refused connection (not a refused scheme), and a
    /// loopback listener receives a TLS handshake, not a plain request.
    /// Nothing leaves the machine.
    #[tokio::test]
    async fn https_base_urls_are_used_with_tls() {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let rest = Rest::new(&format!("https://127.0.0.1:{closed}"), "cvg_key").unwrap();
        match rest.create_channel("x", "websocket", json!({})).await {
            Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
            other => panic!("expected a refused connection, got {other:?}"),
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 3];
            stream.read_exact(&mut first).await.unwrap();
            first
        });
        let rest =
            Rest::new(&format!("https://127.0.0.1:{port}"), "cvg_key").unwrap().with_timeout(Duration::from_secs(10));
        let result = rest.list_activities(Uuid::nil(), 0, 10).await;
        // A TLS record: handshake (22), protocol version 3.x.
        assert_eq!(peer.await.unwrap()[..2], [22, 3]);
        assert!(matches!(result, Err(Error::Io(_) | Error::ConnectionLost)), "{result:?}");
    }
}
