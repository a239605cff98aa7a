//! Strict JSON: the one check every JSON input of a client passes before it
//! is read or stored, whichever transport brought it (a REST body, a Phoenix
//! payload, a binary frame's `metadata`, `attachments` or `data`).
//!
//! What is stored is copied back out byte for byte to every reader (REST,
//! Phoenix replays, binary deliveries, webhooks), so a document must be one
//! that any strict parser accepts and reads the same way:
//! - RFC 8259 syntax, UTF-8, nothing after the value;
//! - at most [`MAX_DEPTH`] nested arrays and objects (deeper documents make
//!   recursive parsers overflow: Python's `json`, serde without a limit);
//! - strings without raw control characters or lone surrogates (`"\ud800"`
//!   is not text in any encoding a client can decode);
//! - no repeated key in an object (parsers disagree on which one wins, and
//!   the server never guesses: `{"idempotency_key":"a","idempotency_key":"b"}`
//!   is refused, not read as `b`);
//! - numbers kept at their exact value: a number is accepted only when a
//!   64-bit integer or an IEEE-754 double holds the value as written, so
//!   `1e999` (infinite), `1e-400` (zero), `18446744073709551616` (2^64) and
//!   `0.1000000000000000000001` (rounded) are refused instead of being
//!   changed on the way to storage.

use std::borrow::Cow;
use std::collections::HashSet;

use converger_storage::Json;
use serde_json::{Map, Number, Value};

/// Nested arrays and objects a document may have.
pub const MAX_DEPTH: usize = 64;

/// Why a document is not strict JSON; `at` is the byte offset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("not UTF-8 (at byte {at})")]
    NotUtf8 { at: usize },
    #[error("{what} at byte {at}")]
    Syntax { at: usize, what: &'static str },
    #[error("nested deeper than {MAX_DEPTH} levels at byte {at}")]
    TooDeep { at: usize },
    #[error("a lone surrogate escape at byte {at} (not a character)")]
    LoneSurrogate { at: usize },
    #[error("the key `{key}` appears twice in one object (at byte {at})")]
    DuplicateKey { at: usize, key: String },
    #[error("the number `{number}` at byte {at} cannot be kept exactly (out of the range or precision of a 64-bit integer or double)")]
    Number { at: usize, number: String },
    #[error("expected a JSON object")]
    NotObject,
}

/// Checks that `text` is one strict JSON document.
pub fn check(text: &str) -> Result<(), JsonError> {
    Scanner { b: text.as_bytes(), at: 0, open: Vec::new() }.document()
}

/// Checks `bytes` and reads them as a JSON object (a request body, a payload).
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError::NotUtf8 { at: e.valid_up_to() })?;
    check(text)?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JsonError::NotObject),
        // Unreachable for a checked document; answered as a syntax error all the same.
        Err(_) => Err(JsonError::Syntax { at: 0, what: "unreadable JSON" }),
    }
}

/// Checks `text` and keeps it as written (a JSON field that came as text,
/// as the binary protocol's `metadata` does).
pub fn document(text: String) -> Result<Json, JsonError> {
    check(&text)?;
    Json::parse(text).map_err(|_| JsonError::Syntax { at: 0, what: "unreadable JSON" })
}

/// An open array, or an open object with the keys it has so far.
enum Open {
    Array,
    Object(HashSet<String>),
}

struct Scanner<'a> {
    b: &'a [u8],
    at: usize,
    open: Vec<Open>,
}

impl Scanner<'_> {
    fn syntax<T>(&self, what: &'static str) -> Result<T, JsonError> {
        Err(JsonError::Syntax { at: self.at, what })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A whole document: one value, then only whitespace. Iterative (an
    /// explicit stack), so no input can exhaust the thread's stack.
    fn document(mut self) -> Result<(), JsonError> {
        'value: loop {
            self.ws();
            match self.peek() {
                Some(c @ (b'{' | b'[')) => {
                    if self.open.len() == MAX_DEPTH {
                        return Err(JsonError::TooDeep { at: self.at });
                    }
                    self.at += 1;
                    self.ws();
                    if c == b'[' {
                        self.open.push(Open::Array);
                        if self.peek() != Some(b']') {
                            continue 'value;
                        }
                    } else {
                        self.open.push(Open::Object(HashSet::new()));
                        if self.peek() != Some(b'}') {
                            self.member_key()?;
                            continue 'value;
                        }
                    }
                    // An empty container: closed below like any other.
                }
                Some(b'"') => {
                    self.string(false)?;
                }
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return self.syntax("expected a value"),
                None => return self.syntax("unexpected end of input, expected a value"),
            }
            // A value ended (or a container opened empty): what follows it.
            loop {
                self.ws();
                let Some(open) = self.open.last() else {
                    return match self.peek() {
                        None => Ok(()),
                        Some(_) => self.syntax("trailing characters after the document"),
                    };
                };
                let close = if matches!(open, Open::Array) { b']' } else { b'}' };
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        if close == b'}' {
                            self.ws();
                            self.member_key()?;
                        }
                        continue 'value;
                    }
                    Some(c) if c == close => {
                        self.at += 1;
                        self.open.pop();
                    }
                    Some(_) if close == b']' => return self.syntax("expected `,` or `]`"),
                    Some(_) => return self.syntax("expected `,` or `}`"),
                    None => return self.syntax("unexpected end of input inside a container"),
                }
            }
        }
    }

    /// `"key" :` of the innermost object, refusing a key it already has.
    fn member_key(&mut self) -> Result<(), JsonError> {
        let start = self.at;
        if self.peek() != Some(b'"') {
            return self.syntax("expected a string key");
        }
        let key = self.string(true)?.into_owned();
        if let Some(Open::Object(keys)) = self.open.last_mut() {
            if keys.contains(&key) {
                return Err(JsonError::DuplicateKey { at: start, key });
            }
            keys.insert(key);
        }
        self.ws();
        if self.peek() != Some(b':') {
            return self.syntax("expected `:` after a key");
        }
        self.at += 1;
        Ok(())
    }

    fn literal(&mut self, word: &'static str) -> Result<(), JsonError> {
        if self.b[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(())
        } else {
            self.syntax("expected `true`, `false` or `null`")
        }
    }

    /// A string starting at the opening quote; its decoded text when `decode`
    /// (keys are compared decoded: `"a"` and `"\u0061"` are one key).
    fn string(&mut self, decode: bool) -> Result<Cow<'_, str>, JsonError> {
        self.at += 1;
        let start = self.at;
        let mut decoded: Option<String> = None;
        let mut run = start;
        loop {
            let Some(c) = self.peek() else { return self.syntax("unterminated string") };
            match c {
                b'"' => {
                    let end = self.at;
                    self.at += 1;
                    let text = |from: usize, to: usize| std::str::from_utf8(&self.b[from..to]).unwrap_or_default();
                    return Ok(match decoded {
                        Some(mut s) => {
                            s.push_str(text(run, end));
                            Cow::Owned(s)
                        }
                        None if decode => Cow::Borrowed(text(start, end)),
                        None => Cow::Borrowed(""),
                    });
                }
                0x00..=0x1f => return self.syntax("a control character inside a string (it must be escaped)"),
                b'\\' => {
                    let escape_at = self.at;
                    if decode {
                        let s = decoded.get_or_insert_with(String::new);
                        s.push_str(std::str::from_utf8(&self.b[run..escape_at]).unwrap_or_default());
                    }
                    let ch = self.escape()?;
                    if let (Some(s), Some(ch)) = (decoded.as_mut(), ch) {
                        s.push(ch);
                    }
                    run = self.at;
                }
                _ => self.at += 1,
            }
        }
    }

    /// One escape sequence starting at the backslash.
    fn escape(&mut self) -> Result<Option<char>, JsonError> {
        let at = self.at;
        self.at += 1;
        let Some(c) = self.peek() else { return self.syntax("unterminated escape") };
        self.at += 1;
        let simple = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                return match high {
                    0xD800..=0xDBFF => {
                        if self.b.get(self.at..self.at + 2) != Some(b"\\u") {
                            return Err(JsonError::LoneSurrogate { at });
                        }
                        self.at += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(JsonError::LoneSurrogate { at });
                        }
                        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                        Ok(char::from_u32(code))
                    }
                    0xDC00..=0xDFFF => Err(JsonError::LoneSurrogate { at }),
                    _ => Ok(char::from_u32(high)),
                };
            }
            _ => return Err(JsonError::Syntax { at, what: "an unknown escape sequence" }),
        };
        Ok(Some(simple))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.b.get(self.at..self.at + 4).and_then(|h| std::str::from_utf8(h).ok());
        match digits.filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit())) {
            Some(h) => {
                self.at += 4;
                u32::from_str_radix(h, 16).or_else(|_| self.syntax("a bad \\u escape"))
            }
            None => self.syntax("a \\u escape needs four hex digits"),
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept exactly.
    fn number(&mut self) -> Result<(), JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.syntax("a number needs digits"),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.syntax("a fraction needs digits");
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.syntax("an exponent needs digits");
            }
            self.digits();
        }
        let token = std::str::from_utf8(&self.b[start..self.at]).unwrap_or_default();
        match kept_exactly(token) {
            true => Ok(()),
            false => Err(JsonError::Number { at: start, number: token.chars().take(40).collect() }),
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }
}

/// Whether reading `token` as JSON readers do (serde_json: a 64-bit integer,
/// else a double) and writing it back keeps its decimal value.
fn kept_exactly(token: &str) -> bool {
    let Ok(number) = serde_json::from_str::<Number>(token) else { return false };
    if number.as_f64().is_some_and(|f| !f.is_finite()) {
        return false;
    }
    Decimal::of(token) == Decimal::of(&number.to_string())
}

/// A decimal number's value: zero, or a sign, its significant digits (no
/// leading or trailing zeros) and the power of ten of the first one.
#[derive(Debug, PartialEq, Eq)]
enum Decimal {
    Zero,
    Value { negative: bool, digits: String, exponent: i64 },
}

impl Decimal {
    fn of(text: &str) -> Decimal {
        let (negative, text) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(i) => (&text[..i], exponent_of(&text[i + 1..])),
            None => (text, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all: String = int.chars().chain(frac.chars()).collect();
        let leading = all.len() - all.trim_start_matches('0').len();
        let digits = all.trim_start_matches('0').trim_end_matches('0').to_string();
        if digits.is_empty() {
            return Decimal::Zero;
        }
        // 0.d1d2… × 10^(len(int) + e), less one for each leading zero.
        let exponent = exponent.saturating_add(int.len() as i64).saturating_sub(leading as i64);
        Decimal::Value { negative, digits, exponent }
    }
}

fn exponent_of(text: &str) -> i64 {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = digits.bytes().fold(0i64, |n, d| n.saturating_mul(10).saturating_add(i64::from(d - b'0')));
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> JsonError {
        check(text).expect_err(text)
    }

    #[test]
    fn accepts_what_rfc_8259_allows() {
        for ok in [
            "{}",
            "[]",
            " {\"a\": [1, -2.5e3, 0, -0, 0.1, 1E+2, true, false, null, \"x\\n\\u00e9\\ud83d\\ude00\"]} ",
            "\"just a string\"",
            "123",
            "{\"a\":{\"b\":{}},\"c\":[[],[{}]]}",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "1e20",
            "100000000000000000000",
            "0.30000000000000004",
            "5e-324",
            "1.7976931348623157e308",
            "0e999999999999999999999",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_syntax() {
        for bad in [
            "",
            " ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{a:1}",
            "[1 2]",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "-",
            "tru",
            "nul",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "{} {}",
            "[]]",
            "'a'",
            "NaN",
            "Infinity",
            "\"a\tb\"",
        ] {
            assert!(matches!(refused(bad), JsonError::Syntax { .. }), "{bad:?}: {:?}", check(bad));
        }
    }

    #[test]
    fn refuses_deep_nesting_without_recursing() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check(&ok), Ok(()));
        serde_json::from_str::<Value>(&ok).expect("every accepted depth is readable");
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(refused(&deep), JsonError::TooDeep { .. }));
        let huge = "{\"a\":".repeat(100_000);
        assert!(matches!(refused(&huge), JsonError::TooDeep { .. }));
    }

    #[test]
    fn refuses_lone_surrogates_and_control_characters() {
        for bad in ["\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "{\"\\ud800\":1}", "\"\\ud83dx\""] {
            assert!(matches!(refused(bad), JsonError::LoneSurrogate { .. }), "{bad}");
        }
        assert!(matches!(refused("\"a\u{1}b\""), JsonError::Syntax { .. }));
    }

    #[test]
    fn refuses_repeated_keys_also_when_escaped_differently() {
        assert_eq!(
            refused(r#"{"idempotency_key":"a","idempotency_key":"b"}"#),
            JsonError::DuplicateKey { at: 23, key: "idempotency_key".into() }
        );
        assert!(matches!(refused(r#"{"a":1,"\u0061":2}"#), JsonError::DuplicateKey { .. }));
        assert!(matches!(refused(r#"{"x":{"a":1,"a":1}}"#), JsonError::DuplicateKey { .. }));
        assert_eq!(check(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#), Ok(()), "one key per object");
    }

    #[test]
    fn refuses_numbers_that_would_change() {
        for bad in [
            "1e999",
            "-1e999",
            "1e-400",
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "0.1000000000000000000001",
            "{\"a\":1e999}",
        ] {
            assert!(matches!(refused(bad), JsonError::Number { .. }), "{bad}: {:?}", check(bad));
        }
    }

    #[test]
    fn objects_are_read_after_the_check() {
        assert_eq!(object(br#"{"a":1}"#).expect("object").len(), 1);
        assert_eq!(object(b"[1]"), Err(JsonError::NotObject));
        assert!(matches!(object(b"{\"a\":\xff}"), Err(JsonError::NotUtf8 { .. })));
        assert!(matches!(object(br#"{"a":1,"a":2}"#), Err(JsonError::DuplicateKey { .. })));
    }

    #[test]
    fn decimal_values_compare_across_notations() {
        assert_eq!(Decimal::of("100"), Decimal::of("1e2"));
        assert_eq!(Decimal::of("0.00120"), Decimal::of("1.2e-3"));
        assert_eq!(Decimal::of("-0.0"), Decimal::Zero);
        assert_ne!(Decimal::of("-1"), Decimal::of("1"));
    }
}
