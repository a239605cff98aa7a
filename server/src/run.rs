//! What the `converger` binary does, step by step: configure, bind, open
//! storage, start the shards, print the ready line, wait for SIGTERM/SIGINT
//! (re-reading the TLS certificate on each SIGHUP meanwhile), shut down. `main.rs` only parses the command line and reports errors.

use std::io::Write;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};

use crate::config::{Cli, Command, Config};
use crate::server::first_run;
use crate::server::logging;
use crate::server::startup::{self, StartupError};
use crate::server::Server;

/// Runs the command line: serve (default) or `migrate`. Returns after a clean
/// shutdown; every error is a one-line start-up failure.
pub fn run(cli: Cli) -> Result<(), StartupError> {
    let config = Config::load(cli.options)?;
    let log = logging::init(&config.log, config.log_format);
    let result = match cli.command {
        Some(Command::Migrate) => migrate(&config),
        None => serve(config, &log),
    };
    match &result {
        Ok(()) => log.release(),
        Err(_) => log.discard(),
    }
    result
}

fn serve(mut config: Config, log: &logging::LogSink) -> Result<(), StartupError> {
    // Installed before anything slow so a signal during start-up is not lost:
    // it is read, and acted on, as soon as the server is up.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(StartupError::Signals)?;
    let listeners = startup::bind(&config)?;
    let certs = listeners.tls.as_ref().map(|t| t.certs.clone());
    let store = startup::open_store(&config)?;
    info!(backend = store.backend(), "storage opened");
    // After open_store: the data directory exists and is writable.
    let kept = first_run::apply(&mut config)?;
    info!(config = %config.masked_summary(), "effective configuration");
    if config.jwt_secret.generated {
        warn!(
            "no --jwt-secret (CONVERGER_JWT_SECRET) set: using a random key; client tokens will not survive a restart"
        );
    }
    let grace = config.shutdown_grace;
    let server = Server::start(config, store, listeners)?;
    log.release();
    let mut stdout = std::io::stdout().lock();
    // If stdout is gone there is no one to tell; serving matters more.
    let _ = writeln!(stdout, "{}", server.ready_line());
    let _ = stdout.flush();
    drop(stdout);
    announce_console(&kept, server.http_addr());

    let name = loop {
        match signals.forever().next() {
            Some(SIGHUP) => reload_tls(certs.as_ref()),
            Some(SIGINT) => break "SIGINT",
            Some(_) => break "SIGTERM",
            None => break "end of signal stream",
        }
    };
    info!(
        signal = name,
        grace_ms = grace.as_millis() as u64,
        "shutting down: stop accepting, finish in-flight requests"
    );
    server.stop();
    info!("shutdown complete");
    Ok(())
}

/// Where the console is and how to get in, on stderr (stdout carries only
/// the ready line): the token itself on the start that made it, its file on
/// every later one.
fn announce_console(kept: &first_run::Kept, http: std::net::SocketAddr) {
    let Some(file) = &kept.admin_token_file else { return };
    let url = first_run::console_url(http);
    let mut err = std::io::stderr().lock();
    let _ = match &kept.new_admin_token {
        Some(token) => {
            writeln!(err, "admin console: {url} (admin token, shown once, kept in {}): {token}", file.display())
        }
        None => writeln!(err, "admin console: {url} (token in {})", file.display()),
    };
}

/// SIGHUP: new TLS handshakes get the certificate now in the files;
/// established connections keep theirs. A file that does not load is
/// reported and the certificate in force stays.
fn reload_tls(certs: Option<&crate::net::tls::Certs>) {
    let Some(certs) = certs else {
        info!("SIGHUP: TLS is off, nothing to reload");
        return;
    };
    match certs.reload() {
        Ok(()) => info!(cert = %certs.paths().cert.display(), "SIGHUP: TLS certificate reloaded"),
        Err(e) => error!(error = %e, "SIGHUP: TLS certificate not reloaded; the previous one stays in use"),
    }
}

/// `converger migrate`: applies PostgreSQL migrations, or explains that the
/// embedded store has none to apply.
fn migrate(config: &Config) -> Result<(), StartupError> {
    let mut out = std::io::stdout().lock();
    if config.database_url.is_none() {
        let _ = writeln!(
            out,
            "converger migrate: the embedded store (data dir {}) keeps its own schema and needs no migrations; set --database-url (DATABASE_URL) to migrate PostgreSQL",
            config.data_dir.display()
        );
        return Ok(());
    }
    let url = config.database_url.as_ref().map(|u| u.expose()).unwrap_or_default();
    let applied = converger_storage::postgres::migrate(url)
        .map_err(|source| StartupError::Database { url: crate::config::mask_database_url(url), source })?;
    for name in &applied {
        let _ = writeln!(out, "converger migrate: applied {name}");
    }
    let _ = writeln!(out, "converger migrate: PostgreSQL schema is up to date");
    Ok(())
}
