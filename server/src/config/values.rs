//! Small typed config values: the log filter, the log format and a
//! secret string whose `Debug` never prints it. Each parses from a string the
//! same way from a flag, the environment or the TOML file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::rt::runtime::IoDriver;
use tracing_subscriber::filter::Targets;

/// A log filter such as `info` or `info,converger_server=debug`.
///
/// Stricter than [`Targets`]' own parser: a bare word must be a level, so a
/// typo like `inof` is an error instead of a filter for a target named `inof`.
#[derive(Clone, Debug)]
pub struct LogFilter {
    text: String,
    targets: Targets,
}

impl LogFilter {
    /// The filter; the NATS client is held to warnings unless named (the
    /// cluster bus logs what matters of it — connected, lost, slow — itself,
    /// and the client's own info lines repeat on every reconnect attempt).
    pub fn targets(&self) -> Targets {
        let quieter = self.text.split(',').any(|p| matches!(p.trim().to_ascii_lowercase().as_str(), "error" | "off"));
        if quieter || self.text.contains("async_nats") {
            return self.targets.clone();
        }
        self.targets.clone().with_target("async_nats", tracing::Level::WARN)
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

impl FromStr for LogFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().to_string();
        if text.is_empty() {
            return Err("empty log filter (try `info`)".into());
        }
        for part in text.split(',').map(str::trim) {
            let level = part.rsplit_once('=').map(|(_, l)| l).unwrap_or(part);
            if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "bad log directive `{part}`: expected LEVEL or target=LEVEL, LEVEL one of {}",
                    LEVELS.join(", ")
                ));
            }
        }
        let targets = text.parse::<Targets>().map_err(|e| format!("bad log filter `{text}`: {e}"))?;
        Ok(LogFilter { text, targets })
    }
}

/// How log lines are written: `text` for people, `json` (one object a line) for machines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format `{other}` (expected text or json)")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A secret (token, key, URL with a password). `Debug` and `Display` mask it;
/// [`Secret::expose`] is the one door to the value, easy to grep for.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Deserializes a string through `FromStr`, so the TOML file and the flags
/// accept exactly the same spellings.
macro_rules! deserialize_via_from_str {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_via_from_str!(IoDriver, LogFilter, LogFormat);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_driver_spellings() {
        assert_eq!("auto".parse(), Ok(IoDriver::Auto));
        assert_eq!("io-uring".parse(), Ok(IoDriver::IoUring));
        assert_eq!("EPOLL".parse(), Ok(IoDriver::Epoll));
        assert!("kqueue".parse::<IoDriver>().is_err());
    }

    #[test]
    fn log_filter_accepts_levels_and_targets_and_rejects_typos() {
        assert!("info".parse::<LogFilter>().is_ok());
        assert!("info,converger_server=debug".parse::<LogFilter>().is_ok());
        assert!("inof".parse::<LogFilter>().is_err());
        assert!("converger_server=loud".parse::<LogFilter>().is_err());
        assert!("".parse::<LogFilter>().is_err());
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s} {s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
