//! Start-up steps that can fail because of the environment — reading the TLS
//! certificate, binding ports, preparing the data directory, opening storage — and [`StartupError`], whose
//! every message is one line saying what is wrong and how to fix it.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use converger_storage::embedded::{EmbeddedOptions, EmbeddedStore};
use converger_storage::postgres::{PgOptions, PgStore};
use converger_storage::{Store, StoreError};

use crate::config::{mask_database_url, Config, ConfigError};
use crate::net::tls::{CertFile, Certs, TlsError, TlsSettings};
use crate::net::{bind_reuseport, Listeners};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen for {what} on {addr}: {}; {}", io_reason(source), bind_hint(source, flag))]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        flag: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("data directory {} is not usable: {source}; pass a writable directory with --data-dir (CONVERGER_DATA_DIR)", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the embedded store in {}: {source}; {}", path.display(), embedded_hint(source))]
    Embedded {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot use PostgreSQL at {url}: {source}; check --database-url (DATABASE_URL) and that the database is running and reachable")]
    Database {
        /// Password masked.
        url: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot keep a generated secret in {}: {source}; check that --data-dir (CONVERGER_DATA_DIR) is writable, or configure --admin-token and --jwt-secret", path.display())]
    Secret {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Server(#[from] crate::server::ServerStartError),
    #[error("{source}; {}", tls_hint(source))]
    Tls {
        #[source]
        source: TlsError,
    },
    #[error("cannot install the SIGTERM/SIGINT/SIGHUP handlers: {0}")]
    Signals(#[source] io::Error),
}

fn embedded_hint(e: &StoreError) -> &'static str {
    if e.is_full() {
        "its file system has no space left: free some, or point --data-dir (CONVERGER_DATA_DIR) at another"
    } else {
        "check --data-dir (CONVERGER_DATA_DIR)"
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "the address is already in use".into(),
        io::ErrorKind::AddrNotAvailable => "the address is not available on this machine".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn tls_hint(e: &TlsError) -> &'static str {
    match e.file() {
        CertFile::Cert => "pass a readable PEM certificate chain with --tls-cert (CONVERGER_TLS_CERT)",
        CertFile::Key => "pass the certificate's PEM private key with --tls-key (CONVERGER_TLS_KEY)",
    }
}

fn bind_hint(e: &io::Error, flag: &str) -> String {
    let env = format!("CONVERGER_{}", flag.trim_start_matches("--").replace('-', "_").to_uppercase());
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            format!("stop the process holding it or choose another port with {flag} ({env}); port 0 picks a free one")
        }
        io::ErrorKind::PermissionDenied => {
            format!("ports below 1024 need privileges: choose another with {flag} ({env})")
        }
        _ => format!("choose another address with {flag} ({env})"),
    }
}

/// Reads the TLS certificate and key when configured (before any port is
/// bound, so a bad file holds nothing).
pub fn load_tls(config: &Config) -> Result<Option<TlsSettings>, StartupError> {
    let Some(paths) = &config.tls else { return Ok(None) };
    let certs = Certs::load(paths.clone()).map_err(|source| StartupError::Tls { source })?;
    Ok(Some(TlsSettings { certs, redirect: config.tls_redirect }))
}

/// Binds the HTTP and binary listeners, one per shard, for `config`; with
/// TLS configured, reads the certificate first.
pub fn bind(config: &Config) -> Result<Listeners, StartupError> {
    let tls = load_tls(config)?;
    let http = bind_reuseport(config.http_addr, config.shards).map_err(|source| StartupError::Bind {
        what: "HTTP",
        addr: config.http_addr,
        flag: "--http-addr",
        source,
    })?;
    let binary = bind_reuseport(config.binary_addr, config.shards).map_err(|source| StartupError::Bind {
        what: "the binary protocol",
        addr: config.binary_addr,
        flag: "--binary-addr",
        source,
    })?;
    Ok(Listeners { http, binary, tls })
}

/// PostgreSQL connections per node. The owners' commits take one each per
/// shard; the rest serve reads and the delivery worker, whose claims and
/// outcomes are transactions of their own: with 4 connections deliveries
/// drained at 2.7–2.8k/s, with 16 at 3.6–3.8k/s (and ingest unchanged; docs/benchmarks.md).
const PG_CONNECTIONS: usize = 16;

/// Opens PostgreSQL when a database URL is configured, else the embedded store.
/// Blocking; call before the shards start.
pub fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartupError> {
    match &config.database_url {
        Some(url) => {
            let store = PgStore::connect(url.expose(), PgOptions { pool_size: PG_CONNECTIONS, ..PgOptions::default() })
                .map_err(|source| StartupError::Database { url: mask_database_url(url.expose()), source })?;
            Ok(Arc::new(store))
        }
        None => {
            ensure_writable(&config.data_dir)?;
            let store = EmbeddedStore::open(&config.data_dir, EmbeddedOptions::default())
                .map_err(|source| StartupError::Embedded { path: config.data_dir.clone(), source })?;
            Ok(Arc::new(store))
        }
    }
}

/// Creates `dir` if needed and proves we can write in it, so a bad data
/// directory is reported as such rather than as an obscure database error.
fn ensure_writable(dir: &Path) -> Result<(), StartupError> {
    let err = |source| StartupError::DataDir { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    let probe = dir.join(".converger-write-probe");
    std::fs::write(&probe, b"").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)
}
