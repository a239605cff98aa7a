//! Command-line flags (clap). Every option is an `Option` so the loader can tell
//! "given" from "not given" and layer it over the TOML file; clap itself folds
//! the environment variable in (flag > env). Defaults therefore live in
//! [`super::defaults`] and are written into the help text by hand.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::{IoDriver, LogFilter, LogFormat};
use crate::auth::AllowList;

/// Converger: a multi-tenant, real-time conversation messaging hub.
///
/// Configuration is layered: built-in defaults < TOML file (--config) <
/// environment variables < command-line flags. The TOML file uses the same
/// keys as the flags, in snake_case (e.g. `http_addr = "0.0.0.0:4000"`).
#[derive(Debug, Parser)]
#[command(name = "converger", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub options: Options,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending PostgreSQL migrations and exit (the embedded store needs none).
    Migrate,
}

/// Every configuration option, as given on the command line or in the environment.
#[derive(Debug, Default, Args)]
pub struct Options {
    /// Address for REST, WebSocket and admin HTTP (port 0 = any free port)
    /// [default: 0.0.0.0:4000]
    #[arg(long, env = "CONVERGER_HTTP_ADDR", value_name = "ADDR", hide_env_values = true, global = true)]
    pub http_addr: Option<SocketAddr>,

    /// Address for the binary protocol over TCP (port 0 = any free port)
    /// [default: 0.0.0.0:4001]
    #[arg(long, env = "CONVERGER_BINARY_ADDR", value_name = "ADDR", hide_env_values = true, global = true)]
    pub binary_addr: Option<SocketAddr>,

    /// Directory of the embedded storage (used when no database URL is set)
    /// [default: ./converger-data]
    #[arg(long, env = "CONVERGER_DATA_DIR", value_name = "DIR", hide_env_values = true, global = true)]
    pub data_dir: Option<PathBuf>,

    /// PostgreSQL URL; when set, PostgreSQL replaces the embedded storage
    /// [default: unset]
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Bearer token for the admin API; empty disables it [default: with
    /// embedded storage, generated on first start and kept in DATA_DIR/admin-token;
    /// with PostgreSQL, unset = admin API disabled]
    #[arg(long, env = "CONVERGER_ADMIN_TOKEN", value_name = "TOKEN", hide_env_values = true, global = true)]
    pub admin_token: Option<String>,

    /// Client IPs allowed to use the admin API, comma-separated CIDRs
    /// [default: 127.0.0.0/8,::1/128]
    #[arg(long, env = "CONVERGER_ADMIN_ALLOW", value_name = "CIDRS", hide_env_values = true, global = true)]
    pub admin_allow: Option<AllowList>,

    /// HS256 key for client tokens (JWT) [default: with embedded storage,
    /// generated once and kept in DATA_DIR/jwt-secret; with PostgreSQL, random
    /// per start, with a warning: tokens die with the process]
    #[arg(long, env = "CONVERGER_JWT_SECRET", value_name = "SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,

    /// NATS server(s) of a cluster, comma-separated (e.g.
    /// `nats://10.0.0.5:4222,nats://10.0.0.6:4222`). With PostgreSQL this runs
    /// the node as one of several sharing the database; needs --jwt-secret set
    /// alike on every node. Not with embedded storage [default: unset = one node]
    #[arg(long, env = "CONVERGER_NATS_URL", value_name = "URLS", hide_env_values = true, global = true)]
    pub nats_url: Option<String>,

    /// This node's name in a cluster: letters, digits, `-` and `_`, at most 64
    /// [default: generated at each start, shown in the logs and metrics]
    #[arg(long, env = "CONVERGER_NODE_ID", value_name = "ID", hide_env_values = true, global = true)]
    pub node_id: Option<String>,

    /// Executor threads (shards), one runtime each [default: number of CPU cores]
    #[arg(long, env = "CONVERGER_SHARDS", value_name = "N", hide_env_values = true, global = true)]
    pub shards: Option<usize>,

    /// TOML file with the same keys in snake_case [default: unset]
    #[arg(long, env = "CONVERGER_CONFIG", value_name = "FILE", hide_env_values = true, global = true)]
    pub config: Option<PathBuf>,

    /// I/O driver of the shard runtimes: auto, io-uring or epoll; auto uses
    /// io_uring and falls back to epoll where the kernel or container refuses
    /// io_uring [default: auto]
    #[arg(long, env = "CONVERGER_IO_DRIVER", value_name = "DRIVER", hide_env_values = true, global = true)]
    pub io_driver: Option<IoDriver>,

    /// Log filter: a level, then per-target levels, e.g. `info` or
    /// `info,converger_server=debug` (levels: off, error, warn, info, debug, trace)
    /// [default: info]
    #[arg(long, env = "CONVERGER_LOG", value_name = "FILTER", hide_env_values = true, global = true)]
    pub log: Option<LogFilter>,

    /// Log line format: `text` (for people) or `json` (one JSON object a
    /// line: time, level, target, message, fields, and the request_id or
    /// connection_id of the request or connection it is about) [default: text]
    #[arg(long, env = "CONVERGER_LOG_FORMAT", value_name = "FORMAT", hide_env_values = true, global = true)]
    pub log_format: Option<LogFormat>,

    /// OpenTelemetry traces: the OTLP/HTTP collector spans are sent to, as
    /// JSON, e.g. `http://127.0.0.1:4318` (`/v1/traces` is added). A span per
    /// REST request, owner commit batch, fan-out and delivery attempt;
    /// `traceparent` is read on REST requests and binary publishes and sent
    /// on webhook deliveries [default: unset = no tracing, no cost]
    #[arg(long, env = "CONVERGER_OTLP_ENDPOINT", value_name = "URL", hide_env_values = true, global = true)]
    pub otlp_endpoint: Option<String>,

    /// Largest accepted HTTP request body in bytes; larger ones get 413
    /// [default: 1048576 (1 MiB)]
    #[arg(long, env = "CONVERGER_MAX_BODY_BYTES", value_name = "BYTES", hide_env_values = true, global = true)]
    pub max_body_bytes: Option<usize>,

    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish, in
    /// milliseconds [default: 10000]
    #[arg(long, env = "CONVERGER_SHUTDOWN_GRACE_MS", value_name = "MS", hide_env_values = true, global = true)]
    pub shutdown_grace_ms: Option<u64>,

    /// Close a kept-alive HTTP connection after this many milliseconds without
    /// a request [default: 120000]
    #[arg(long, env = "CONVERGER_HTTP_IDLE_TIMEOUT_MS", value_name = "MS", hide_env_values = true, global = true)]
    pub http_idle_timeout_ms: Option<u64>,

    /// Answer 408 and close when a request has not arrived whole this many
    /// milliseconds after its first byte [default: 30000]
    #[arg(long, env = "CONVERGER_HTTP_REQUEST_TIMEOUT_MS", value_name = "MS", hide_env_values = true, global = true)]
    pub http_request_timeout_ms: Option<u64>,

    /// Largest HTTP request line plus headers in bytes; larger gets 431
    /// [default: 16384 (16 KiB)]
    #[arg(long, env = "CONVERGER_HTTP_MAX_HEADER_BYTES", value_name = "BYTES", hide_env_values = true, global = true)]
    pub http_max_header_bytes: Option<usize>,

    /// Most headers in one HTTP request (1 to 256); more gets 431 [default: 64]
    #[arg(long, env = "CONVERGER_HTTP_MAX_HEADERS", value_name = "N", hide_env_values = true, global = true)]
    pub http_max_headers: Option<usize>,

    /// Longest HTTP request target (path and query) in bytes; longer gets 414
    /// [default: 8192 (8 KiB)]
    #[arg(long, env = "CONVERGER_HTTP_MAX_TARGET_BYTES", value_name = "BYTES", hide_env_values = true, global = true)]
    pub http_max_target_bytes: Option<usize>,

    /// Largest incoming WebSocket message in bytes (fragments together);
    /// larger ones close the connection 1009 [default: 1048576 (1 MiB)]
    #[arg(long, env = "CONVERGER_WS_MAX_MESSAGE_BYTES", value_name = "BYTES", hide_env_values = true, global = true)]
    pub ws_max_message_bytes: Option<usize>,

    /// Bytes queued for one WebSocket client before it counts as a slow
    /// consumer and is closed 1008 [default: 4194304 (4 MiB)]
    #[arg(long, env = "CONVERGER_WS_SEND_QUEUE_BYTES", value_name = "BYTES", hide_env_values = true, global = true)]
    pub ws_send_queue_bytes: Option<usize>,

    /// Incoming WebSocket messages per second per connection (bursts up to one
    /// second's worth); more close the connection 1008 [default: 100]
    #[arg(long, env = "CONVERGER_WS_MESSAGES_PER_SECOND", value_name = "N", hide_env_values = true, global = true)]
    pub ws_messages_per_second: Option<u32>,

    /// Base of the delivery retry schedule in milliseconds: a failed delivery
    /// is retried after base × 3^attempt, at most 5 attempts [default: 10000]
    #[arg(long, env = "CONVERGER_DELIVERY_RETRY_BASE_MS", value_name = "MS", hide_env_values = true, global = true)]
    pub delivery_retry_base_ms: Option<u64>,

    /// Deliveries (webhook calls, WhatsApp sends, echo replies) attempted at
    /// once [default: 256]
    #[arg(long, env = "CONVERGER_DELIVERY_CONCURRENCY", value_name = "N", hide_env_values = true, global = true)]
    pub delivery_concurrency: Option<usize>,

    /// How long a claimed delivery is held, in milliseconds: if the server
    /// dies mid-delivery, the delivery is retried once this has passed
    /// [default: 60000]
    #[arg(long, env = "CONVERGER_DELIVERY_LEASE_MS", value_name = "MS", hide_env_values = true, global = true)]
    pub delivery_lease_ms: Option<u64>,

    /// Let deliveries go to private, loopback and link-local addresses
    /// (on-premise receivers, tests). Off by default: a tenant's webhook URL
    /// must not reach into the server's own network [default: false]
    #[arg(
        long,
        env = "CONVERGER_DELIVERY_ALLOW_PRIVATE",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        hide_env_values = true,
        global = true
    )]
    pub delivery_allow_private: Option<bool>,

    /// TLS certificate chain (PEM: the server's certificate first, then
    /// intermediates). With --tls-key, both the HTTP and the binary port
    /// speak TLS only; both files are read again on SIGHUP [default: unset = no TLS]
    #[arg(long, env = "CONVERGER_TLS_CERT", value_name = "FILE", hide_env_values = true, global = true)]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key of the certificate (PEM: PKCS#8, PKCS#1 or SEC1)
    /// [default: unset = no TLS]
    #[arg(long, env = "CONVERGER_TLS_KEY", value_name = "FILE", hide_env_values = true, global = true)]
    pub tls_key: Option<PathBuf>,

    /// With TLS on, answer plain HTTP on the HTTP port with a 308 redirect to
    /// https://<Host><target> instead of a 400 `tls_required` [default: false]
    #[arg(
        long,
        env = "CONVERGER_TLS_REDIRECT",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        hide_env_values = true,
        global = true
    )]
    pub tls_redirect: Option<bool>,
    #[command(flatten)]
    pub edge: super::edge::EdgeOptions,
}
