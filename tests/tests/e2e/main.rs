//! End-to-end tests: each starts the real `converger` binary (see the
//! `converger-e2e` harness) and talks to it over sockets, as clients do.
//!
//! Naming: `<surface>_<topic>.rs` for one surface's contract (rest, admin, http, binary, phoenix, cluster), else `<topic>.rs`.

/// Runs each scenario `fn name(&TestServer)` as two tests, `name::embedded`
/// and `name::postgres` (the latter returns at once without a database: see
/// `converger_e2e::pg::database_url`). Every embedded/PostgreSQL pair is written
/// this way. `on_both_backends!(mut name)` hands the scenario `&mut TestServer`
/// instead, for one that restarts the server.
macro_rules! on_both_backends {
    (mut $($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn embedded() {
                super::$name(&mut converger_e2e::TestServer::embedded());
            }

            #[test]
            fn postgres() {
                if let Some(mut server) = converger_e2e::TestServer::postgres() {
                    super::$name(&mut server);
                }
            }
        }
    )+};
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn embedded() {
                super::$name(&converger_e2e::TestServer::embedded());
            }

            #[test]
            fn postgres() {
                if let Some(server) = converger_e2e::TestServer::postgres() {
                    super::$name(&server);
                }
            }
        }
    )+};
}

mod admin_api;
mod admin_console;
mod bad_inputs;
mod binary_chat;
mod binary_pre_publish;
mod binary_protocol;
mod cli;
mod cluster_deliveries;
mod cluster_disconnect;
mod cluster_events;
mod cluster_failover;
mod cluster_outages;
mod cluster_sequencing;
mod cluster_signing_keys;
mod cluster_stream;
mod cluster_users;
mod deliveries;
mod deliveries_chat;
mod first_run;
mod http_cors;
mod http_health;
mod http_protocol;
mod inbound;
mod isolation;
mod lifecycle;
mod limits;
mod ops_logs;
mod ops_metrics;
mod ops_traces;
mod phoenix_chat;
mod phoenix_pre_publish;
mod phoenix_socket;
mod phoenix_users;
mod rest_activities;
mod rest_auth;
mod rest_broadcast;
mod rest_channels;
mod rest_conversations;
mod rest_disconnect;
mod rest_errors;
mod rest_events;
mod rest_lifecycle;
mod rest_members;
mod rest_pre_publish;
mod rest_signing_keys;
mod rest_tenant_hook;
mod rest_tokens;
mod startup_errors;
mod status_reports;
mod storage_full;
mod strict_json;
mod strict_parameters;
mod tls;
mod write_path;
