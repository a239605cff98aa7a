//! `echo`: answers every message in the same conversation with a bot
//! activity carrying the same text (and attachments), written through the
//! normal write path by the delivery worker.
//!
//! Config (all optional): `sender` (default `echo`), the sender id of the
//! replies; `prefix` (default empty), put before the echoed text.
//!
//! A reply carries `metadata.echo_of` (the original's id) and the
//! idempotency key `echo:<original id>`: a repeated delivery writes the reply
//! once, and replies are never echoed (that would loop forever).

use serde_json::{json, Value};

use super::fields::{ChannelConfig, Config, MAX_VALUE_BYTES};
use super::{
    is_inbound, Adapter, AdapterError, ChannelView, ConfigError, Delivery, DeliveryContext, Inbound, InboundError,
    InboundRequest, Reply,
};

pub struct Echo;

/// The metadata key that marks a reply.
pub const ECHO_OF: &str = "echo_of";
const DEFAULT_SENDER: &str = "echo";

pub struct EchoConfig<'a> {
    sender: &'a str,
    prefix: &'a str,
}

impl<'a> ChannelConfig<'a> for EchoConfig<'a> {
    const KEYS: &'static [&'static str] = &["sender", "prefix"];

    fn read(c: &Config<'a>) -> Result<EchoConfig<'a>, ConfigError> {
        let sender = c.string("sender", 200)?.unwrap_or(DEFAULT_SENDER);
        // Not `c.string`, which refuses them: a prefix may be blank or end in a line break.
        let prefix = match c.get("prefix") {
            None => "",
            Some(Value::String(s)) if s.len() <= MAX_VALUE_BYTES => s,
            Some(_) => return Err(ConfigError::new("config.prefix", "must be a string of at most 1024 bytes")),
        };
        Ok(EchoConfig { sender, prefix })
    }
}

impl Adapter for Echo {
    type Config<'a> = EchoConfig<'a>;

    fn kind(&self) -> &'static str {
        "echo"
    }

    fn delivers(&self) -> bool {
        true
    }

    /// It answers messages only: nothing else gets a delivery row.
    fn routes(&self, kind: &str) -> bool {
        kind == "message"
    }

    fn deliver_activity(&self, ctx: &DeliveryContext<'_>) -> Result<Delivery, AdapterError> {
        let config = Self::Config::parse(ctx.channel.config)?;
        let a = ctx.activity;
        let is_reply = a.metadata.as_str().contains(ECHO_OF) && a.metadata.to_value().get(ECHO_OF).is_some();
        if a.kind != "message" || is_reply || is_inbound(a) {
            return Ok(Delivery::Nothing);
        }
        let attachments = a.attachments.as_ref().map(|j| j.to_value());
        if a.text.is_none() && attachments.is_none() {
            return Ok(Delivery::Nothing);
        }
        Ok(Delivery::Reply(Reply {
            kind: "message".into(),
            text: a.text.as_ref().map(|t| format!("{}{t}", config.prefix)),
            attachments,
            sender: config.sender.to_string(),
            metadata: json!({ ECHO_OF: a.id.to_string() }),
            idempotency_key: format!("echo:{}", a.id),
        }))
    }

    fn parse_inbound(&self, _: &InboundRequest, _: &ChannelView<'_>, _: i64) -> Result<Inbound, InboundError> {
        Err(InboundError::NoInbound(self.kind()))
    }
}

#[cfg(test)]
mod tests {
    use converger_storage::Json;
    use serde_json::json;

    use super::*;
    use crate::adapters::tests::{activity, context, view};
    use crate::adapters::ValidateConfig;

    fn reply(config: &Value, a: &converger_storage::Activity) -> Delivery {
        Echo.deliver_activity(&context(config, a, None)).expect("deliver")
    }

    #[test]
    fn config_keys_are_optional_and_checked() {
        assert_eq!(Echo.validate_config(&json!({})), Ok(()));
        assert_eq!(Echo.validate_config(&json!({"sender": "bot", "prefix": "you said: "})), Ok(()));
        let field = |v: Value| Echo.validate_config(&v).expect_err("refused").field;
        assert_eq!(field(json!({"sender": 1})), "config.sender");
        assert_eq!(field(json!({"sender": ""})), "config.sender");
        assert_eq!(field(json!({"prefix": ["x"]})), "config.prefix");
        assert_eq!(field(json!({"k": 1})), "config.k");
        assert_eq!(field(json!("x")), "config");
    }

    #[test]
    fn a_message_is_answered_with_the_same_text_by_a_bot() {
        let a = activity("hello");
        let Delivery::Reply(r) = reply(&json!({}), &a) else { panic!("a reply") };
        assert_eq!(r.text.as_deref(), Some("hello"));
        assert_eq!((r.kind.as_str(), r.sender.as_str()), ("message", "echo"));
        assert_eq!(r.metadata, json!({"echo_of": a.id.to_string()}));
        assert_eq!(r.idempotency_key, format!("echo:{}", a.id));
        let Delivery::Reply(r) = reply(&json!({"sender": "bot", "prefix": "> "}), &a) else { panic!() };
        assert_eq!((r.text.as_deref(), r.sender.as_str()), (Some("> hello"), "bot"));
    }

    #[test]
    fn attachments_are_echoed_too() {
        let mut a = activity("x");
        a.text = None;
        a.attachments = Some(Json::parse(r#"[{"contentType":"image/png","contentUrl":"https://x/y.png"}]"#).unwrap());
        let Delivery::Reply(r) = reply(&json!({}), &a) else { panic!() };
        assert_eq!(r.text, None);
        assert_eq!(r.attachments, Some(json!([{"contentType": "image/png", "contentUrl": "https://x/y.png"}])));
    }

    #[test]
    fn replies_events_and_inbound_activities_are_not_echoed() {
        let mut own = activity("hello");
        own.metadata = Json::parse(r#"{"echo_of":"0190f0f0-0000-7000-8000-000000000000"}"#).unwrap();
        assert_eq!(reply(&json!({}), &own), Delivery::Nothing, "no loop");
        let mut event = activity("x");
        event.kind = "event".into();
        assert_eq!(reply(&json!({}), &event), Delivery::Nothing);
        let mut inbound = activity("x");
        inbound.metadata = Json::parse(r#"{"inbound":{"channel_type":"webhook"}}"#).unwrap();
        assert_eq!(reply(&json!({}), &inbound), Delivery::Nothing);
    }

    #[test]
    fn a_stored_config_that_no_longer_validates_fails_the_delivery() {
        let e = Echo.deliver_activity(&context(&json!({"sender": 3}), &activity("x"), None)).expect_err("bad config");
        assert!(matches!(e, AdapterError::Config(_)));
        assert_eq!(
            Echo.parse_inbound(&InboundRequest::default(), &view(&json!({})), 0),
            Err(InboundError::NoInbound("echo"))
        );
    }
}
