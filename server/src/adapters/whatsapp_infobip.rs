//! `whatsapp_infobip`: WhatsApp through Infobip.
//!
//! Config: `api_key` (required), `sender` (required: the WhatsApp number,
//! digits), `base_url` (default `https://api.infobip.com`; Infobip gives each
//! account its own), `notify_url` (optional: where Infobip sends delivery
//! reports for these messages; otherwise the account's default).
//!
//! Outbound: `POST {base_url}/whatsapp/1/message/text` with
//! `Authorization: App <api_key>`, for messages only (other kinds are not
//! routed here); the message's `messageId` is the delivery id. Infobip's answer echoes it and it is kept as `provider_message_id`,
//! which Infobip's reports name: they find their delivery by it, as Meta's do
//! by the wamid.
//!
//! Inbound: `POST` of `{"results":[…]}` holding incoming messages (with
//! `message`), delivery reports (with `status`) and seen reports (with
//! `seenAt`). Infobip signs nothing, so every request must carry the channel
//! secret, in the URL (`…/inbound/<secret>`) or the `X-Converger-Secret` header.

use serde_json::{json, Map, Value};

use super::fields::{ChannelConfig, Config, MAX_VALUE_BYTES};
use super::whatsapp_meta::whatsapp_outbound;
use super::wire::{check_channel_secret, classify, join_url, json_object, short, At, MAX_ID_BYTES};
use super::{
    Adapter, AdapterError, ChannelView, ConfigError, Delivery, DeliveryContext, Events, Inbound, InboundError,
    InboundMessage, InboundRequest, OutboundRequest, ResponseOutcome, StatusUpdate, PROVIDER_MESSAGE_ID,
};
use converger_storage::Timestamp;

pub struct WhatsAppInfobip;

pub const DEFAULT_BASE_URL: &str = "https://api.infobip.com";
pub const SEND_PATH: &str = "/whatsapp/1/message/text";

pub struct InfobipConfig<'a> {
    base_url: &'a str,
    api_key: &'a str,
    sender: &'a str,
    notify_url: Option<&'a str>,
}

impl<'a> ChannelConfig<'a> for InfobipConfig<'a> {
    const KEYS: &'static [&'static str] = &["base_url", "api_key", "sender", "notify_url"];

    fn read(c: &Config<'a>) -> Result<InfobipConfig<'a>, ConfigError> {
        Ok(InfobipConfig {
            base_url: c.url("base_url")?.unwrap_or(DEFAULT_BASE_URL),
            api_key: c.required_string("api_key", MAX_VALUE_BYTES)?,
            sender: c.digits("sender")?,
            notify_url: c.url("notify_url")?,
        })
    }
}

impl Adapter for WhatsAppInfobip {
    type Config<'a> = InfobipConfig<'a>;

    fn kind(&self) -> &'static str {
        "whatsapp_infobip"
    }

    fn delivers(&self) -> bool {
        true
    }

    /// Text messages only: Converger sends Infobip's documented text message
    /// and nothing else (no reaction or reply-context request of Infobip's is
    /// one Converger has verified), so reactions, edits, deletes, member
    /// changes and events get no delivery row; a reply goes as plain text.
    fn routes(&self, kind: &str) -> bool {
        kind == converger_storage::kinds::MESSAGE
    }

    fn contact_receipts(&self) -> bool {
        true
    }

    fn deliver_activity(&self, ctx: &DeliveryContext<'_>) -> Result<Delivery, AdapterError> {
        let config = Self::Config::parse(ctx.channel.config)?;
        let Some((text, to)) = whatsapp_outbound(ctx)? else { return Ok(Delivery::Nothing) };
        let mut body = json!({
            "from": config.sender,
            "to": to,
            "messageId": ctx.delivery_id.to_string(),
            "content": {"text": text},
            "callbackData": ctx.delivery_id.to_string(),
        });
        if let Some(url) = config.notify_url {
            body["notifyUrl"] = json!(url);
        }
        Ok(Delivery::Http(OutboundRequest {
            method: "POST".into(),
            url: join_url(config.base_url, SEND_PATH),
            headers: vec![
                ("authorization".into(), format!("App {}", config.api_key)),
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: body.to_string().into_bytes(),
        }))
    }

    fn interpret_response(&self, status: u16, body: &[u8]) -> ResponseOutcome {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let exception = &parsed["requestError"]["serviceException"];
        if !(200..300).contains(&status) && exception.is_object() {
            let id = exception["messageId"].as_str().unwrap_or("error");
            let error = short(&format!("HTTP {status}: {id}: {}", exception["text"].as_str().unwrap_or("")));
            let retry = super::wire::retryable_status(status);
            return if retry { ResponseOutcome::Retry { error } } else { ResponseOutcome::Failed { error } };
        }
        if (200..300).contains(&status) && parsed["status"]["groupName"] == "REJECTED" {
            let s = &parsed["status"];
            let detail = s["description"].as_str().or(s["name"].as_str()).unwrap_or("rejected");
            return ResponseOutcome::Failed { error: short(&format!("rejected by Infobip: {detail}")) };
        }
        classify(status, body, |v| {
            let mut m = Map::new();
            if let Some(id) = v["messageId"].as_str() {
                m.insert(PROVIDER_MESSAGE_ID.into(), json!(id));
            }
            if let Some(name) = v["status"]["name"].as_str() {
                m.insert("provider_status_detail".into(), json!(name));
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
        Self::Config::parse(channel.config)?;
        if req.method != "POST" {
            return Err(InboundError::MethodNotAllowed { method: req.method.clone(), allow: "POST" });
        }
        check_channel_secret(req, channel)?;
        let root = Value::Object(json_object(&req.body)?);
        let root = At::new("", &root)?;
        if root.get("results").is_none() {
            return Err(InboundError::invalid("results", "is required (an array)"));
        }
        let mut events = Events::default();
        for (i, item) in root.array("results")?.iter().enumerate() {
            let r = root.item("results", i, item)?;
            if r.get("message").is_some() {
                events.messages.push(message(&r, item)?);
            } else if r.get("status").is_some() {
                match delivery_report(&r)? {
                    Some(s) => events.statuses.push(s),
                    None => events.ignored += 1,
                }
            } else if r.get("seenAt").is_some() {
                let at = r.opt_str("seenAt")?.and_then(parse_time);
                let id = r.id("messageId", MAX_ID_BYTES)?.to_string();
                events.statuses.push(StatusUpdate {
                    provider_message_id: id,
                    status: "read",
                    at,
                    error: None,
                    detail: None,
                });
            } else {
                return Err(InboundError::invalid(
                    r.path,
                    "is neither a message (`message`), a delivery report (`status`) nor a seen report (`seenAt`)",
                ));
            }
        }
        Ok(Inbound::Events(events))
    }
}

/// An incoming message: TEXT becomes a message, anything else an event carrying the whole item.
fn message(r: &At<'_>, item: &Value) -> Result<InboundMessage, InboundError> {
    let from = r.id("from", MAX_ID_BYTES)?;
    let id = r.id("messageId", MAX_ID_BYTES)?;
    let body =
        r.child("message")?.ok_or_else(|| InboundError::invalid(format!("{}.message", r.path), "is required"))?;
    let kind = body.str("type")?;
    let text = match kind {
        "TEXT" => Some(body.str("text")?.to_string()),
        _ => None,
    };
    let mut inbound = Map::new();
    inbound.insert("channel_type".into(), json!("whatsapp_infobip"));
    inbound.insert("message_id".into(), json!(id));
    inbound.insert("type".into(), json!(kind));
    if let Some(name) = r.child("contact")?.map(|c| c.opt_str("name")).transpose()?.flatten() {
        inbound.insert("profile_name".into(), json!(name));
    }
    for (key, to) in [("receivedAt", "received_at"), ("to", "to")] {
        if let Some(v) = r.opt_str(key)? {
            inbound.insert(to.into(), json!(v));
        }
    }
    if text.is_none() {
        inbound.insert("payload".into(), item.clone());
    }
    Ok(InboundMessage {
        external_id: from.to_string(),
        message_id: id.to_string(),
        sender: from.to_string(),
        kind: if text.is_some() { "message" } else { "event" }.into(),
        text,
        metadata: json!({ "inbound": inbound }),
    })
}

/// A delivery report, normalised; `None` for a status group a delivery does not track.
fn delivery_report(r: &At<'_>) -> Result<Option<StatusUpdate>, InboundError> {
    let id = r.id("messageId", MAX_ID_BYTES)?;
    let status =
        r.child("status")?.ok_or_else(|| InboundError::invalid(format!("{}.status", r.path), "is required"))?;
    let normalised = match status.str("groupName")? {
        "PENDING" => "sent",
        "DELIVERED" => "delivered",
        "UNDELIVERABLE" | "EXPIRED" | "REJECTED" => "failed",
        _ => return Ok(None),
    };
    let at = r.opt_str("doneAt")?.or(r.opt_str("sentAt")?).and_then(parse_time);
    let error = match r.child("error")? {
        Some(e) if e.opt_str("groupName")?.is_some_and(|g| g != "OK") => {
            let name = e.opt_str("name")?.unwrap_or("ERROR");
            Some(short(&format!("{name}: {}", e.opt_str("description")?.unwrap_or(""))))
        }
        _ if normalised == "failed" => status.opt_str("description")?.map(short),
        _ => None,
    };
    let detail = status.opt_str("name")?.map(str::to_string);
    Ok(Some(StatusUpdate { provider_message_id: id.into(), status: normalised, at, error, detail }))
}

/// Infobip's times (`2019-07-19T11:23:26.998+0000`: no colon in the offset).
fn parse_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let n = b.len();
    if n > 5 && matches!(b[n - 5], b'+' | b'-') && b[n - 4..].iter().all(u8::is_ascii_digit) {
        return Timestamp::parse_rfc3339(&format!("{}:{}", &s[..n - 2], &s[n - 2..]));
    }
    Timestamp::parse_rfc3339(s)
}

#[cfg(test)]
mod tests;
