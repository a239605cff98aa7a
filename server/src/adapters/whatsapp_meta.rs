//! `whatsapp_meta`: the WhatsApp Cloud API (Meta Graph API).
//!
//! Config: `phone_number_id` (required, digits), `access_token` (required),
//! `verify_token` (required: Meta's GET verification), `app_secret`
//! (optional: checks `X-Hub-Signature-256`), `api_base` (default
//! `https://graph.facebook.com`), `api_version` (default `v18.0`).
//!
//! Outbound: a text message to the conversation's `external_id` (the
//! customer's wa_id): `POST {api_base}/{api_version}/{phone_number_id}/messages`
//! with `Authorization: Bearer <access_token>`. The answer's
//! `messages[0].id` (the wamid) is kept as the delivery's
//! `provider_message_id`, which status webhooks name. A reply
//! (`parent_id`) carries `context.message_id`, the parent's wamid, when the
//! parent came from or went to WhatsApp; `reaction_add` / `reaction_remove`
//! become reaction messages on their target's wamid (removal: an empty
//! emoji) and wait while the target's own delivery is pending. Edits,
//! deletes, member changes and events are not routed here at all.
//!
//! Inbound: `GET` with `hub.mode=subscribe`, `hub.verify_token` and
//! `hub.challenge` answers the challenge; `POST` carries messages and
//! statuses. With `app_secret` set, a POST must carry
//! `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>`;
//! without it, the channel secret (path or `X-Converger-Secret`), so an
//! unconfigured channel is never open to anyone who knows its id. Changes
//! for another phone number of the same app are skipped.

use serde_json::{json, Map, Value};

use super::fields::{ChannelConfig, Config, MAX_VALUE_BYTES};
use super::wire::{
    check_channel_secret, classify, hmac_sha256, join_url, json_object, query_param, short, unhex, At, MAX_ID_BYTES,
};
use super::{
    is_inbound, Adapter, AdapterError, ChannelView, ConfigError, Delivery, DeliveryContext, Events, Inbound,
    InboundError, InboundMessage, InboundRequest, OutboundRequest, Related, ResponseOutcome, StatusUpdate,
    PROVIDER_MESSAGE_ID,
};
use converger_storage::{kinds, Timestamp};
use hmac::Mac;

pub struct WhatsAppMeta;

pub const DEFAULT_API_BASE: &str = "https://graph.facebook.com";
pub const DEFAULT_API_VERSION: &str = "v18.0";
/// Why a reaction or reply waits: the message it names is still being sent.
const NOT_YET: &str = "waiting for the message it names to be delivered to WhatsApp (its wamid is not known yet)";
/// The Cloud API's limit on a text message body, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Graph API error codes that mean "later" whatever the HTTP status: 1 unknown
/// / 2 service temporarily unavailable, 4 and 80007 rate limits, 130429
/// throughput, 131016 service unavailable, 131056 pair rate limit, 133004
/// server temporarily unavailable (Meta's error-code reference).
const RETRYABLE_CODES: &[i64] = &[1, 2, 4, 80007, 130429, 131016, 131056, 133004];

pub struct MetaConfig<'a> {
    phone_number_id: &'a str,
    access_token: &'a str,
    verify_token: &'a str,
    app_secret: Option<&'a str>,
    api_base: &'a str,
    api_version: &'a str,
}

impl<'a> ChannelConfig<'a> for MetaConfig<'a> {
    const KEYS: &'static [&'static str] =
        &["phone_number_id", "access_token", "verify_token", "app_secret", "api_base", "api_version"];

    fn read(c: &Config<'a>) -> Result<MetaConfig<'a>, ConfigError> {
        let api_version = c.string("api_version", 16)?.unwrap_or(DEFAULT_API_VERSION);
        let well_formed = api_version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| [a, b].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
        if !well_formed {
            return Err(ConfigError::new("config.api_version", "must look like `v18.0`"));
        }
        Ok(MetaConfig {
            phone_number_id: c.digits("phone_number_id")?,
            access_token: c.required_string("access_token", 4096)?,
            verify_token: c.required_string("verify_token", MAX_VALUE_BYTES)?,
            app_secret: c.string("app_secret", MAX_VALUE_BYTES)?,
            api_base: c.url("api_base")?.unwrap_or(DEFAULT_API_BASE),
            api_version,
        })
    }
}

impl Adapter for WhatsAppMeta {
    type Config<'a> = MetaConfig<'a>;

    fn kind(&self) -> &'static str {
        "whatsapp_meta"
    }

    fn delivers(&self) -> bool {
        true
    }

    /// Messages, and reactions (Meta's reaction messages). Edits, deletes and
    /// member changes have no Cloud API equivalent, events no WhatsApp form:
    /// they get no delivery row.
    fn routes(&self, kind: &str) -> bool {
        matches!(kind, kinds::MESSAGE | kinds::REACTION_ADD | kinds::REACTION_REMOVE)
    }

    /// A reaction names its message by wamid, and so may a reply.
    fn needs_related(&self) -> bool {
        true
    }

    fn contact_receipts(&self) -> bool {
        true
    }

    fn deliver_activity(&self, ctx: &DeliveryContext<'_>) -> Result<Delivery, AdapterError> {
        let config = Self::Config::parse(ctx.channel.config)?;
        let a = ctx.activity;
        let body = match a.kind.as_str() {
            kinds::MESSAGE => {
                let Some((text, to)) = whatsapp_outbound(ctx)? else { return Ok(Delivery::Nothing) };
                let mut body = json!({
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": to,
                    "type": "text",
                    "text": {"preview_url": false, "body": text},
                });
                // A reply quotes its parent when WhatsApp knows it; one whose
                // parent never reached WhatsApp still goes, unquoted.
                match ctx.related {
                    Related::Sent(id) => body["context"] = json!({"message_id": id}),
                    Related::Pending => return Ok(Delivery::NotYet(NOT_YET.into())),
                    Related::None | Related::Missing => {}
                }
                body
            }
            kinds::REACTION_ADD | kinds::REACTION_REMOVE if !is_inbound(a) => {
                let to = ctx.external_id.filter(|s| !s.is_empty()).ok_or(AdapterError::NoRecipient)?;
                let message_id = match ctx.related {
                    Related::Sent(id) => id,
                    Related::Pending => return Ok(Delivery::NotYet(NOT_YET.into())),
                    Related::None | Related::Missing => {
                        return Err(AdapterError::Unsupported(
                            "the message reacted to has no WhatsApp message id (it was neither received from nor \
                             delivered to WhatsApp through this channel)"
                                .into(),
                        ))
                    }
                };
                // Removal is an empty emoji: WhatsApp keeps one reaction per sender.
                let emoji = if a.kind == kinds::REACTION_ADD { a.text.as_deref().unwrap_or_default() } else { "" };
                json!({
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": to,
                    "type": "reaction",
                    "reaction": {"message_id": message_id, "emoji": emoji},
                })
            }
            _ => return Ok(Delivery::Nothing),
        };
        let path = format!("/{}/{}/messages", config.api_version, config.phone_number_id);
        Ok(Delivery::Http(OutboundRequest {
            method: "POST".into(),
            url: join_url(config.api_base, &path),
            headers: vec![
                ("authorization".into(), format!("Bearer {}", config.access_token)),
                ("content-type".into(), "application/json".into()),
            ],
            body: body.to_string().into_bytes(),
        }))
    }

    fn interpret_response(&self, status: u16, body: &[u8]) -> ResponseOutcome {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let error = &parsed["error"];
        if !(200..300).contains(&status) && error.is_object() {
            let code = error["code"].as_i64();
            let mut detail = match code {
                Some(code) => format!("code {code}: {}", error["message"].as_str().unwrap_or("")),
                None => error["message"].as_str().unwrap_or("").to_string(),
            };
            if let Some(details) = error["error_data"]["details"].as_str() {
                detail = format!("{detail} ({details})");
            }
            let error = short(&format!("HTTP {status}: {detail}"));
            let retry = super::wire::retryable_status(status) || code.is_some_and(|c| RETRYABLE_CODES.contains(&c));
            return if retry { ResponseOutcome::Retry { error } } else { ResponseOutcome::Failed { error } };
        }
        classify(status, body, |v| {
            let mut m = Map::new();
            if let Some(id) = v["messages"][0]["id"].as_str() {
                m.insert(PROVIDER_MESSAGE_ID.into(), json!(id));
            }
            if let Some(wa_id) = v["contacts"][0]["wa_id"].as_str() {
                m.insert("wa_id".into(), json!(wa_id));
            }
            m
        })
    }

    fn parse_inbound(
        &self,
        req: &InboundRequest,
        channel: &ChannelView<'_>,
        _now: i64,
    ) -> Result<Inbound, InboundError> {
        let config = Self::Config::parse(channel.config)?;
        match req.method.as_str() {
            "GET" => verification(req, &config),
            "POST" => {
                match config.app_secret {
                    Some(app_secret) => check_signature(req, app_secret)?,
                    None => check_channel_secret(req, channel)?,
                }
                parse_events(&req.body, config.phone_number_id).map(Inbound::Events)
            }
            other => Err(InboundError::MethodNotAllowed { method: other.into(), allow: "GET, POST" }),
        }
    }
}

/// What a WhatsApp adapter sends for `ctx`: the text and the recipient, or
/// `None` when there is nothing to send (not a message, or it came in through
/// this channel).
pub(crate) fn whatsapp_outbound<'a>(ctx: &DeliveryContext<'a>) -> Result<Option<(&'a str, &'a str)>, AdapterError> {
    let a = ctx.activity;
    if a.kind != "message" || is_inbound(a) {
        return Ok(None);
    }
    let text = whatsapp_text(a)?;
    let to = ctx.external_id.filter(|s| !s.is_empty()).ok_or(AdapterError::NoRecipient)?;
    Ok(Some((text, to)))
}

/// The text of a message activity, as WhatsApp takes it.
fn whatsapp_text(a: &converger_storage::Activity) -> Result<&str, AdapterError> {
    let text = a.text.as_deref().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
        AdapterError::Unsupported("WhatsApp delivery sends text only, and this message has none".into())
    })?;
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(AdapterError::Unsupported(format!("WhatsApp takes at most {MAX_TEXT_CHARS} characters of text")));
    }
    Ok(text)
}

/// Meta's subscription check: the challenge if mode and token are right.
fn verification(req: &InboundRequest, config: &MetaConfig<'_>) -> Result<Inbound, InboundError> {
    let q = req.query.as_deref();
    let param = |name: &str| {
        query_param(q, name)?.ok_or_else(|| InboundError::BadRequest(format!("missing query parameter `{name}`")))
    };
    let mode = param("hub.mode")?;
    let token = param("hub.verify_token")?;
    let challenge = param("hub.challenge")?;
    if mode != "subscribe" {
        return Err(InboundError::BadRequest(format!("`hub.mode` must be `subscribe`, not `{}`", short(&mode))));
    }
    if !crate::auth::ct::eq(token.as_bytes(), config.verify_token.as_bytes()) {
        return Err(InboundError::Forbidden("`hub.verify_token` does not match the channel's verify_token".into()));
    }
    Ok(Inbound::Challenge(challenge))
}

/// `X-Hub-Signature-256: sha256=<hex>` over the raw body, in constant time.
fn check_signature(req: &InboundRequest, app_secret: &str) -> Result<(), InboundError> {
    let header = req
        .header(SIGNATURE_HEADER)
        .ok_or_else(|| InboundError::Unauthorized("missing X-Hub-Signature-256 header".into()))?;
    let signature = header
        .strip_prefix("sha256=")
        .and_then(unhex)
        .ok_or_else(|| InboundError::Unauthorized("X-Hub-Signature-256 is not `sha256=<hex>`".into()))?;
    hmac_sha256(app_secret.as_bytes(), &[&req.body])
        .verify_slice(&signature)
        .map_err(|_| InboundError::Unauthorized("X-Hub-Signature-256 does not match the body".into()))
}

/// The messages and statuses of a webhook for phone number `ours`.
fn parse_events(body: &[u8], ours: &str) -> Result<Events, InboundError> {
    let root = Value::Object(json_object(body)?);
    let root = At::new("", &root)?;
    if root.str("object")? != "whatsapp_business_account" {
        return Err(InboundError::invalid("object", "must be `whatsapp_business_account`"));
    }
    let mut events = Events::default();
    for (i, entry) in root.array("entry")?.iter().enumerate() {
        let entry = root.item("entry", i, entry)?;
        for (j, change) in entry.array("changes")?.iter().enumerate() {
            let change = entry.item("changes", j, change)?;
            let Some(value) = change.child("value")? else {
                return Err(InboundError::invalid(format!("{}.value", change.path), "is required"));
            };
            let phone = value.child("metadata")?.map(|m| m.opt_str("phone_number_id")).transpose()?.flatten();
            if change.opt_str("field")? != Some("messages") || phone.is_some_and(|p| p != ours) {
                events.ignored += 1;
                continue;
            }
            parse_value(&value, &mut events)?;
        }
    }
    Ok(events)
}

fn parse_value(value: &At<'_>, events: &mut Events) -> Result<(), InboundError> {
    let mut names = Map::new();
    for (k, contact) in value.array("contacts")?.iter().enumerate() {
        let contact = value.item("contacts", k, contact)?;
        let name = contact.child("profile")?.map(|p| p.opt_str("name")).transpose()?.flatten();
        if let (Some(wa_id), Some(name)) = (contact.opt_str("wa_id")?, name) {
            names.insert(wa_id.to_string(), json!(name));
        }
    }
    for (k, message) in value.array("messages")?.iter().enumerate() {
        let m = value.item("messages", k, message)?;
        let from = m.id("from", MAX_ID_BYTES)?;
        let id = m.id("id", MAX_ID_BYTES)?;
        let kind = m.str("type")?;
        let text = match kind {
            "text" => Some(m.child("text")?.ok_or_else(|| missing(&m, "text"))?.str("body")?.to_string()),
            _ => None,
        };
        let mut inbound = Map::new();
        inbound.insert("channel_type".into(), json!("whatsapp_meta"));
        inbound.insert("message_id".into(), json!(id));
        inbound.insert("type".into(), json!(kind));
        if let Some(name) = names.get(from) {
            inbound.insert("profile_name".into(), name.clone());
        }
        if let Some(ts) = m.opt_str("timestamp")? {
            inbound.insert("timestamp".into(), json!(ts));
        }
        if text.is_none() {
            // Media, locations, button replies …: kept whole, for whoever reads the event.
            inbound.insert("payload".into(), message.clone());
        }
        events.messages.push(InboundMessage {
            external_id: from.to_string(),
            message_id: id.to_string(),
            sender: from.to_string(),
            kind: if text.is_some() { "message" } else { "event" }.into(),
            text,
            metadata: json!({ "inbound": inbound }),
        });
    }
    for (k, status) in value.array("statuses")?.iter().enumerate() {
        let s = value.item("statuses", k, status)?;
        let id = s.id("id", MAX_ID_BYTES)?;
        let status = match s.str("status")? {
            "sent" => "sent",
            "delivered" => "delivered",
            "read" => "read",
            "failed" => "failed",
            _ => {
                // `deleted`, `warning` …: nothing a delivery tracks.
                events.ignored += 1;
                continue;
            }
        };
        let at = s.opt_str("timestamp")?.and_then(|t| t.parse::<i64>().ok()).map(unix_seconds);
        let error = s.array("errors")?.first().map(meta_error);
        events.statuses.push(StatusUpdate { provider_message_id: id.into(), status, at, error, detail: None });
    }
    Ok(())
}

fn missing(at: &At<'_>, key: &str) -> InboundError {
    InboundError::invalid(format!("{}.{key}", at.path), "is required")
}

/// `131047: Re-engagement message (details)` from one `errors[]` item.
fn meta_error(e: &Value) -> String {
    let code = e["code"].as_i64().map(|c| c.to_string()).unwrap_or_default();
    let title = e["title"].as_str().or(e["message"].as_str()).unwrap_or("error");
    let mut s = if code.is_empty() { title.to_string() } else { format!("{code}: {title}") };
    if let Some(details) = e["error_data"]["details"].as_str() {
        s = format!("{s} ({details})");
    }
    short(&s)
}

pub(crate) fn unix_seconds(secs: i64) -> Timestamp {
    Timestamp::from_micros(secs.saturating_mul(1_000_000))
}

#[cfg(test)]
mod tests;
