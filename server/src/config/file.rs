//! The optional TOML config file (`--config`): the same keys as the flags, in
//! snake_case. Unknown keys and bad values are errors that name the key and the
//! line, on one line, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, IoDriver, LogFilter, LogFormat};
use crate::auth::AllowList;

/// Everything the file may set; absent keys are `None`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub http_addr: Option<SocketAddr>,
    pub binary_addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub admin_token: Option<String>,
    pub admin_allow: Option<AllowList>,
    pub jwt_secret: Option<String>,
    pub shards: Option<usize>,
    pub nats_url: Option<String>,
    pub node_id: Option<String>,
    pub io_driver: Option<IoDriver>,
    pub log: Option<LogFilter>,
    pub log_format: Option<LogFormat>,
    pub otlp_endpoint: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub shutdown_grace_ms: Option<u64>,
    pub http_idle_timeout_ms: Option<u64>,
    pub http_request_timeout_ms: Option<u64>,
    pub http_max_header_bytes: Option<usize>,
    pub http_max_headers: Option<usize>,
    pub http_max_target_bytes: Option<usize>,
    pub ws_max_message_bytes: Option<usize>,
    pub ws_send_queue_bytes: Option<usize>,
    pub ws_messages_per_second: Option<u32>,
    pub delivery_retry_base_ms: Option<u64>,
    pub delivery_concurrency: Option<usize>,
    pub delivery_lease_ms: Option<u64>,
    pub delivery_allow_private: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_redirect: Option<bool>,
    // The edge (config/edge.rs): flat keys, like the flags.
    pub cors_origins: Option<super::Origins>,
    pub cors_credentials: Option<bool>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub max_subscriptions_per_connection: Option<usize>,
    pub tenant_requests_per_second: Option<u32>,
    pub ip_requests_per_second: Option<u32>,
    pub tenant_activities_per_second: Option<u32>,
    pub ip_connections_per_second: Option<u32>,
    pub channel_deliveries_per_second: Option<u32>,
}

impl FileConfig {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::ReadFile { path: path.to_path_buf(), source })?;
        Self::parse(path, &text)
    }

    /// Parses TOML `text`; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => locate(text, span.start),
                None => (None, None),
            };
            ConfigError::File { path: path.to_path_buf(), line, key, message: e.message().trim().replace('\n', " ") }
        })
    }
}

/// The 1-based line of byte `offset`, and the key assigned on that line if any.
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<String>) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('#') && !k.starts_with('['));
    (Some(line_no), key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(Path::new("c.toml"), text)
    }

    #[test]
    fn known_keys_parse_to_typed_values() {
        let f = parse("http_addr = \"127.0.0.1:9\"\nshards = 3\nio_driver = \"epoll\"\nadmin_allow = \"10.0.0.0/8\"\n")
            .expect("valid file");
        assert_eq!(f.http_addr, Some("127.0.0.1:9".parse().expect("addr")));
        assert_eq!(f.shards, Some(3));
        assert_eq!(f.io_driver, Some(IoDriver::Epoll));
        assert_eq!(f.admin_allow.map(|a| a.to_string()), Some("10.0.0.0/8".into()));
    }

    #[test]
    fn the_edge_keys_are_flat_like_the_flags() {
        let text = "cors_origins = \"https://a.example\"\ncors_credentials = true\nmax_connections = 10\ntenant_activities_per_second = 7\n";
        let f = parse(text).expect("valid file");
        assert_eq!(f.cors_origins, Some(super::super::Origins::List(vec!["https://a.example".into()])));
        assert_eq!(
            (f.cors_credentials, f.max_connections, f.tenant_activities_per_second),
            (Some(true), Some(10), Some(7))
        );
        let err = parse("cors_origins = \"example.com\"\n").expect_err("not an origin").to_string();
        assert!(err.contains("cors_origins") && err.contains("example.com"), "{err}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("shards = 2\n\nhttp_adr = \"127.0.0.1:1\"\n").expect_err("unknown key").to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("http_adr"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let err = parse("# comment\nhttp_addr = \"not an address\"\n").expect_err("bad value").to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("http_addr"), "{err}");
        let err = parse("admin_allow = \"10.0.0.0/99\"\n").expect_err("bad cidr").to_string();
        assert!(err.contains("admin_allow") && err.contains("10.0.0.0/99"), "{err}");
    }

    #[test]
    fn malformed_toml_is_an_error_with_a_line() {
        let err = parse("shards = \n").expect_err("syntax").to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
