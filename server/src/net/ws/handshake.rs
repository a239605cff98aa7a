//! The opening handshake (RFC 6455 §4.2): checks that a request asks for a
//! WebSocket and answers `101 Switching Protocols` with the accept key, or a
//! refusal in the one JSON error shape (400 for a malformed request, 426 with
//! `Sec-WebSocket-Version: 13` for a version we do not speak).

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::net::http::{Method, Request, Response};

/// The GUID every server appends to the client's key (§1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Whether a comma-separated header of `request` holds `token` (any case).
fn has_token(request: &Request, name: &str, token: &str) -> bool {
    request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The `101` for a valid upgrade request, or the refusal to send instead.
/// The caller attaches what runs on the socket ([`Response::upgrade`]).
pub fn accept(request: &Request) -> Result<Response, Response> {
    let bad = |message: &str| Response::error(400, "bad_websocket_handshake", message);
    if request.method != Method::Get || request.minor_version == 0 {
        return Err(bad("a WebSocket handshake is an HTTP/1.1 GET"));
    }
    if !has_token(request, "upgrade", "websocket") || !has_token(request, "connection", "upgrade") {
        let message = "this endpoint speaks WebSocket only: send `Upgrade: websocket` and `Connection: Upgrade`";
        return Err(Response::error(426, "upgrade_required", message)
            .with_header("upgrade", "websocket")
            .with_header("sec-websocket-version", "13"));
    }
    if request.header_str("sec-websocket-version") != Some("13") {
        return Err(Response::error(426, "unsupported_websocket_version", "only WebSocket version 13 is supported")
            .with_header("sec-websocket-version", "13"));
    }
    // The key is 16 random bytes in base64; anything else is not a client's.
    let key = request.header_str("sec-websocket-key").unwrap_or("");
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if !matches!(decoded, Ok(ref k) if k.len() == 16) {
        return Err(bad("Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    Ok(Response::new(101)
        .with_header("upgrade", "websocket")
        .with_header("connection", "Upgrade")
        .with_header("sec-websocket-accept", accept_key(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: Method::Get,
            path: "/socket/websocket".into(),
            query: None,
            minor_version: 1,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect(),
            body: bytes::Bytes::new(),
            peer: None,
            id: String::new(),
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("Upgrade", "WebSocket"),
        ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn accept_key_matches_the_rfc_example() {
        // RFC 6455 §1.3 (and `openssl sha1 -binary | base64` agree).
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn a_valid_request_gets_101_with_the_accept_key() {
        let r = accept(&request(GOOD)).expect("accepted");
        assert_eq!(r.status, 101);
        let accept = r.headers.iter().find(|(n, _)| *n == "sec-websocket-accept").map(|(_, v)| v.as_str());
        assert_eq!(accept, Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    }

    #[test]
    fn bad_handshakes_are_refused_with_400_or_426() {
        let without = |name: &str| GOOD.iter().copied().filter(|(n, _)| *n != name).collect::<Vec<_>>();
        let with = |name: &str, value: &'static str| {
            GOOD.iter().map(|&(n, v)| if n == name { (n, value) } else { (n, v) }).collect::<Vec<_>>()
        };
        let status = |headers: &[(&str, &str)]| accept(&request(headers)).expect_err("refused").status;
        assert_eq!(status(&without("Upgrade")), 426);
        assert_eq!(status(&with("Connection", "keep-alive")), 426);
        assert_eq!(status(&with("Sec-WebSocket-Version", "8")), 426);
        assert_eq!(status(&without("Sec-WebSocket-Key")), 400);
        assert_eq!(status(&with("Sec-WebSocket-Key", "c2hvcnQ=")), 400);
        let mut post = request(GOOD);
        post.method = Method::Post;
        assert_eq!(accept(&post).expect_err("refused").status, 400);
        let refused = accept(&request(&without("Upgrade"))).expect_err("refused");
        let body: serde_json::Value = serde_json::from_slice(&refused.body).expect("json");
        assert_eq!(body["error"]["code"], "upgrade_required");
    }
}
