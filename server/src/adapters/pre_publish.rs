//! The pre-publish hook's contract (issue 17), pure: its config
//! (`config.pre_publish` of any channel, or a tenant's default), the request
//! Converger sends (Standard Webhooks, signed with the channel's webhook key,
//! one request for every activity of a batch bound for one channel), and
//! the answer it reads back — accept, reject with a reason, or rewrite the
//! text and metadata — one verdict per item.
//!
//! Calling the hook (off the shard threads) and holding a conversation's
//! later publishes behind its earlier one's hook are the write path's.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use super::fields::ConfigError;

/// The longest a publish may wait for its hook.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10);
/// What `timeout_ms` is when not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);
/// The longest reason a hook may give (longer is cut, on a character boundary).
pub const MAX_REASON_BYTES: usize = 512;
/// The largest answer read from a hook.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// The event type of the hook's request body.
pub const EVENT_TYPE: &str = "activity.pre_publish";

/// What a publish becomes when its hook cannot be asked or answers nonsense.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stored as written (fail open).
    Accept,
    /// Refused with `rejected_by_hook` (fail closed: the default, so a
    /// moderation hook that is down lets nothing through unchecked).
    Reject,
}

/// `config.pre_publish`: `{url, timeout_ms?, on_failure?}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookConfig {
    pub url: String,
    pub timeout: Duration,
    pub on_failure: OnFailure,
}

const KEYS: &[&str] = &["url", "timeout_ms", "on_failure"];

impl HookConfig {
    /// Reads `config.pre_publish` (`prefix` names it in errors, e.g.
    /// `config.pre_publish`); `None` when absent or null.
    pub fn parse(value: Option<&Value>, prefix: &str) -> Result<Option<HookConfig>, ConfigError> {
        let map = match value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(ConfigError::new(prefix, "must be a JSON object")),
        };
        let field = |k: &str| format!("{prefix}.{k}");
        if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(ConfigError::new(field(k), format!("unknown key `{k}` (expected: {})", KEYS.join(", "))));
        }
        let url = match map.get("url") {
            Some(Value::String(u)) => {
                super::fields::check_url(u).map_err(|m| ConfigError::new(field("url"), m))?;
                u.clone()
            }
            Some(_) => return Err(ConfigError::new(field("url"), "must be a string")),
            None => return Err(ConfigError::new(field("url"), "is required")),
        };
        let max_ms = MAX_TIMEOUT.as_millis() as u64;
        let timeout = match map.get("timeout_ms") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT,
            Some(v) => match v.as_u64() {
                Some(ms) if (1..=max_ms).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError::new(field("timeout_ms"), format!("must be an integer from 1 to {max_ms}")))
                }
            },
        };
        let on_failure = match map.get("on_failure").and_then(Value::as_str) {
            None if map.get("on_failure").is_none_or(Value::is_null) => OnFailure::Reject,
            Some("accept") => OnFailure::Accept,
            Some("reject") => OnFailure::Reject,
            _ => return Err(ConfigError::new(field("on_failure"), "must be \"accept\" or \"reject\"")),
        };
        Ok(Some(HookConfig { url, timeout, on_failure }))
    }
}

/// The request body: every activity of one batch bound for one channel, in
/// the order they would be stored (the conversation's order among them).
/// `activities` are the activities as they would be stored, without `seq`
/// (not assigned yet).
pub fn request_body(channel_id: &str, timestamp: &str, activities: &[Value]) -> Vec<u8> {
    let body = serde_json::json!({
        "type": EVENT_TYPE,
        "timestamp": timestamp,
        "data": {"channel_id": channel_id, "items": activities},
    });
    // A Value always serializes.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// What the hook decided for one item.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Accept,
    Reject {
        reason: String,
    },
    /// Store these instead (each `None`: keep what was written).
    Rewrite {
        text: Option<String>,
        metadata: Option<Map<String, Value>>,
    },
}

/// Why a hook's answer could not be used (its item then takes `on_failure`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the hook answered HTTP {0}")]
    Status(u16),
    #[error("the hook's answer is not JSON")]
    NotJson,
    #[error("the hook answered {got} verdicts for {want} items")]
    Count { got: usize, want: usize },
    #[error("verdict {index}: {message}")]
    Verdict { index: usize, message: String },
}

/// Reads a hook's answer for `items` activities: status 200 and either one
/// verdict object (when `items` is 1) or `{"results": [verdict, …]}` with
/// one verdict per item, in order.
pub fn read_answer(status: u16, body: &[u8], items: usize) -> Result<Vec<Verdict>, AnswerError> {
    if status != 200 {
        return Err(AnswerError::Status(status));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| AnswerError::NotJson)?;
    let verdicts: Vec<&Value> = match value.get("results") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(_) => return Err(AnswerError::Verdict { index: 0, message: "`results` must be an array".into() }),
        None => vec![&value],
    };
    if verdicts.len() != items {
        return Err(AnswerError::Count { got: verdicts.len(), want: items });
    }
    verdicts
        .into_iter()
        .enumerate()
        .map(|(index, v)| verdict(v).map_err(|message| AnswerError::Verdict { index, message }))
        .collect()
}

fn verdict(v: &Value) -> Result<Verdict, String> {
    let map = v.as_object().ok_or("a verdict must be a JSON object")?;
    match map.get("action").and_then(Value::as_str) {
        Some("accept") => Ok(Verdict::Accept),
        Some("reject") => {
            let reason = match map.get("reason") {
                None | Some(Value::Null) => "rejected by the pre-publish hook".to_string(),
                Some(Value::String(r)) => cut(r, MAX_REASON_BYTES),
                Some(_) => return Err("`reason` must be a string".into()),
            };
            Ok(Verdict::Reject { reason })
        }
        Some("rewrite") => {
            let text = match map.get("text") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(t.clone()),
                Some(_) => return Err("`text` must be a string".into()),
            };
            let metadata = match map.get("metadata") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m.clone()),
                Some(_) => return Err("`metadata` must be a JSON object".into()),
            };
            if text.is_none() && metadata.is_none() {
                return Err("a rewrite needs `text` or `metadata`".into());
            }
            Ok(Verdict::Rewrite { text, metadata })
        }
        Some(other) => Err(format!("unknown action `{other}` (expected accept, reject or rewrite)")),
        None => Err("`action` is required".into()),
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<Option<HookConfig>, ConfigError> {
        HookConfig::parse(Some(&v), "config.pre_publish")
    }

    #[test]
    fn a_config_needs_a_url_and_defaults_to_one_second_failing_closed() {
        let c = parse(json!({"url": "http://127.0.0.1:9/hook"})).unwrap().unwrap();
        assert_eq!((c.timeout, c.on_failure), (DEFAULT_TIMEOUT, OnFailure::Reject));
        let c = parse(json!({"url": "https://h/x", "timeout_ms": 250, "on_failure": "accept"})).unwrap().unwrap();
        assert_eq!((c.timeout, c.on_failure), (Duration::from_millis(250), OnFailure::Accept));
        assert_eq!(HookConfig::parse(None, "config.pre_publish"), Ok(None));
        let field = |v| parse(v).unwrap_err().field;
        assert_eq!(field(json!({})), "config.pre_publish.url");
        assert_eq!(field(json!({"url": "ftp://x"})), "config.pre_publish.url");
        assert_eq!(field(json!({"url": "http://x", "timeout_ms": 0})), "config.pre_publish.timeout_ms");
        assert_eq!(field(json!({"url": "http://x", "timeout_ms": 10_001})), "config.pre_publish.timeout_ms");
        assert_eq!(field(json!({"url": "http://x", "on_failure": "maybe"})), "config.pre_publish.on_failure");
        assert_eq!(field(json!({"url": "http://x", "retries": 3})), "config.pre_publish.retries");
        assert_eq!(field(json!("http://x")), "config.pre_publish");
    }

    #[test]
    fn one_item_takes_a_bare_verdict_and_many_take_results_in_order() {
        assert_eq!(read_answer(200, br#"{"action":"accept"}"#, 1), Ok(vec![Verdict::Accept]));
        let many = br#"{"results":[{"action":"accept"},{"action":"reject","reason":"spam"},
            {"action":"rewrite","text":"[redacted]","metadata":{"flag":true}}]}"#;
        let got = read_answer(200, many, 3).unwrap();
        assert_eq!(got[1], Verdict::Reject { reason: "spam".into() });
        assert!(
            matches!(&got[2], Verdict::Rewrite { text: Some(t), metadata: Some(m) } if t == "[redacted]" && m["flag"] == true)
        );
    }

    #[test]
    fn an_unusable_answer_says_why() {
        assert_eq!(read_answer(500, b"", 1), Err(AnswerError::Status(500)));
        assert_eq!(read_answer(200, b"<html>", 1), Err(AnswerError::NotJson));
        assert_eq!(read_answer(200, br#"{"results":[]}"#, 2), Err(AnswerError::Count { got: 0, want: 2 }));
        assert!(matches!(read_answer(200, br#"{"action":"shrug"}"#, 1), Err(AnswerError::Verdict { index: 0, .. })));
        assert!(matches!(read_answer(200, br#"{"action":"rewrite"}"#, 1), Err(AnswerError::Verdict { .. })));
        assert!(matches!(read_answer(200, br#"{"action":"reject","reason":7}"#, 1), Err(AnswerError::Verdict { .. })));
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_BYTES);
        let body = serde_json::to_vec(&json!({"action": "reject", "reason": long})).unwrap();
        match &read_answer(200, &body, 1).unwrap()[0] {
            Verdict::Reject { reason } => {
                assert!(reason.len() <= MAX_REASON_BYTES && reason.len() >= MAX_REASON_BYTES - 1)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_request_names_its_type_channel_and_items() {
        let body = request_body("ch-1", "2026-12-06T00:00:00Z", &[json!({"text": "hi"})]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], EVENT_TYPE);
        assert_eq!(v["data"]["channel_id"], "ch-1");
        assert_eq!(v["data"]["items"][0]["text"], "hi");
    }
}
