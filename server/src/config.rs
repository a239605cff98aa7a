//! The server's configuration: one typed struct, [`Config`], loaded in layers
//! (built-in defaults < TOML file < environment < flags), validated at start
//! and printed with secrets masked.
//!
//! Flags and environment variables are folded together by clap ([`cli`]); the
//! TOML file is read by [`file`]; [`Config::resolve`] applies the layering so it
//! can be unit-tested without touching the process environment.

pub mod cli;
mod cluster;
pub mod edge;
mod file;
mod mask;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::rt::runtime::IoDriver;
pub use cli::{Cli, Command, Options};
pub use cluster::{ClusterConfig, MAX_NODE_ID};
pub use edge::{Edge, Origins, Rates};
pub use file::FileConfig;
pub use mask::mask_database_url;
pub use values::{LogFilter, LogFormat, Secret};

use crate::auth::AllowList;
use crate::net::http::parse::MAX_HEADERS_CAP;

/// Built-in defaults, the lowest layer. `--help` repeats them by hand.
pub mod defaults {
    pub const HTTP_ADDR: &str = "0.0.0.0:4000";
    pub const BINARY_ADDR: &str = "0.0.0.0:4001";
    pub const DATA_DIR: &str = "./converger-data";
    pub const ADMIN_ALLOW: &str = "127.0.0.0/8,::1/128";
    pub const LOG: &str = "info";
    pub const MAX_BODY_BYTES: usize = 1024 * 1024;
    pub const SHUTDOWN_GRACE_MS: u64 = 10_000;
    pub const HTTP_IDLE_TIMEOUT_MS: u64 = 120_000;
    pub const HTTP_REQUEST_TIMEOUT_MS: u64 = 30_000;
    pub const HTTP_MAX_HEADER_BYTES: usize = 16 * 1024;
    pub const HTTP_MAX_HEADERS: usize = 64;
    pub const HTTP_MAX_TARGET_BYTES: usize = 8 * 1024;
    /// As large as a REST body, so a message REST accepts WebSocket accepts too.
    pub const WS_MAX_MESSAGE_BYTES: usize = 1 << 20;
    /// Room for a few of the largest messages before a client counts as slow.
    pub const WS_SEND_QUEUE_BYTES: usize = 4 << 20;
    pub const WS_MESSAGES_PER_SECOND: u32 = 100;
    pub const DELIVERY_RETRY_BASE_MS: u64 = 10_000;
    pub const DELIVERY_CONCURRENCY: usize = 256;
    pub const DELIVERY_LEASE_MS: u64 = 60_000;
}

/// Why the configuration cannot be used. Each message is one line that names
/// the key (and for the file, the line) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}; check --config / CONVERGER_CONFIG", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {}{}{}: {message}", path.display(),
        line.map(|l| format!(", line {l}")).unwrap_or_default(),
        key.as_ref().map(|k| format!(", key `{k}`")).unwrap_or_default())]
    File { path: PathBuf, line: Option<usize>, key: Option<String>, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The JWT signing key and whether it was generated at start.
#[derive(Clone, Debug)]
pub struct JwtSecret {
    pub key: Secret,
    /// True when no secret was configured: tokens do not survive a restart.
    pub generated: bool,
}

/// The effective configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub binary_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// PostgreSQL URL; `None` means the embedded store in `data_dir`.
    pub database_url: Option<Secret>,
    /// `None` disables the admin API.
    pub admin_token: Option<Secret>,
    /// Set with `--nats-url`: this node is one of several (PostgreSQL + NATS).
    pub cluster: Option<ClusterConfig>,
    /// Whether an admin token was given at all (an empty one disables the
    /// admin API); when not, embedded storage generates one on first start.
    pub admin_token_given: bool,
    pub admin_allow: AllowList,
    pub jwt_secret: JwtSecret,
    pub shards: usize,
    pub io_driver: IoDriver,
    pub log: LogFilter,
    pub log_format: LogFormat,
    /// The OTLP/HTTP collector traces go to; `None`: tracing off.
    pub otlp_endpoint: Option<String>,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    pub http_idle_timeout: Duration,
    pub http_request_timeout: Duration,
    /// Request line plus headers; larger answers 431.
    pub http_max_header_bytes: usize,
    /// Headers per request (at most 256); more answers 431.
    pub http_max_headers: usize,
    /// Request target (path and query); longer answers 414.
    pub http_max_target_bytes: usize,
    /// Largest incoming WebSocket message; larger closes 1009.
    pub ws_max_message_bytes: usize,
    /// Bytes queued for one WebSocket client before it is closed 1008 `slow consumer`.
    pub ws_send_queue_bytes: usize,
    /// Incoming WebSocket messages per second per connection; more closes 1008 `rate limit`.
    pub ws_messages_per_second: u32,
    /// The base of the delivery retry schedule: base × 3^attempt.
    pub delivery_retry_base: Duration,
    /// Deliveries attempted at once by the delivery worker.
    pub delivery_concurrency: usize,
    /// How long a claimed delivery is held before another claim may retry it.
    pub delivery_lease: Duration,
    /// Whether deliveries may go to private, loopback and link-local addresses.
    pub delivery_allow_private: bool,
    /// CORS, origins, caps and rate limits.
    pub edge: Edge,
    /// The TOML file the configuration was read from, if any.
    pub config_file: Option<PathBuf>,
    /// Certificate and key files: both ports speak TLS. `None`: plain TCP.
    pub tls: Option<crate::net::tls::CertPaths>,
    /// With TLS: plain HTTP gets a 308 to https:// instead of a 400.
    pub tls_redirect: bool,
}

impl Config {
    /// The HTTP server's limits.
    pub fn http_limits(&self) -> crate::net::http::Limits {
        crate::net::http::Limits {
            max_body_bytes: self.max_body_bytes,
            idle_timeout: self.http_idle_timeout,
            request_timeout: self.http_request_timeout,
            max_head_bytes: self.http_max_header_bytes,
            max_headers: self.http_max_headers,
            max_target_bytes: self.http_max_target_bytes,
        }
    }

    /// A WebSocket's limits.
    pub fn ws_limits(&self) -> crate::net::ws::WsLimits {
        crate::net::ws::WsLimits {
            max_message_bytes: self.ws_max_message_bytes,
            send_queue_bytes: self.ws_send_queue_bytes,
            messages_per_second: self.ws_messages_per_second,
            ..crate::net::ws::WsLimits::default()
        }
    }

    /// Reads the TOML file named by the options (if any) and layers everything.
    pub fn load(options: Options) -> Result<Config, ConfigError> {
        let file = match &options.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Config::resolve(options, file)
    }

    /// Layers `options` (flags, then env, already folded by clap) over `file`
    /// over the defaults, and validates the result.
    pub fn resolve(mut o: Options, f: FileConfig) -> Result<Config, ConfigError> {
        let edge = Edge::resolve(std::mem::take(&mut o.edge), &f)?;
        let parse_default = |key: &'static str, text: &str| ConfigError::Invalid {
            key,
            message: format!("built-in default `{text}` does not parse"),
        };
        let http_addr = match o.http_addr.or(f.http_addr) {
            Some(a) => a,
            None => defaults::HTTP_ADDR.parse().map_err(|_| parse_default("http_addr", defaults::HTTP_ADDR))?,
        };
        let binary_addr = match o.binary_addr.or(f.binary_addr) {
            Some(a) => a,
            None => defaults::BINARY_ADDR.parse().map_err(|_| parse_default("binary_addr", defaults::BINARY_ADDR))?,
        };
        let admin_allow = match o.admin_allow.or(f.admin_allow) {
            Some(a) => a,
            None => defaults::ADMIN_ALLOW.parse().map_err(|_| parse_default("admin_allow", defaults::ADMIN_ALLOW))?,
        };
        let log = match o.log.or(f.log) {
            Some(l) => l,
            None => defaults::LOG.parse().map_err(|_| parse_default("log", defaults::LOG))?,
        };
        let shards = match o.shards.or(f.shards) {
            Some(0) => return Err(invalid("shards", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        };
        let max_body_bytes = match o.max_body_bytes.or(f.max_body_bytes) {
            Some(0) => return Err(invalid("max_body_bytes", "must be at least 1")),
            Some(n) => n,
            None => defaults::MAX_BODY_BYTES,
        };
        // An empty value (e.g. `DATABASE_URL=` in a compose file) means unset.
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty()).map(Secret::new);
        let jwt_secret = match non_empty(o.jwt_secret.or(f.jwt_secret)) {
            Some(key) => JwtSecret { key, generated: false },
            None => JwtSecret { key: random_secret()?, generated: true },
        };
        let database_url = non_empty(o.database_url.or(f.database_url));
        let cluster = ClusterConfig::resolve(
            o.nats_url.or(f.nats_url),
            o.node_id.or(f.node_id),
            database_url.is_some(),
            !jwt_secret.generated,
        )?;
        Ok(Config {
            http_addr,
            binary_addr,
            data_dir: o.data_dir.or(f.data_dir).unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR)),
            database_url,
            cluster,
            admin_token_given: o.admin_token.is_some() || f.admin_token.is_some(),
            admin_token: non_empty(o.admin_token.or(f.admin_token)),
            admin_allow,
            jwt_secret,
            shards,
            io_driver: o.io_driver.or(f.io_driver).unwrap_or_default(),
            log,
            log_format: o.log_format.or(f.log_format).unwrap_or_default(),
            otlp_endpoint: otlp_endpoint(o.otlp_endpoint.or(f.otlp_endpoint))?,
            max_body_bytes,
            shutdown_grace: Duration::from_millis(
                o.shutdown_grace_ms.or(f.shutdown_grace_ms).unwrap_or(defaults::SHUTDOWN_GRACE_MS),
            ),
            http_idle_timeout: millis(
                "http_idle_timeout_ms",
                o.http_idle_timeout_ms.or(f.http_idle_timeout_ms),
                defaults::HTTP_IDLE_TIMEOUT_MS,
            )?,
            http_request_timeout: millis(
                "http_request_timeout_ms",
                o.http_request_timeout_ms.or(f.http_request_timeout_ms),
                defaults::HTTP_REQUEST_TIMEOUT_MS,
            )?,
            http_max_header_bytes: at_least_one(
                "http_max_header_bytes",
                o.http_max_header_bytes.or(f.http_max_header_bytes),
                defaults::HTTP_MAX_HEADER_BYTES,
            )?,
            http_max_headers: match o.http_max_headers.or(f.http_max_headers) {
                Some(n) if !(1..=MAX_HEADERS_CAP).contains(&n) => {
                    return Err(invalid("http_max_headers", "must be from 1 to 256"))
                }
                Some(n) => n,
                None => defaults::HTTP_MAX_HEADERS,
            },
            http_max_target_bytes: at_least_one(
                "http_max_target_bytes",
                o.http_max_target_bytes.or(f.http_max_target_bytes),
                defaults::HTTP_MAX_TARGET_BYTES,
            )?,
            ws_max_message_bytes: at_least_one(
                "ws_max_message_bytes",
                o.ws_max_message_bytes.or(f.ws_max_message_bytes),
                defaults::WS_MAX_MESSAGE_BYTES,
            )?,
            ws_send_queue_bytes: at_least_one(
                "ws_send_queue_bytes",
                o.ws_send_queue_bytes.or(f.ws_send_queue_bytes),
                defaults::WS_SEND_QUEUE_BYTES,
            )?,
            ws_messages_per_second: at_least_one(
                "ws_messages_per_second",
                o.ws_messages_per_second.or(f.ws_messages_per_second),
                defaults::WS_MESSAGES_PER_SECOND,
            )?,
            delivery_retry_base: millis(
                "delivery_retry_base_ms",
                o.delivery_retry_base_ms.or(f.delivery_retry_base_ms),
                defaults::DELIVERY_RETRY_BASE_MS,
            )?,
            delivery_concurrency: at_least_one(
                "delivery_concurrency",
                o.delivery_concurrency.or(f.delivery_concurrency),
                defaults::DELIVERY_CONCURRENCY,
            )?,
            delivery_allow_private: o.delivery_allow_private.or(f.delivery_allow_private).unwrap_or(false),
            delivery_lease: millis(
                "delivery_lease_ms",
                o.delivery_lease_ms.or(f.delivery_lease_ms),
                defaults::DELIVERY_LEASE_MS,
            )?,
            edge,
            config_file: o.config,
            tls: match (o.tls_cert.or(f.tls_cert), o.tls_key.or(f.tls_key)) {
                (Some(cert), Some(key)) => Some(crate::net::tls::CertPaths { cert, key }),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(invalid(
                        "tls_key",
                        "--tls-cert is set without --tls-key: set both (CONVERGER_TLS_KEY) or neither",
                    ))
                }
                (None, Some(_)) => {
                    return Err(invalid(
                        "tls_cert",
                        "--tls-key is set without --tls-cert: set both (CONVERGER_TLS_CERT) or neither",
                    ))
                }
            },
            tls_redirect: o.tls_redirect.or(f.tls_redirect).unwrap_or(false),
        })
    }

    /// One line describing the effective configuration, secrets masked.
    pub fn masked_summary(&self) -> String {
        let mut storage = match &self.database_url {
            Some(url) => format!("database_url={}", mask_database_url(url.expose())),
            None => format!("storage=embedded data_dir={}", self.data_dir.display()),
        };
        if let Some(c) = &self.cluster {
            let urls: Vec<String> = c.nats_urls.iter().map(|u| mask_database_url(u)).collect();
            storage.push_str(&format!(" nats_url={} node_id={}", urls.join(","), c.node_id));
        }
        format!(
            "http_addr={} binary_addr={} {storage} admin_token={} admin_allow={} jwt_secret={} shards={} io_driver={} log={} log_format={} otlp_endpoint={} max_body_bytes={} shutdown_grace_ms={} http_idle_timeout_ms={} http_request_timeout_ms={} http_max_header_bytes={} http_max_headers={} http_max_target_bytes={} ws_max_message_bytes={} ws_send_queue_bytes={} ws_messages_per_second={} delivery_retry_base_ms={} delivery_concurrency={} delivery_lease_ms={} delivery_allow_private={} {} {} config={}",
            self.http_addr,
            self.binary_addr,
            if self.admin_token.is_some() { "***" } else { "unset (admin API disabled)" },
            self.admin_allow,
            if self.jwt_secret.generated { "*** (generated)" } else { "***" },
            self.shards,
            self.io_driver,
            self.log,
            self.log_format,
            self.otlp_endpoint.as_deref().map_or_else(|| "unset".to_string(), mask_database_url),
            self.max_body_bytes,
            self.shutdown_grace.as_millis(),
            self.http_idle_timeout.as_millis(),
            self.http_request_timeout.as_millis(),
            self.http_max_header_bytes,
            self.http_max_headers,
            self.http_max_target_bytes,
            self.ws_max_message_bytes,
            self.ws_send_queue_bytes,
            self.ws_messages_per_second,
            self.delivery_retry_base.as_millis(),
            self.delivery_concurrency,
            self.delivery_lease.as_millis(),
            self.delivery_allow_private,
            self.edge.summary(),
            self.tls_summary(),
            self.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into()),
        )
    }
}

impl Config {
    /// Whether TLS is on and from which files (their paths only: a key's
    /// contents never reach a log).
    fn tls_summary(&self) -> String {
        match &self.tls {
            Some(p) => format!(
                "tls=on tls_cert={} tls_key={} tls_redirect={}",
                p.cert.display(),
                p.key.display(),
                self.tls_redirect
            ),
            None => "tls=off".into(),
        }
    }
}

/// A duration option in milliseconds: given, or the default; zero is refused.
fn millis(key: &'static str, given: Option<u64>, default: u64) -> Result<Duration, ConfigError> {
    match given {
        Some(0) => Err(invalid(key, "must be at least 1")),
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Ok(Duration::from_millis(default)),
    }
}

/// A count option: given, or the default; zero is refused.
fn at_least_one<T: PartialEq + Default>(key: &'static str, given: Option<T>, default: T) -> Result<T, ConfigError> {
    match given {
        Some(n) if n == T::default() => Err(invalid(key, "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// An http(s) URL, or unset (an empty value is unset).
fn otlp_endpoint(value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => Ok(Some(url)),
        Some(url) => Err(invalid(
            "otlp_endpoint",
            &format!(
                "`{}` is not an http:// or https:// URL (OTLP/HTTP, e.g. http://127.0.0.1:4318)",
                mask_database_url(&url)
            ),
        )),
        None => Ok(None),
    }
}

fn invalid(key: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid { key, message: message.to_string() }
}

/// 32 random bytes, hex-encoded: the JWT key when none is configured.
fn random_secret() -> Result<Secret, ConfigError> {
    let secret = crate::auth::random_hex(32).map_err(|e| ConfigError::Invalid {
        key: "jwt_secret",
        message: format!("cannot generate a random secret ({e}); set --jwt-secret"),
    })?;
    Ok(Secret::new(secret))
}

#[cfg(test)]
mod tests;
