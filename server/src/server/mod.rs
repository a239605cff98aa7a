//! The server as a library: [`Server::start`] runs the shards on listeners the
//! caller already bound (so tests and embedders can use port 0 and know the
//! address before anything runs) and [`Server::stop`] shuts it down in order.

pub mod admission;
pub mod binary_listener;
pub mod first_run;
pub mod logging;
pub mod shards;
pub mod startup;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use converger_storage::Store;
use tracing::info;

use crate::config::Config;
use crate::delivery;
use crate::engine::cluster::{self, ClusterLink, InboundRx, Status};
use crate::engine::users::Users;
use crate::metrics::Registry;
use crate::net::Listeners;
use crate::rt::admission::ConnCaps;
use crate::rt::doorbell::Doorbell;
use crate::rt::shutdown::Shutdown;
use crate::server::shards::{Node, ShardStartError, Shards};
use crate::service::TenantEpoch;

/// How long a cluster node waits for NATS at start before giving up.
const NATS_START_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the server did not start (one line each).
#[derive(Debug, thiserror::Error)]
pub enum ServerStartError {
    #[error(transparent)]
    Shards(#[from] ShardStartError),
    #[error("cannot start the cluster bus: {0}")]
    Bus(#[source] io::Error),
    #[error("cannot reach NATS at {urls} within {secs} s: check --nats-url (CONVERGER_NATS_URL) and that nats-server is running and reachable")]
    Nats { urls: String, secs: u64 },
}

/// A running server.
pub struct Server {
    shards: Shards,
    /// The delivery worker's thread (stops with the shutdown signal).
    delivery: Option<std::thread::JoinHandle<()>>,
    /// The cluster bus's thread, in a cluster, and its own stop signal
    /// (given after the shards have stopped).
    bus: Option<(std::thread::JoinHandle<()>, Shutdown)>,
    /// The pre-publish hooks' thread, stopped once the shards, its only callers, are gone.
    hooks: Option<crate::delivery::hooks::HookThread>,
    shutdown: Shutdown,
    store: Arc<dyn Store>,
    http_addr: SocketAddr,
    binary_addr: SocketAddr,
}

impl Server {
    /// Starts one shard per listener pair; returns once every shard accepts.
    pub fn start(config: Config, store: Arc<dyn Store>, listeners: Listeners) -> Result<Server, ServerStartError> {
        let addr_err = |e: io::Error| ShardStartError { shard: 0, message: format!("listener has no address: {e}") };
        let http_addr = listeners.http_addr().map_err(addr_err)?;
        let binary_addr = listeners.binary_addr().map_err(addr_err)?;
        let shutdown = Shutdown::new();
        let caps = ConnCaps::new(config.edge.max_connections, config.edge.max_connections_per_ip);
        let metrics = Registry::new(listeners.http.len()).counting_connections(caps.clone());
        let settings = delivery::Settings {
            retry_base: config.delivery_retry_base,
            concurrency: config.delivery_concurrency,
            lease: config.delivery_lease,
            allow_private: config.delivery_allow_private,
            channel_deliveries: config.edge.rates.channel_deliveries,
            ..delivery::Settings::default()
        };
        if let Some(endpoint) = &config.otlp_endpoint {
            // Named by the cluster node id, else by this process (a one-node server has no node id).
            let instance = match &config.cluster {
                Some(c) => c.node_id.clone(),
                None => converger_storage::new_id().simple().to_string(),
            };
            if let Err(e) = crate::trace::start(endpoint, &instance) {
                tracing::error!(error = %e, "traces are off");
            }
        }
        let (injector, injections) = delivery::injector();
        let worker_metrics = metrics.delivery();
        // The bus outlives the shards: the presence leaves of the sockets they
        // close on the way out still reach the other nodes.
        let bus_stop = Shutdown::new();
        // Users with sockets here (and, in a cluster, elsewhere): shards and bus share them.
        let users = Arc::new(Users::default());
        let (hook_client, hooks) = match crate::delivery::hooks::HookClient::start(config.delivery_allow_private) {
            Ok((client, thread)) => (Some(client), Some(thread)),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the pre-publish hook thread; hooked publishes take their on_failure");
                (None, None)
            }
        };
        let cluster = match &config.cluster {
            Some(c) => Some(Cluster::start(c, listeners.http.len(), caps.clone(), users.clone(), &bus_stop)?),
            None => None,
        };
        // Bumped by every tenant change; read by the shards' and the worker's caches.
        let epoch = cluster.as_ref().map_or_else(TenantEpoch::default, |c| c.epoch.clone());
        let cluster_status = cluster.as_ref().map(|c| c.link.status.clone());
        let (cluster_link, inboxes, bus) = match cluster {
            Some(c) => (Some(c.link), c.inboxes, Some((c.thread, bus_stop.clone()))),
            None => (None, Vec::new(), None),
        };
        // Tenants' JWKS documents are fetched on the delivery worker's runtime.
        let (jwks, jwks_requests) = crate::service::jwks::channel();
        let deliveries_due = Doorbell::default();
        let node = Node {
            config: Arc::new(config),
            store: store.clone(),
            shutdown: shutdown.clone(),
            metrics,
            tenant_epoch: epoch.clone(),
            caps,
            users,
            jwks,
            hooks: hook_client,
            deliveries_due: deliveries_due.clone(),
        };
        let shards = Shards::start(node, listeners, injections, cluster_link.map(|link| (link, inboxes)))
            .inspect_err(|_| bus_stop.trigger())?;
        info!(drivers = ?shards.drivers, %http_addr, %binary_addr, "all shards accepting");
        let delivery = match delivery::start(
            store.clone(),
            settings,
            injector,
            worker_metrics,
            epoch,
            cluster_status,
            jwks_requests,
            deliveries_due,
            shutdown.clone(),
        ) {
            Ok(thread) => Some(thread),
            Err(e) => {
                shutdown.trigger();
                shards.join();
                bus_stop.trigger();
                return Err(
                    ShardStartError { shard: 0, message: format!("cannot start the delivery worker: {e}") }.into()
                );
            }
        };
        Ok(Server { shards, delivery, bus, hooks, shutdown, store, http_addr, binary_addr })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn binary_addr(&self) -> SocketAddr {
        self.binary_addr
    }

    /// The line the start-up contract prints on stdout once ready.
    pub fn ready_line(&self) -> String {
        format!("converger listening http={} binary={}", self.http_addr, self.binary_addr)
    }

    /// A handle that stops the server from any thread (see [`Server::stop`]).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight requests finish within the grace period,
    /// closes idle connections, joins the shards, then drops the store (which
    /// flushes it) once nothing else holds it.
    pub fn stop(self) {
        self.shutdown.trigger();
        if let Some(worker) = self.delivery {
            // First: it finishes the deliveries in flight (bounded by their request
            // timeout) while the shards can still take its echo replies, and its end
            // ends shard 0's injection task, which holds the store.
            let _ = worker.join();
        }
        self.shards.join();
        info!("all shards stopped");
        if let Some((bus, stop)) = self.bus {
            stop.trigger();
            let _ = bus.join();
        }
        if let Some(hooks) = self.hooks {
            hooks.stop();
        }
        // Every span has ended now (requests, commits, attempts): post them.
        crate::trace::flush(std::time::Duration::from_secs(2));
        let holders = Arc::strong_count(&self.store);
        drop(self.store);
        if holders == 1 {
            info!("storage closed");
        } else {
            info!(holders, "storage released; other holders close it");
        }
    }
}

/// This node's part of a cluster, before the shards start.
struct Cluster {
    link: ClusterLink,
    inboxes: Vec<InboundRx>,
    epoch: TenantEpoch,
    thread: std::thread::JoinHandle<()>,
}

impl Cluster {
    /// Starts the bus thread for `shards` shards and returns once it is
    /// connected to NATS and knows the other nodes (ready means ready; they
    /// answer a newcomer's first heartbeat at once). Later it reconnects by
    /// itself, the node reporting not ready meanwhile.
    fn start(
        config: &crate::config::ClusterConfig,
        shards: usize,
        caps: Arc<ConnCaps>,
        users: Arc<Users>,
        shutdown: &Shutdown,
    ) -> Result<Cluster, ServerStartError> {
        let origin = format!("{}.{}", config.node_id, incarnation());
        let status = Arc::new(Status::new(config.node_id.clone(), origin, caps, users));
        let (link, inboxes, ends) = cluster::channels(shards, status);
        let epoch = TenantEpoch::in_cluster(link.clone());
        let heard = epoch.clone();
        let setup = cluster::bus::Setup {
            urls: config.nats_urls.clone(),
            on_changed: Box::new(move |what| match what {
                cluster::Changed::Tenants => heard.bump_here(),
                cluster::Changed::Channels => crate::service::channels::channels_changed_here(),
                cluster::Changed::EventEndpoints => crate::engine::event_types::changed_here(),
            }),
            shutdown: shutdown.clone(),
        };
        let thread = cluster::bus::start(setup, ends).map_err(ServerStartError::Bus)?;
        info!(node_id = %config.node_id, generated = config.node_id_generated, "cluster mode: PostgreSQL + NATS");
        if !link.status.wait_connected(NATS_START_WAIT) {
            shutdown.trigger();
            let urls: Vec<String> = config.nats_urls.iter().map(|u| crate::config::mask_database_url(u)).collect();
            return Err(ServerStartError::Nats { urls: urls.join(","), secs: NATS_START_WAIT.as_secs() });
        }
        std::thread::sleep(cluster::DISCOVERY);
        Ok(Cluster { link, inboxes, epoch, thread })
    }
}

/// Eight random hex digits telling this start of a node from the previous one.
fn incarnation() -> String {
    crate::auth::random_hex(4).unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        format!("{nanos:08x}")
    })
}

#[cfg(test)]
mod tests;
