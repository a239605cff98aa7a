//! Helpers every adapter shares: header and query lookup, HMAC-SHA256, the
//! channel-secret check of unsigned inbound requests, classifying a
//! provider's HTTP answer, and small JSON readers whose errors name the path.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::{ChannelView, InboundError, InboundRequest, ResponseOutcome};
use crate::auth::ct;

/// The header that carries the channel secret on inbound requests from
/// providers that sign nothing (Infobip; Meta without `app_secret`).
pub const SECRET_HEADER: &str = "x-converger-secret";

/// Longest provider id accepted inbound: ids become idempotency keys (255 bytes at most).
pub(crate) const MAX_ID_BYTES: usize = 255;

/// Longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 300;

pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed first): an invariant.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC-SHA256 accepts a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Lower-case hex of `bytes` (tests compute signatures with it).
#[cfg(test)]
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string (either case); `None` if it is not hex.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Checks the channel secret of an unsigned inbound request: the path segment
/// if the URL has one, else the [`SECRET_HEADER`]. Compared in constant time.
pub(crate) fn check_channel_secret(req: &InboundRequest, channel: &ChannelView<'_>) -> Result<(), InboundError> {
    let presented = req.path_secret.as_deref().or_else(|| req.header(SECRET_HEADER)).ok_or_else(|| {
        InboundError::Unauthorized(
            "missing channel secret: put it in the URL (`…/inbound/<secret>`) or the X-Converger-Secret header".into(),
        )
    })?;
    if ct::eq(presented.as_bytes(), channel.secret.as_bytes()) {
        Ok(())
    } else {
        Err(InboundError::Unauthorized("wrong channel secret".into()))
    }
}

/// The percent-decoded value of `name` in a query string (`+` is a space).
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, InboundError> {
    let pairs =
        crate::net::http::query::pairs(query.unwrap_or("")).map_err(|e| InboundError::BadRequest(e.to_string()))?;
    Ok(pairs.into_iter().find(|(n, _)| n == name).map(|(_, v)| v))
}

/// The body as a JSON object: [`InboundError::BadRequest`] if it is not JSON,
/// [`InboundError::Invalid`] (`body`) if it is not an object.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, InboundError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(InboundError::invalid("body", "must be a JSON object")),
        Err(e) => Err(InboundError::BadRequest(format!("the body is not JSON: {e}"))),
    }
}

/// Reads of a JSON object whose errors name the path (`results[2].from`).
pub(crate) struct At<'a> {
    pub path: String,
    pub map: &'a Map<String, Value>,
}

impl<'a> At<'a> {
    pub fn new(path: impl Into<String>, value: &'a Value) -> Result<At<'a>, InboundError> {
        let path = path.into();
        match value.as_object() {
            Some(map) => Ok(At { path, map }),
            None => Err(InboundError::invalid(path, "must be a JSON object")),
        }
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, InboundError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(InboundError::invalid(self.field(key), "must be a string")),
        }
    }

    /// A non-empty string.
    pub fn str(&self, key: &str) -> Result<&'a str, InboundError> {
        match self.opt_str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(InboundError::invalid(self.field(key), "is required (a non-empty string)")),
        }
    }

    /// A non-empty string of at most `max` bytes (ids that become
    /// idempotency keys or senders: the write path caps them).
    pub fn id(&self, key: &str, max: usize) -> Result<&'a str, InboundError> {
        let s = self.str(key)?;
        if s.len() > max {
            return Err(InboundError::invalid(self.field(key), format!("must be at most {max} bytes")));
        }
        Ok(s)
    }

    /// An array, empty when absent.
    pub fn array(&self, key: &str) -> Result<&'a [Value], InboundError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(InboundError::invalid(self.field(key), "must be an array")),
        }
    }

    /// The object at `key`, or `None` when absent.
    pub fn child(&self, key: &str) -> Result<Option<At<'a>>, InboundError> {
        self.get(key).map(|v| At::new(self.field(key), v)).transpose()
    }

    /// The object at `key[i]`.
    pub fn item(&self, key: &str, i: usize, value: &'a Value) -> Result<At<'a>, InboundError> {
        At::new(format!("{}[{i}]", self.field(key)), value)
    }
}

/// `s` cut to a few hundred characters (a `last_error` must stay short).
pub(crate) fn short(s: &str) -> String {
    match s.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Whether a failed HTTP status is worth retrying: 408, 429 and 5xx.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// The body as text for an error message (lossy, whitespace collapsed, cut short).
pub(crate) fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    short(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The common classification: 2xx delivered with `{"response_status": …}` plus
/// what `on_success` reads from the body; 408, 429, 5xx retried; anything else failed.
pub(crate) fn classify(
    status: u16,
    body: &[u8],
    on_success: impl FnOnce(&Value) -> Map<String, Value>,
) -> ResponseOutcome {
    if (200..300).contains(&status) {
        let parsed = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
        let mut metadata = on_success(&parsed);
        metadata.insert("response_status".into(), json!(status));
        return ResponseOutcome::Delivered { metadata };
    }
    let error = http_error(status, &body_text(body));
    if retryable_status(status) {
        ResponseOutcome::Retry { error }
    } else {
        ResponseOutcome::Failed { error }
    }
}

/// `HTTP 503: detail`, cut short.
pub(crate) fn http_error(status: u16, detail: &str) -> String {
    if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        short(&format!("HTTP {status}: {detail}"))
    }
}

/// Joins a base URL (maybe ending in `/`) and a path starting with `/`.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_odd_or_non_hex() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }

    #[test]
    fn query_params_are_percent_decoded() {
        let q = Some("hub.mode=subscribe&hub.verify_token=a%20b+c&x");
        assert_eq!(query_param(q, "hub.verify_token"), Ok(Some("a b c".into())));
        assert_eq!(query_param(q, "hub.mode"), Ok(Some("subscribe".into())));
        assert_eq!(query_param(q, "x"), Ok(Some(String::new())));
        assert_eq!(query_param(q, "absent"), Ok(None));
        assert_eq!(query_param(None, "absent"), Ok(None));
        assert!(query_param(Some("a=%zz"), "a").is_err());
    }

    #[test]
    fn classify_retries_408_429_and_5xx_only() {
        assert!(matches!(classify(204, b"", |_| Map::new()), ResponseOutcome::Delivered { .. }));
        for s in [408, 429, 500, 502, 503, 599] {
            assert!(matches!(classify(s, b"busy", |_| Map::new()), ResponseOutcome::Retry { .. }), "{s}");
        }
        for s in [300, 400, 401, 403, 404, 410, 422] {
            assert!(matches!(classify(s, b"no", |_| Map::new()), ResponseOutcome::Failed { .. }), "{s}");
        }
        let ResponseOutcome::Failed { error } = classify(400, b"  bad\n  input ", |_| Map::new()) else { panic!() };
        assert_eq!(error, "HTTP 400: bad input");
    }

    #[test]
    fn errors_are_cut_short_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let s = short(&long);
        assert_eq!(s.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn join_url_takes_one_slash() {
        assert_eq!(join_url("http://127.0.0.1:9/", "/v18.0/1/messages"), "http://127.0.0.1:9/v18.0/1/messages");
        assert_eq!(join_url("https://x.example", "/a"), "https://x.example/a");
    }
}
