//! What the `converger` binary does, step by step: configure, bind, open
//! storage, start the shards, print the ready line, wait for SIGTERM/SIGINT,
//! shut down. `main.rs` only parses the command line and reports errors.

use std::io::Write;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{info, warn};

use crate::config::{Cli, Command, Config};
use crate::server::logging;
use crate::server::startup::{self, StartupError};
use crate::server::Server;

/// Runs the command line: serve (default) or `migrate`. Returns after a clean
/// shutdown; every error is a one-line start-up failure.
pub fn run(cli: Cli) -> Result<(), StartupError> {
    let config = Config::load(cli.options)?;
    let log = logging::init(&config.log);
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

fn serve(config: Config, log: &logging::LogSink) -> Result<(), StartupError> {
    info!(config = %config.masked_summary(), "effective configuration");
    if config.jwt_secret.generated {
        warn!(
            "no --jwt-secret (CONVERGER_JWT_SECRET) set: using a random key; client tokens will not survive a restart"
        );
    }
    // Installed before anything slow so a signal during start-up is not lost:
    // it is read, and acted on, as soon as the server is up.
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(StartupError::Signals)?;
    let listeners = startup::bind(&config)?;
    let store = startup::open_store(&config)?;
    info!(backend = store.backend(), "storage opened");
    let grace = config.shutdown_grace;
    let server = Server::start(config, store, listeners)?;
    log.release();
    let mut stdout = std::io::stdout().lock();
    // If stdout is gone there is no one to tell; serving matters more.
    let _ = writeln!(stdout, "{}", server.ready_line());
    let _ = stdout.flush();
    drop(stdout);

    let signal = signals.forever().next();
    let name = match signal {
        Some(SIGINT) => "SIGINT",
        Some(_) => "SIGTERM",
        None => "end of signal stream",
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
