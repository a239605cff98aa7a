//! Channel adapters: what each channel type (`echo`, `websocket`, `webhook`,
//! `whatsapp_meta`, `whatsapp_infobip`) does with a channel's config, an
//! outbound activity and an inbound HTTP request.
//!
//! This module is pure: no I/O, no clock, no runtime. An adapter turns
//! inputs into descriptions and the caller acts on them:
//!
//! - **config**: each adapter declares its [`Adapter::Config`] type; a config
//!   that does not parse into it is refused naming the offending key as
//!   `config.<key>` ([`ValidateConfig::validate_config`], which channel create
//!   and update call through `service::channels::validate_config`);
//! - **outbound**: the delivery worker claims a delivery row, builds a
//!   [`DeliveryContext`] and calls [`Adapter::deliver_activity`], which answers
//!   [`Delivery::Http`] (the exact request to send), [`Delivery::Reply`] (an
//!   activity to write back into the conversation, for `echo`) or
//!   [`Delivery::Nothing`]. The worker sends the request, hands the answer to
//!   [`Adapter::interpret_response`] and records the [`ResponseOutcome`] with
//!   the retry schedule of `crate::delivery::retry`;
//! - **inbound**: the endpoint `…/channels/{id}/inbound[/{secret}]` packs the
//!   request into an [`InboundRequest`] and calls [`Adapter::parse_inbound`],
//!   which verifies it first (signature or channel secret, in constant time)
//!   and then answers a [`Inbound::Challenge`] to echo as text/plain, or
//!   [`Inbound::Events`]: messages to write (each with its provider message id,
//!   the activity's idempotency key) and status reports to merge into the
//!   matching delivery, or an [`InboundError`] saying what was wrong (the
//!   service layer answers it with an HTTP status).
//!
//! Invariant: an activity that came in through a channel is never delivered
//! back out through it ([`is_inbound`]); the echo adapter never echoes its own
//! replies.

mod echo;
mod fields;
pub mod lifecycle_events;
pub(crate) use fields::check_url;
pub mod pre_publish;
pub mod standard_webhooks;
mod webhook;
mod websocket;
mod whatsapp_infobip;
mod whatsapp_meta;
mod wire;

use converger_storage::{Activity, Channel, Id, Timestamp};
use serde_json::{json, Map, Value};

pub use echo::Echo;
use fields::ChannelConfig;
pub use fields::ConfigError;
pub use webhook::Webhook;
pub use websocket::WebSocket;
pub use whatsapp_infobip::WhatsAppInfobip;
pub use whatsapp_meta::WhatsAppMeta;
pub use wire::SECRET_HEADER;

/// Every channel type, in the order the API lists them.
pub const KINDS: &[&str] = &["echo", "webhook", "websocket", "whatsapp_meta", "whatsapp_infobip"];

/// The adapter of a channel type; `None` for an unknown type.
pub fn adapter_for(kind: &str) -> Option<&'static dyn Adapter> {
    static ECHO: Echo = Echo;
    static WEBHOOK: Webhook = Webhook;
    static WEBSOCKET: WebSocket = WebSocket;
    static META: WhatsAppMeta = WhatsAppMeta;
    static INFOBIP: WhatsAppInfobip = WhatsAppInfobip;
    match kind {
        "echo" => Some(&ECHO),
        "webhook" => Some(&WEBHOOK),
        "websocket" => Some(&WEBSOCKET),
        "whatsapp_meta" => Some(&META),
        "whatsapp_infobip" => Some(&INFOBIP),
        _ => None,
    }
}

/// What a channel type does. Implementations are stateless unit structs; all
/// state comes in the arguments.
pub trait Adapter: ValidateConfig + Send + Sync {
    /// The channel config, typed; [`ValidateConfig`] comes with it. `Self:
    /// Sized` keeps the type out of `dyn Adapter`, which [`adapter_for`] hands out.
    type Config<'a>: ChannelConfig<'a>
    where
        Self: Sized;

    /// The channel type this adapter serves (`webhook`, …).
    fn kind(&self) -> &'static str;

    /// Whether activities of this channel's conversations get delivery rows.
    fn delivers(&self) -> bool;

    /// Whether an activity of type `kind` gets a delivery row on this channel
    /// (docs/webhooks.md "What each type sends"). An activity this channel
    /// never sends (an edit to WhatsApp) gets no row at all, so the delivery
    /// list holds only what was sent or is being tried, never a "delivered"
    /// that sent nothing.
    fn routes(&self, kind: &str) -> bool {
        let _ = kind;
        self.delivers()
    }

    /// Whether [`DeliveryContext::related`] must be looked up for this
    /// channel: the provider's id of the message a reaction acts on or a reply
    /// answers. Only adapters that name provider messages ask (it costs reads).
    fn needs_related(&self) -> bool {
        false
    }

    /// Whether a conversation's `external_id` is a person the provider
    /// reports on (a WhatsApp contact): they become the conversation's member
    /// `external_id`, and the provider's `delivered` / `read` reports move
    /// that member's receipts (docs/webhooks.md "Contacts as members").
    fn contact_receipts(&self) -> bool {
        false
    }

    /// What delivering `ctx.activity` means. An `Err` is a permanent failure
    /// found before sending anything (no recipient, unsupported content, a
    /// stored config that no longer validates): record it as failed.
    fn deliver_activity(&self, ctx: &DeliveryContext<'_>) -> Result<Delivery, AdapterError>;

    /// Classifies the provider's answer to a [`Delivery::Http`] request.
    /// Transport failures (connect, timeout) never reach here: they are
    /// [`ResponseOutcome::network`].
    fn interpret_response(&self, status: u16, body: &[u8]) -> ResponseOutcome {
        wire::classify(status, body, |_| Map::new())
    }

    /// Verifies and parses an inbound request. Verification comes first: a
    /// request that fails it is refused before its body is even parsed.
    fn parse_inbound(&self, req: &InboundRequest, channel: &ChannelView<'_>, now: i64)
        -> Result<Inbound, InboundError>;
}

/// Checking a channel config, for every [`Adapter`] alike: it parses into the
/// adapter's [`Adapter::Config`] (see [`ChannelConfig::parse`]). A trait of
/// its own because a provided method of `Adapter` that named `Self::Config`
/// could not be called through `dyn Adapter`; a supertrait's can.
pub trait ValidateConfig {
    /// Checks a channel config (a JSON object is checked by the caller, but a
    /// non-object is refused here too). Unknown keys are refused, so a typo
    /// does not silently fall back to a default.
    fn validate_config(&self, config: &Value) -> Result<(), ConfigError>;
}

impl<A: Adapter> ValidateConfig for A {
    fn validate_config(&self, config: &Value) -> Result<(), ConfigError> {
        A::Config::parse(config).map(drop)
    }
}

/// The parts of a channel an adapter reads. `config` is the channel's config
/// parsed once by the caller (`channel.config.to_value()`).
#[derive(Clone, Copy)]
pub struct ChannelView<'a> {
    pub id: Id,
    pub secret: &'a str,
    pub config: &'a Value,
}

impl<'a> ChannelView<'a> {
    pub fn new(channel: &'a Channel, config: &'a Value) -> ChannelView<'a> {
        ChannelView { id: channel.id, secret: &channel.secret, config }
    }
}

/// Shows the config's keys only: the secret and the config's tokens stay out of logs.
impl std::fmt::Debug for ChannelView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> =
            self.config.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
        f.debug_struct("ChannelView").field("id", &self.id).field("config_keys", &keys).finish_non_exhaustive()
    }
}

/// Everything an adapter needs to deliver one activity.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryContext<'a> {
    pub channel: ChannelView<'a>,
    pub activity: &'a Activity,
    /// The conversation's `external_id`: the WhatsApp recipient.
    pub external_id: Option<&'a str>,
    pub delivery_id: Id,
    /// 1 for the first attempt (the delivery's `attempts` once claimed).
    pub attempt: u32,
    /// Unix seconds: the time the request is built (Standard Webhooks' timestamp).
    pub now: i64,
    /// The message the activity acts on (`target_id`) or answers
    /// (`parent_id`), as this channel knows it; [`Related::None`] unless the
    /// adapter [`needs_related`](Adapter::needs_related).
    pub related: &'a Related,
}

/// The provider's side of the message an activity acts on or answers (a
/// reaction's target, a reply's parent), looked up by the delivery worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Related {
    /// The activity names no other message, or nobody looked.
    None,
    /// The provider's id of that message on this channel: the id its
    /// delivery recorded as [`PROVIDER_MESSAGE_ID`], or the provider's id it
    /// came in with (`metadata.inbound.message_id`).
    Sent(String),
    /// Its delivery to this channel is still pending: no provider id yet.
    Pending,
    /// It never reached this channel through the provider (no delivery, or a
    /// failed one, or sent before ids were recorded).
    Missing,
}

/// What delivering an activity means for its channel.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// Send this request, then pass the answer to [`Adapter::interpret_response`].
    Http(OutboundRequest),
    /// Write this activity into the same conversation through the normal
    /// write path (with its idempotency key, so a repeated delivery writes it
    /// once), then mark the delivery delivered.
    Reply(Reply),
    /// Nothing to do (the channel has no outbound, or this activity is not
    /// for it): mark the delivery delivered.
    Nothing,
    /// Not yet: what it needs is not there (the provider's id of the message
    /// a reaction acts on, its own delivery still pending). Retried on the
    /// usual schedule with this reason.
    NotYet(String),
}

/// One HTTP request, exactly as it must go on the wire (the HTTP client adds
/// only `Host` and `Content-Length`).
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::find_header(&self.headers, name)
    }
}

/// Leaves out header values: they carry tokens and API keys.
impl std::fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// An activity the adapter writes back into the conversation (`echo`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub kind: String,
    pub text: Option<String>,
    /// The original's attachments (a JSON array), if any.
    pub attachments: Option<Value>,
    pub sender: String,
    pub metadata: Value,
    pub idempotency_key: String,
}

/// A delivery that cannot be attempted at all: permanent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// The stored config does not validate (it was changed behind the API's back).
    #[error("channel config is invalid: {0}")]
    Config(ConfigError),
    /// The conversation has no `external_id` to send to.
    #[error("the conversation has no external_id (the recipient)")]
    NoRecipient,
    /// The activity has content this channel cannot carry.
    #[error("{0}")]
    Unsupported(String),
}

impl From<ConfigError> for AdapterError {
    fn from(e: ConfigError) -> AdapterError {
        AdapterError::Config(e)
    }
}

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseOutcome {
    /// Accepted. `metadata` (a JSON object, maybe empty) is merged into the
    /// delivery's; [`PROVIDER_MESSAGE_ID`] in it is how later status reports
    /// find the delivery.
    Delivered { metadata: Map<String, Value> },
    /// Worth trying again later (5xx, 408, 429, a provider's throttling code,
    /// a network failure).
    Retry { error: String },
    /// Will fail again: do not retry.
    Failed { error: String },
}

impl ResponseOutcome {
    /// A request that got no HTTP answer (connect refused, timeout, reset).
    pub fn network(error: impl std::fmt::Display) -> ResponseOutcome {
        ResponseOutcome::Retry { error: wire::short(&format!("network: {error}")) }
    }
}

/// The delivery-metadata key under which every adapter records the
/// provider's id of the sent message (Meta's `wamid…`, Infobip's `messageId`).
pub const PROVIDER_MESSAGE_ID: &str = "provider_message_id";

/// An inbound HTTP request as the endpoint received it.
#[derive(Clone, Default)]
pub struct InboundRequest {
    pub method: String,
    /// The raw query string (after `?`, still percent-encoded).
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The raw body: signatures are computed over these exact bytes.
    pub body: Vec<u8>,
    /// The secret segment of `…/inbound/{secret}`, if the URL had one.
    pub path_secret: Option<String>,
}

impl InboundRequest {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::find_header(&self.headers, name)
    }
}

/// Leaves out header values, the query and the path secret: they carry secrets.
impl std::fmt::Debug for InboundRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("InboundRequest")
            .field("method", &self.method)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .field("path_secret", &self.path_secret.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// What an inbound request amounts to.
#[derive(Clone, Debug, PartialEq)]
pub enum Inbound {
    /// Answer 200 with this text as `text/plain` (Meta's GET verification).
    Challenge(String),
    /// Answer 200 once every message is written and every status recorded.
    Events(Events),
}

/// The messages and delivery reports of one inbound request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Events {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
    /// Entries skipped as not for this channel or of no interest (another
    /// phone number of the same Meta app, a template status change …).
    pub ignored: usize,
}

/// One message from outside, to write as an activity.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundMessage {
    /// The conversation's key on the channel (the sender's WhatsApp number):
    /// find or create the conversation by it.
    pub external_id: String,
    /// The provider's id of the message: use it as the activity's
    /// idempotency key, so a redelivered webhook writes nothing new.
    pub message_id: String,
    pub sender: String,
    /// `message` for text; `event` for content carried only in metadata
    /// (media, locations, button replies …).
    pub kind: String,
    pub text: Option<String>,
    /// The activity's metadata: always `{"inbound": {"channel_type": …, …}}`,
    /// the mark [`is_inbound`] recognises.
    pub metadata: Value,
}

/// A provider's report on a message sent earlier.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    /// Matches [`PROVIDER_MESSAGE_ID`] in a delivery's metadata.
    pub provider_message_id: String,
    /// One of [`STATUSES`].
    pub status: &'static str,
    pub at: Option<Timestamp>,
    /// The provider's error, for `failed`.
    pub error: Option<String>,
    /// The provider's own status name, when it has finer ones (Infobip's `DELIVERED_TO_HANDSET`).
    pub detail: Option<String>,
}

/// The normalised statuses of a [`StatusUpdate`].
pub const STATUSES: &[&str] = &["sent", "delivered", "read", "failed"];

impl StatusUpdate {
    /// The keys to merge into the delivery's metadata: `provider_status` (the
    /// latest report received — reports may arrive out of order, so each
    /// status also keeps its own `status_<status>_at`) and the error, if any.
    pub fn metadata_patch(&self) -> Value {
        let mut patch = Map::new();
        patch.insert("provider_status".into(), json!(self.status));
        let at = self.at.map_or(Value::Null, |t| json!(t.to_string()));
        patch.insert(format!("status_{}_at", self.status), at);
        if let Some(detail) = &self.detail {
            patch.insert("provider_status_detail".into(), json!(detail));
        }
        if let Some(error) = &self.error {
            patch.insert("provider_error".into(), json!(error));
        }
        Value::Object(patch)
    }
}

/// Why an inbound request was refused. Which HTTP answer each one gets is the
/// service layer's business (`ServiceError::status_code`), not the adapters'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// Missing or wrong signature or channel secret.
    #[error("{0}")]
    Unauthorized(String),
    /// Meta's GET verification with a wrong `hub.verify_token`.
    #[error("{0}")]
    Forbidden(String),
    /// Not JSON, or a malformed query.
    #[error("{0}")]
    BadRequest(String),
    /// Valid JSON of the wrong shape; `field` is a path into the body (`entry[0].changes`).
    #[error("`{field}`: {message}")]
    Invalid { field: String, message: String },
    /// A method the channel type does not take inbound; `allow` lists those it does.
    #[error("method {method} is not accepted here (allowed: {allow})")]
    MethodNotAllowed { method: String, allow: &'static str },
    /// This channel type takes no inbound requests.
    #[error("channels of type {0} take no inbound requests")]
    NoInbound(&'static str),
    /// The stored config does not validate.
    #[error("the channel's config is invalid: {0}")]
    Config(ConfigError),
}

impl InboundError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> InboundError {
        InboundError::Invalid { field: field.into(), message: message.into() }
    }
}

impl From<ConfigError> for InboundError {
    fn from(e: ConfigError) -> InboundError {
        InboundError::Config(e)
    }
}

/// Whether `activity` came in through a channel's inbound endpoint (its
/// metadata has the `inbound` mark every [`InboundMessage`] carries). Such an
/// activity is not sent back out: every adapter answers [`Delivery::Nothing`].
pub fn is_inbound(activity: &Activity) -> bool {
    activity.metadata.as_str().contains("\"inbound\"") && activity.metadata.to_value().get("inbound").is_some()
}

/// The provider's id `activity` came in with (`metadata.inbound.message_id`),
/// if it came in through a channel's inbound endpoint.
pub fn inbound_message_id(activity: &Activity) -> Option<String> {
    if !is_inbound(activity) {
        return None;
    }
    activity.metadata.to_value()["inbound"]["message_id"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests;
