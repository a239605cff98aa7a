//! Reading a channel config: [`ConfigError`] names the key as `config.<key>`
//! (the API answers it as the `field` of a 422), [`Config`] gives typed reads
//! that refuse unknown keys, wrong types and bad URLs, and each adapter's
//! config type is a [`ChannelConfig`] read with them.

use serde_json::{Map, Value};

/// A config the adapter refuses; `field` is `config` or `config.<key>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { field: field.into(), message: message.into() }
    }

    fn key(key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(format!("config.{key}"), message)
    }
}

/// Longest accepted URL.
const MAX_URL_BYTES: usize = 2048;
/// Longest accepted token, key or id.
pub(crate) const MAX_VALUE_BYTES: usize = 1024;

/// A channel type's config, typed: an adapter's [`super::Adapter::Config`].
/// [`ChannelConfig::parse`] is the one way a config is read, so the checks
/// of a channel create or update are those of every delivery and inbound
/// request.
pub trait ChannelConfig<'a>: Sized {
    /// Every key the config takes. Any other is refused, so a typo does not
    /// silently fall back to a default.
    const KEYS: &'static [&'static str];

    /// Reads the keys (all among [`Self::KEYS`] by now) with [`Config`]'s
    /// typed reads, plus whatever the channel type checks beyond one key.
    fn read(config: &Config<'a>) -> Result<Self, ConfigError>;

    /// Refuses a non-object (`config`) and unknown keys (`config.<key>`), then [`Self::read`]s.
    fn parse(config: &'a Value) -> Result<Self, ConfigError> {
        Self::read(&Config::new(config, Self::KEYS)?)
    }
}

/// The config of a channel type that takes none (`websocket`): `{}` only.
impl ChannelConfig<'_> for () {
    const KEYS: &'static [&'static str] = &[];

    fn read(_: &Config<'_>) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Keys every channel type takes beside its own, read elsewhere: the
/// pre-publish hook (`super::pre_publish`).
pub const COMMON_KEYS: &[&str] = &["pre_publish"];

/// A config object whose keys are all among the adapter's known keys (and
/// [`COMMON_KEYS`]).
pub struct Config<'a>(&'a Map<String, Value>);

impl<'a> Config<'a> {
    pub fn new(config: &'a Value, known: &[&str]) -> Result<Config<'a>, ConfigError> {
        let map = config.as_object().ok_or_else(|| ConfigError::new("config", "`config` must be a JSON object"))?;
        if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str()) && !COMMON_KEYS.contains(&k.as_str())) {
            let expected = if known.is_empty() { "this channel type takes no config".into() } else { known.join(", ") };
            return Err(ConfigError::key(key, format!("unknown key `{key}` (expected: {expected})")));
        }
        Ok(Config(map))
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A non-blank string of at most `max` bytes, or `None` when absent (or null).
    pub fn string(&self, key: &str, max: usize) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Err(ConfigError::key(key, "must not be empty")),
            Some(Value::String(s)) if s.len() > max => {
                Err(ConfigError::key(key, format!("must be at most {max} bytes")))
            }
            Some(Value::String(s)) if s.chars().any(char::is_control) => {
                Err(ConfigError::key(key, "must not contain control characters"))
            }
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ConfigError::key(key, "must be a string")),
        }
    }

    pub fn required_string(&self, key: &str, max: usize) -> Result<&'a str, ConfigError> {
        self.string(key, max)?.ok_or_else(|| ConfigError::key(key, "is required"))
    }

    /// An `http://` or `https://` URL (see [`check_url`]).
    pub fn url(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        let Some(url) = self.string(key, MAX_URL_BYTES)? else { return Ok(None) };
        check_url(url).map_err(|m| ConfigError::key(key, m))?;
        Ok(Some(url))
    }

    /// A string of 1 to 20 ASCII digits (phone numbers without `+`, Meta's ids).
    pub fn digits(&self, key: &str) -> Result<&'a str, ConfigError> {
        let s = self.required_string(key, 20)?;
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::key(key, "must be digits only (a phone number without `+` or spaces)"));
        }
        Ok(s)
    }

    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(ConfigError::key(key, "must be a JSON object")),
        }
    }
}

/// Checks an absolute `http`/`https` URL with a host, no credentials, no
/// fragment and no whitespace. Loopback and private hosts are allowed: tests
/// and on-premises receivers use them.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| "must be an http:// or https:// URL".to_string())?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.starts_with(':') {
        return Err("must name a host".into());
    }
    if authority.contains('@') {
        return Err("must not carry credentials (`user:password@`); use headers".into());
    }
    if url.contains('#') {
        return Err("must not have a fragment (`#…`)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let v = json!({"url": "https://a.example", "colour": 1});
        assert_eq!(Config::new(&v, &["url"]).err().map(|e| e.field), Some("config.colour".into()));
        assert_eq!(Config::new(&json!({"x": 1}), &[]).err().map(|e| e.field), Some("config.x".into()));
        assert_eq!(Config::new(&json!([1]), &[]).err().map(|e| e.field), Some("config".into()));
        let v = json!({"a": 1, "b": " ", "c": "x\ny", "d": null});
        let c = Config::new(&v, &["a", "b", "c", "d", "e"]).expect("known keys");
        assert_eq!(c.string("a", 10).expect_err("type").field, "config.a");
        assert_eq!(c.string("b", 10).expect_err("blank").message, "must not be empty");
        assert!(c.string("c", 10).is_err(), "control characters");
        assert_eq!(c.string("d", 10), Ok(None), "null counts as absent");
        assert_eq!(c.required_string("e", 10).expect_err("missing").message, "is required");
    }

    #[test]
    fn urls_need_a_scheme_and_a_host_and_no_credentials() {
        for ok in ["https://a.example", "http://127.0.0.1:8080/hook?x=1", "https://[::1]:9/p"] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://a.example",
            "a.example/hook",
            "https://",
            "https://:80/x",
            "https://u:p@a.example/",
            "https://a.example/#x",
            "https://a.example/a b",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digits_refuse_plus_signs_and_letters() {
        let v = json!({"a": "15550783881", "b": "+1555", "c": "12ab"});
        let c = Config::new(&v, &["a", "b", "c"]).expect("keys");
        assert_eq!(c.digits("a"), Ok("15550783881"));
        assert!(c.digits("b").is_err() && c.digits("c").is_err());
    }
}
