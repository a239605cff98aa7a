//! [`Rest`]: the REST calls an integrator makes around the binary protocol
//! (docs/api.md): create a channel and a conversation, issue and refresh
//! client tokens, list a conversation's activities. Errors in the API's
//! `{"error":{"code","message"}}` shape come back as [`Error::Server`] with
//! the catalogue code.

use std::time::Duration;

use converger_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::{Error, Result, ServerError};
use crate::http::{request, BaseUrl};

/// A channel (`POST /api/v1/channels`).
#[derive(Clone, Debug, Deserialize)]
pub struct Channel {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub config: Value,
    pub status: String,
    /// Only in the answer to create (and rotate-secret).
    #[serde(default)]
    pub secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A conversation.
#[derive(Clone, Debug, Deserialize)]
pub struct Conversation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub channel_id: Uuid,
    pub status: String,
    pub metadata: Value,
    pub external_id: Option<String>,
    pub last_seq: u64,
    pub created_at: String,
    pub updated_at: String,
}

/// A client token for one conversation and sender (`POST /api/v1/tokens`).
#[derive(Clone, Debug, Deserialize)]
pub struct Token {
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    pub conversation_id: Uuid,
}

/// An activity as REST shows it (times are RFC 3339, JSON values parsed).
#[derive(Clone, Debug, Deserialize)]
pub struct RestActivity {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub attachments: Option<Value>,
    pub sender: String,
    pub metadata: Value,
    pub idempotency_key: Option<String>,
    pub created_at: String,
}

/// A page of `GET /api/v1/conversations/{id}/activities`.
#[derive(Clone, Debug, Deserialize)]
pub struct ActivityList {
    /// In seq order.
    pub data: Vec<RestActivity>,
    /// The conversation's highest seq.
    pub last_seq: u64,
}

/// REST calls with one credential: a tenant API key (every call), a channel
/// secret (conversations and tokens of its channel), or a client token
/// ([`Rest::refresh_token`]).
#[derive(Clone, Debug)]
pub struct Rest {
    base: BaseUrl,
    credential: String,
    timeout: Duration,
}

impl Rest {
    /// `base_url` is `http://host:port` (plain HTTP, see the crate docs).
    pub fn new(base_url: &str, credential: impl Into<String>) -> Result<Rest> {
        Ok(Rest { base: BaseUrl::parse(base_url)?, credential: credential.into(), timeout: Duration::from_secs(30) })
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

    /// `GET /api/v1/conversations/{id}/activities?after_seq=&limit=`.
    pub async fn list_activities(&self, conversation_id: Uuid, after_seq: u64, limit: u32) -> Result<ActivityList> {
        let path = format!("/api/v1/conversations/{conversation_id}/activities?after_seq={after_seq}&limit={limit}");
        self.send("GET", &path, None).await
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
        let bytes = body.map(|b| b.to_string().into_bytes());
        let response = request(&self.base, method, path, Some(bearer), bytes.as_deref(), self.timeout).await?;
        if (200..300).contains(&response.status) {
            return serde_json::from_slice(&response.body).map_err(|e| Error::Http {
                status: response.status,
                body: format!("unexpected answer ({e}): {}", String::from_utf8_lossy(&response.body)),
            });
        }
        Err(api_error(response.status, &response.body))
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
}
