//! `webhook`: every activity is sent to the tenant's URL as JSON, signed per
//! Standard Webhooks ([`super::standard_webhooks`]) with the channel's
//! derived key; the same signature protects the inbound endpoint.
//!
//! Config: `url` (required, http/https), `method` (`POST` default, `PUT`,
//! `PATCH`), `headers` (an object of extra header names to string values;
//! the signing headers, `content-type`, `content-length`, `host`,
//! `connection` and `transfer-encoding` are the adapter's own and refused).
//!
//! Outbound body:
//! `{"type":"<event type>","timestamp":"<RFC 3339>","data":{"channel_id",
//! "conversation_id","external_id","activity":{…the activity as the REST API
//! shows it…}}}`; `webhook-id` is `msg_<delivery id>`, the same on every retry.
//! The event type is `activity.created` for messages and events, and one of
//! its own for each lifecycle kind ([`event_type`]): a receiver written before
//! those kinds existed, which takes every `activity.created` for something
//! new to show, skips them instead of showing an edit or a reaction as a
//! message. A lifecycle activity names its message by `target_id` and never
//! carries that message's content (a delete carries none at all).
//!
//! Inbound body (POST): `{"external_id", "sender", "text"?, "type"?
//! ("message" default, or "event"), "metadata"? (object)}`; the `webhook-id`
//! header is the message id (the activity's idempotency key).

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::fields::{ChannelConfig, Config, MAX_VALUE_BYTES};
use super::standard_webhooks::{self, channel_key};
use super::wire::{json_object, At, MAX_ID_BYTES};
use super::{
    is_inbound, Adapter, AdapterError, ChannelView, ConfigError, Delivery, DeliveryContext, Events, Inbound,
    InboundError, InboundMessage, InboundRequest, OutboundRequest,
};
use converger_storage::{kinds, Activity, Timestamp};

pub struct Webhook;

const METHODS: &[&str] = &["POST", "PUT", "PATCH"];
/// Headers the adapter sets itself (or the HTTP client does).
const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
];
const MAX_HEADERS: usize = 32;
/// The event type of messages, events and any other activity without one of its own.
pub const EVENT_TYPE: &str = "activity.created";

/// The event type (`type` of the body) of an activity of type `kind`.
pub fn event_type(kind: &str) -> &'static str {
    match kind {
        kinds::EDIT => "message.edited",
        kinds::DELETE => "message.deleted",
        kinds::REACTION_ADD => "reaction.added",
        kinds::REACTION_REMOVE => "reaction.removed",
        kinds::MEMBER_JOINED => "member.joined",
        kinds::MEMBER_LEFT => "member.left",
        _ => EVENT_TYPE,
    }
}

pub struct WebhookConfig<'a> {
    url: &'a str,
    method: &'a str,
    headers: Vec<(String, String)>,
}

impl<'a> ChannelConfig<'a> for WebhookConfig<'a> {
    const KEYS: &'static [&'static str] = &["url", "method", "headers"];

    fn read(c: &Config<'a>) -> Result<WebhookConfig<'a>, ConfigError> {
        let url = c.url("url")?.ok_or_else(|| ConfigError::new("config.url", "is required"))?;
        let method = c.string("method", 16)?.unwrap_or("POST");
        if !METHODS.contains(&method) {
            return Err(ConfigError::new("config.method", format!("must be one of {}", METHODS.join(", "))));
        }
        let mut headers = Vec::new();
        for (name, value) in c.object("headers")?.into_iter().flatten() {
            let field = || format!("config.headers.{name}");
            if !is_token(name) {
                return Err(ConfigError::new(field(), "is not a valid header name"));
            }
            if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                return Err(ConfigError::new(field(), "is set by Converger and cannot be configured"));
            }
            let Some(value) = value.as_str() else { return Err(ConfigError::new(field(), "must be a string")) };
            if value.len() > MAX_VALUE_BYTES || value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(ConfigError::new(field(), "must be at most 1024 bytes, without line breaks"));
            }
            headers.push((name.clone(), value.to_string()));
        }
        if headers.len() > MAX_HEADERS {
            return Err(ConfigError::new("config.headers", format!("at most {MAX_HEADERS} headers")));
        }
        Ok(WebhookConfig { url, method, headers })
    }
}

/// An HTTP token (RFC 9110): the characters a header name may have.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The outbound event: serialized straight from the stored activity (its
/// JSON columns copied as stored, never re-parsed into values).
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    data: EventData<'a>,
}

#[derive(Serialize)]
struct EventData<'a> {
    channel_id: String,
    conversation_id: String,
    external_id: Option<&'a str>,
    activity: &'a Activity,
}

/// The outbound JSON body of one delivery.
fn body(ctx: &DeliveryContext<'_>) -> Result<Vec<u8>, AdapterError> {
    let a = ctx.activity;
    let event = Event {
        kind: event_type(&a.kind),
        timestamp: Timestamp::from_micros(ctx.now.saturating_mul(1_000_000)).to_string(),
        data: EventData {
            channel_id: ctx.channel.id.to_string(),
            conversation_id: a.conversation_id.to_string(),
            external_id: ctx.external_id,
            activity: a,
        },
    };
    serde_json::to_vec(&event).map_err(|e| AdapterError::Unsupported(format!("the activity cannot be encoded: {e}")))
}

impl Adapter for Webhook {
    type Config<'a> = WebhookConfig<'a>;

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn delivers(&self) -> bool {
        true
    }

    fn deliver_activity(&self, ctx: &DeliveryContext<'_>) -> Result<Delivery, AdapterError> {
        let config = Self::Config::parse(ctx.channel.config)?;
        if is_inbound(ctx.activity) {
            return Ok(Delivery::Nothing);
        }
        let body = body(ctx)?;
        let id = format!("msg_{}", ctx.delivery_id);
        let key = channel_key(ctx.channel.secret);
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(config.headers);
        headers.extend(standard_webhooks::headers(&key, &id, ctx.now, &body));
        Ok(Delivery::Http(OutboundRequest { method: config.method.into(), url: config.url.into(), headers, body }))
    }

    fn parse_inbound(
        &self,
        req: &InboundRequest,
        channel: &ChannelView<'_>,
        now: i64,
    ) -> Result<Inbound, InboundError> {
        Self::Config::parse(channel.config)?;
        if req.method != "POST" {
            return Err(InboundError::MethodNotAllowed { method: req.method.clone(), allow: "POST" });
        }
        standard_webhooks::verify(&channel_key(channel.secret), &req.headers, &req.body, now)
            .map_err(|e| InboundError::Unauthorized(format!("bad Standard Webhooks signature: {e}")))?;
        // verify() saw the header: it is there and non-empty.
        let message_id = req.header("webhook-id").unwrap_or_default().to_string();
        if message_id.len() > MAX_ID_BYTES {
            return Err(InboundError::invalid("webhook-id", format!("must be at most {MAX_ID_BYTES} bytes")));
        }
        let map = json_object(&req.body)?;
        let root = Value::Object(map);
        let at = At::new("", &root)?;
        for key in at.map.keys() {
            if !["external_id", "sender", "text", "type", "metadata"].contains(&key.as_str()) {
                return Err(InboundError::invalid(key.clone(), "unknown field"));
            }
        }
        let kind = at.opt_str("type")?.unwrap_or("message");
        if kind != "message" && kind != "event" {
            return Err(InboundError::invalid("type", "must be `message` or `event`"));
        }
        let text = at.opt_str("text")?.map(str::to_string);
        if kind == "message" && text.as_deref().is_none_or(str::is_empty) {
            return Err(InboundError::invalid("text", "a message needs a non-empty `text`"));
        }
        let mut metadata = match at.get("metadata") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(InboundError::invalid("metadata", "must be a JSON object")),
        };
        metadata.insert("inbound".into(), json!({"channel_type": "webhook", "message_id": message_id}));
        let message = InboundMessage {
            external_id: at.id("external_id", MAX_ID_BYTES)?.to_string(),
            message_id,
            sender: at.id("sender", MAX_ID_BYTES)?.to_string(),
            kind: kind.to_string(),
            text,
            metadata: Value::Object(metadata),
        };
        Ok(Inbound::Events(Events { messages: vec![message], ..Events::default() }))
    }
}

#[cfg(test)]
mod tests;
