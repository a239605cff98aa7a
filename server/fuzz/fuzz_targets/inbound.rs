//! What the inbound-adapter targets share: the input's layout, the channel,
//! and the property every adapter holds (a request without the right
//! credential is refused, whatever its body).

use converger_server::adapters::{Adapter, ChannelView, Inbound, InboundError, InboundRequest, SECRET_HEADER};
use converger_storage::Id;
use serde_json::Value;

pub const SECRET: &str = "cvs_fuzz-channel-secret";
/// 2025-06-08T21:00:00Z.
pub const NOW: i64 = 1_749_416_400;

/// The fuzzer's input: a mode byte, a line (a header value, a query or an
/// id, as the mode says), then the body.
pub struct Input<'a> {
    pub mode: u8,
    pub line: String,
    pub body: &'a [u8],
}

impl Input<'_> {
    pub fn split(data: &[u8]) -> Option<Input<'_>> {
        let (&mode, rest) = data.split_first()?;
        let (line, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&rest[..0], rest),
        };
        Some(Input { mode, line: String::from_utf8_lossy(line).into_owned(), body })
    }
}

pub fn post(headers: Vec<(String, String)>, body: &[u8], path_secret: Option<String>) -> InboundRequest {
    InboundRequest { method: "POST".into(), query: None, headers, body: body.to_vec(), path_secret }
}

/// The channel secret presented the way `mode` picks: in the path, in the
/// header, the fuzzer's line instead (forged), or not at all. True when it
/// is the right one.
pub fn channel_secret(mode: u8, line: &str) -> (Vec<(String, String)>, Option<String>, bool) {
    match mode % 4 {
        0 => (vec![], Some(SECRET.into()), true),
        1 => (vec![(SECRET_HEADER.into(), SECRET.into())], None, true),
        // Header values are read trimmed, as the HTTP layer's whitespace is not part of them.
        2 => (vec![(SECRET_HEADER.into(), line.into())], None, line.trim() == SECRET),
        _ => (vec![], None, false),
    }
}

/// Runs `adapter` on `req`; a request whose credential is wrong must be
/// refused as unauthorized (or, before that, for its method or config).
pub fn check(
    adapter: &dyn Adapter,
    config: &Value,
    req: &InboundRequest,
    authentic: bool,
) -> Result<Inbound, InboundError> {
    let id = Id::parse_str("0190f0f0-0000-7000-8000-00000000c4a1").expect("a uuid");
    let view = ChannelView { id, secret: SECRET, config };
    let got = adapter.parse_inbound(req, &view, NOW);
    if !authentic && req.method == "POST" {
        assert!(
            matches!(got, Err(InboundError::Unauthorized(_))),
            "a forged request was not refused: {:?}",
            got.as_ref().err()
        );
    }
    got
}
