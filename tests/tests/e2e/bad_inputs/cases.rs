//! The catalogue's format: one JSON array per surface in
//! `tests/bad_inputs/`, each case what to send and what the docs say the
//! answer is, and the placeholders its strings may hold, filled from the
//! fixture ([`Ctx`]): `{conversation}`, `{api_key}`, `{token}` …,
//! `{fill:N}` (N × `a`), `{fill:N:s}` (N × s), `{hex:…}` (raw bytes); in a
//! binary frame's hex, `{conv}`, `{u16:N}` `{u32:N}` `{u64:N}` (little-endian)
//! and `{s8:text}` `{s16:text}` `{s32:text}` (length-prefixed strings).
//! Unknown fields are refused, so a typo in a case fails the load.

use std::path::PathBuf;

use converger_e2e::api::{expect, Fixture};
use converger_e2e::TestServer;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCase {
    pub name: String,
    #[serde(default = "get")]
    pub method: String,
    #[serde(default)]
    pub path: String,
    /// `api_key` (default), `none`, `admin`, `channel_secret`, `token`.
    #[serde(default = "api_key")]
    pub auth: String,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Sent with a body; empty: no Content-Type.
    #[serde(default = "application_json")]
    pub content_type: String,
    /// The whole request, as bytes on a fresh connection.
    pub raw: Option<String>,
    /// Signs the (expanded) body as an inbound provider would.
    pub sign: Option<Sign>,
    /// Sends the request this many times; the last answer is checked.
    #[serde(default = "one")]
    pub times: usize,
    pub expect: HttpExpect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    pub status: u16,
    pub code: Option<String>,
    pub field: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sign {
    /// `standard` (Standard Webhooks) or `meta` (X-Hub-Signature-256).
    pub scheme: String,
    #[serde(default)]
    pub wrong_key: bool,
    #[serde(default = "msg_id")]
    pub id: String,
    /// Seconds added to now for `webhook-timestamp`.
    #[serde(default)]
    pub ts_offset: i64,
    /// `webhook-timestamp` as given (instead of now + offset).
    pub ts: Option<String>,
    /// The signature header as given (instead of a computed one).
    pub signature: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketCase {
    pub name: String,
    /// `websocket` (Phoenix, default) or `binary` (`/socket/binary`).
    #[serde(default = "websocket")]
    pub socket: String,
    #[serde(default = "phoenix_query")]
    pub query: String,
    /// Join the fixture's conversation first.
    #[serde(default)]
    pub join: bool,
    #[serde(default)]
    pub frames: Vec<WsFrame>,
    pub expect: SocketExpect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsFrame {
    pub text: Option<String>,
    /// A frame built here, masked with a zero key: `opcode`, `fin`, `rsv`, `payload`.
    pub opcode: Option<u8>,
    #[serde(default = "yes")]
    pub fin: bool,
    #[serde(default)]
    pub rsv: u8,
    #[serde(default = "yes")]
    pub masked: bool,
    #[serde(default)]
    pub payload: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketExpect {
    /// The upgrade is refused with this HTTP answer.
    pub handshake: Option<HttpExpect>,
    /// A `phx_reply` with this status (and `reason` / `code` when given).
    pub reply: Option<String>,
    pub reason: Option<String>,
    pub code: Option<String>,
    /// The server closes with this code.
    pub close: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryCase {
    pub name: String,
    /// `token`, `api_key`, or `none` (no Hello: the frames come first).
    #[serde(default = "api_key")]
    pub hello: String,
    /// The highest version the Hello offers.
    #[serde(default = "one_u8")]
    pub version: u8,
    /// Over `/socket/binary` instead of TCP.
    #[serde(default)]
    pub websocket: bool,
    pub frames: Vec<BinFrame>,
    pub expect: BinExpect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinFrame {
    /// The whole frame in hex (placeholders allowed).
    pub hex: Option<String>,
    /// Else a header built here: the connection's version unless given.
    pub version: Option<u8>,
    #[serde(default)]
    pub kind: u8,
    #[serde(default)]
    pub flags: u16,
    #[serde(default)]
    pub body: String,
    /// The length field as given (instead of 4 + the body's length).
    pub length: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinExpect {
    /// The Error frame's code name.
    pub error: String,
    #[serde(default = "yes")]
    pub close: bool,
}

fn get() -> String {
    "GET".into()
}
fn api_key() -> String {
    "api_key".into()
}
fn application_json() -> String {
    "application/json".into()
}
fn one() -> usize {
    1
}
fn one_u8() -> u8 {
    1
}
fn yes() -> bool {
    true
}
fn msg_id() -> String {
    "msg_bad_inputs".into()
}
fn websocket() -> String {
    "websocket".into()
}
fn phoenix_query() -> String {
    "token={token}&vsn=2.0.0".into()
}

pub fn load<T: for<'de> Deserialize<'de>>(file: &str) -> Vec<T> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bad_inputs").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What placeholders are filled from.
pub struct Ctx {
    pub fixture: Fixture,
    pub token: String,
    pub other_conversation: String,
    pub closed_conversation: String,
    pub webhook: Value,
    pub meta: Value,
    pub infobip: Value,
}

pub const META_APP_SECRET: &str = "bad-inputs-app-secret";

impl Ctx {
    pub fn new(server: &TestServer) -> Ctx {
        let fixture = Fixture::new(server, "bad-inputs");
        let token = fixture.token(server, "alice");
        let api = fixture.client(server);
        let other = Fixture::new(server, "bad-inputs-other");
        let closed = expect(&api.post("/api/v1/conversations", &json!({"channel_id": fixture.channel_id()})), 201);
        let closed_id = closed["id"].as_str().expect("id").to_string();
        expect(&api.post(&format!("/api/v1/conversations/{closed_id}/close"), &json!({})), 200);
        let channel = |kind: &str, config: Value| {
            expect(&api.post("/api/v1/channels", &json!({"name": kind, "type": kind, "config": config})), 201)
        };
        let webhook = channel("webhook", json!({"url": "http://127.0.0.1:9/out"}));
        let meta = channel(
            "whatsapp_meta",
            json!({"phone_number_id": "1065", "access_token": "t", "verify_token": "let-me-in",
                   "app_secret": META_APP_SECRET, "api_base": "http://127.0.0.1:9"}),
        );
        let infobip =
            channel("whatsapp_infobip", json!({"api_key": "k", "sender": "4411", "base_url": "http://127.0.0.1:9"}));
        Ctx {
            other_conversation: other.conversation_id().to_string(),
            fixture,
            token,
            closed_conversation: closed_id,
            webhook,
            meta,
            infobip,
        }
    }

    pub fn id(v: &Value, key: &str) -> String {
        v[key].as_str().expect(key).to_string()
    }

    /// A text placeholder's bytes.
    pub fn lookup(&self, name: &str) -> Option<Vec<u8>> {
        let f = &self.fixture;
        let text = match name {
            "conversation" => f.conversation_id().to_string(),
            "channel" => f.channel_id().to_string(),
            "channel_secret" => f.channel_secret().to_string(),
            "api_key" => f.tenant.api_key.clone(),
            "tenant" => f.tenant.id.clone(),
            "token" => self.token.clone(),
            "other_conversation" => self.other_conversation.clone(),
            "closed_conversation" => self.closed_conversation.clone(),
            "webhook_channel" => Self::id(&self.webhook, "id"),
            "meta_channel" => Self::id(&self.meta, "id"),
            "infobip_channel" => Self::id(&self.infobip, "id"),
            "infobip_secret" => Self::id(&self.infobip, "secret"),
            "meta_secret" => Self::id(&self.meta, "secret"),
            _ => return fill(name),
        };
        Some(text.into_bytes())
    }

    /// A hex placeholder's hex text.
    pub fn lookup_hex(&self, name: &str) -> Option<Vec<u8>> {
        let uuid = |s: &str| hex(&converger_e2e::binary::uuid_bytes(s));
        let (kind, arg) = name.split_once(':').unwrap_or((name, ""));
        let num = || arg.parse::<u64>().ok();
        let with_len = |width: usize, bytes: Vec<u8>| {
            let len = (bytes.len() as u64).to_le_bytes();
            format!("{}{}", hex(&len[..width]), hex(&bytes))
        };
        let out = match kind {
            "conv" => uuid(self.fixture.conversation_id()),
            "other_conv" => uuid(&self.other_conversation),
            "closed_conv" => uuid(&self.closed_conversation),
            "u16" => hex(&(num()? as u16).to_le_bytes()),
            "u32" => hex(&(num()? as u32).to_le_bytes()),
            "u64" => hex(&num()?.to_le_bytes()),
            "s8" => with_len(1, expand(arg, &|n| self.lookup(n))),
            "s16" => with_len(2, expand(arg, &|n| self.lookup(n))),
            "s32" => with_len(4, expand(arg, &|n| self.lookup(n))),
            _ => return None,
        };
        Some(out.into_bytes())
    }
}

/// `fill:N` (N × `a`), `fill:N:s` (N × s), `hex:…` (those bytes).
pub fn fill(name: &str) -> Option<Vec<u8>> {
    if let Some(h) = name.strip_prefix("hex:") {
        return Some(unhex(h));
    }
    let rest = name.strip_prefix("fill:")?;
    let (n, unit) = rest.split_once(':').unwrap_or((rest, "a"));
    Some(unit.repeat(n.parse().ok()?).into_bytes())
}

/// `s` with every `{name}` that `lookup` knows replaced; other braces stay.
pub fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.extend_from_slice(&rest.as_bytes()[..open]);
        let after = &rest[open + 1..];
        match matching_brace(after).and_then(|close| Some((lookup(&after[..close])?, close))) {
            Some((value, close)) => {
                out.extend_from_slice(&value);
                rest = &after[close + 1..];
            }
            None => {
                out.push(b'{');
                rest = after;
            }
        }
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// Where the `}` closing an opened `{` is in `s` (nested pairs skipped).
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).unwrap_or_else(|_| panic!("hex {s}")))
        .collect()
}
