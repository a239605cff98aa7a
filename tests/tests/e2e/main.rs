//! End-to-end tests: each starts the real `converger` binary (see the
//! `converger-e2e` harness) and talks to it over sockets, as clients do.

mod cli;
mod health;
mod http_protocol;
mod lifecycle;
mod startup_errors;
mod write_path;
