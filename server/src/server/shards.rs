//! Shards: N OS threads named `shard-{i}`, each running its own monoio runtime
//! and accepting on its own HTTP and binary sockets. Nothing mutable is shared
//! between shards; the store is `Send + Sync` and its futures wake any runtime.
//!
//! Life of a shard: build runtime → adopt listeners → report ready → accept
//! until shutdown → stop accepting → let open connections finish within the
//! grace period → cut the rest → exit.

use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use converger_storage::Store;
use futures_util::future::LocalBoxFuture;
use monoio::net::TcpListener;
use tracing::{debug, info, warn};

use super::admission::{refuse_http, Gate};
use crate::api::App;
use crate::config::Config;
use crate::engine::cluster::{ClusterLink, InboundRx};
use crate::engine::mesh::{self, MeshEnd};
use crate::engine::Engine;
use crate::metrics::Registry;
use crate::net::http::conn;
use crate::net::tls::{Hsts, TlsAcceptor, TlsSettings};
use crate::net::Listeners;
use crate::rt::admission::{Admitted, ConnCaps};
use crate::rt::doorbell::Doorbell;
use crate::rt::latch::Latch;
use crate::rt::quiesce::{Arrival, Quiesce};
use crate::rt::runtime;
use crate::rt::shutdown::Shutdown;
use crate::rt::tracker::{self, ConnTracker};
use crate::service::{Hub, Publisher, TenantEpoch};

/// After the grace period, how long aborted connections get to unwind.
const ABORT_WAIT: Duration = Duration::from_secs(1);

/// A shard that could not start: which one and why (one line).
#[derive(Debug, thiserror::Error)]
#[error("shard {shard} could not start: {message}")]
pub struct ShardStartError {
    pub shard: usize,
    pub message: String,
}

/// The running shard threads.
pub struct Shards {
    threads: Vec<JoinHandle<()>>,
    /// The I/O driver each shard actually runs (`io-uring` or `epoll`).
    pub drivers: Vec<&'static str>,
}

/// What every shard of the node shares.
pub struct Node {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub shutdown: Shutdown,
    pub metrics: Registry,
    /// Bumped by every tenant change (the shards' and the delivery worker's caches).
    pub tenant_epoch: TenantEpoch,
    /// The node's connection caps.
    pub caps: Arc<ConnCaps>,
    /// The node's users (`engine::users`), shared with the cluster bus.
    pub users: Arc<crate::engine::users::Users>,
    /// The way to the JWKS fetcher (tenants' token-signing keys).
    pub jwks: crate::service::jwks::JwksClient,
    /// The way to the pre-publish hooks' thread.
    pub hooks: Option<crate::delivery::hooks::HookClient>,
    /// Rung by the owners when a commit made delivery rows (the delivery worker waits on it).
    pub deliveries_due: Doorbell,
}

impl Shards {
    /// Starts one shard per listener pair and returns once every shard accepts
    /// (or the first failure, after stopping the others).
    pub fn start(
        node: Node,
        listeners: Listeners,
        injections: crate::delivery::Injections,
        cluster: Option<(ClusterLink, Vec<InboundRx>)>,
    ) -> Result<Shards, ShardStartError> {
        let Node { config, store, shutdown, metrics, tenant_epoch, caps, users, jwks, hooks, deliveries_due } = node;
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut threads = Vec::new();
        let n = listeners.http.len();
        let quiesce = Quiesce::new(n);
        let (link, inboxes) = match cluster {
            Some((link, inboxes)) => (Some(link), inboxes.into_iter().map(Some).collect()),
            None => (None, (0..n).map(|_| None).collect::<Vec<_>>()),
        };
        let mut inboxes = inboxes.into_iter();
        let tls = listeners.tls;
        let pairs = listeners.http.into_iter().zip(listeners.binary);
        // Replies the delivery worker writes (echo) go through shard 0's write path.
        let mut injections = Some(injections);
        for (id, ((http, binary), mesh)) in pairs.zip(mesh::build(n)).enumerate() {
            let shard = ShardSetup {
                id,
                config: config.clone(),
                store: store.clone(),
                shutdown: shutdown.clone(),
                ready: ready_tx.clone(),
                mesh,
                metrics: metrics.clone(),
                tenant_epoch: tenant_epoch.clone(),
                jwks: jwks.clone(),
                users: users.clone(),
                hooks: hooks.clone(),
                deliveries_due: deliveries_due.clone(),
                arrival: quiesce.arrival(),
                injections: injections.take(),
                caps: caps.clone(),
                tls: tls.clone(),
                cluster: link.clone().zip(inboxes.next().flatten()),
            };
            let spawned =
                std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || shard.run(http, binary));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let err = ShardStartError { shard: id, message: format!("cannot spawn thread: {e}") };
                    return Err(Shards { threads, drivers: Vec::new() }.abort(err, &shutdown));
                }
            }
        }
        drop(ready_tx);
        let mut drivers = vec![""; threads.len()];
        for _ in 0..threads.len() {
            match ready_rx.recv() {
                Ok(Ok((id, driver))) => drivers[id] = driver,
                Ok(Err(err)) => return Err(Shards { threads, drivers }.abort(err, &shutdown)),
                Err(_) => {
                    let err = ShardStartError { shard: 0, message: "a shard thread exited during start-up".into() };
                    return Err(Shards { threads, drivers }.abort(err, &shutdown));
                }
            }
        }
        Ok(Shards { threads, drivers })
    }

    fn abort(self, err: ShardStartError, shutdown: &Shutdown) -> ShardStartError {
        shutdown.trigger();
        self.join();
        err
    }

    /// Waits for every shard thread to finish (after shutdown was triggered).
    pub fn join(self) {
        for t in self.threads {
            let name = t.thread().name().unwrap_or("shard").to_string();
            if t.join().is_err() {
                warn!(thread = %name, "shard thread panicked");
            }
        }
    }
}

type Ready = mpsc::Sender<Result<(usize, &'static str), ShardStartError>>;

struct ShardSetup {
    id: usize,
    config: Arc<Config>,
    store: Arc<dyn Store>,
    shutdown: Shutdown,
    ready: Ready,
    mesh: MeshEnd,
    metrics: Registry,
    /// Shared by all shards: bumped by every tenant change (auth cache).
    tenant_epoch: TenantEpoch,
    /// The way to the JWKS fetcher.
    jwks: crate::service::jwks::JwksClient,
    /// Shared by all shards: users with a socket on this node.
    users: Arc<crate::engine::users::Users>,
    hooks: Option<crate::delivery::hooks::HookClient>,
    deliveries_due: Doorbell,
    /// Reported once this shard's connections are closed (or it failed to start).
    arrival: Arrival,
    /// On one shard: the delivery worker's writes.
    injections: Option<crate::delivery::Injections>,
    /// The node's connection caps, shared by every shard.
    caps: Arc<ConnCaps>,
    /// TLS on both listeners, when configured.
    tls: Option<TlsSettings>,
    /// In a cluster: the way to the bus thread, and this shard's inbox from it.
    cluster: Option<(ClusterLink, InboundRx)>,
}

impl ShardSetup {
    fn run(self, http: StdListener, binary: StdListener) {
        let fail = |message: String| ShardStartError { shard: self.id, message };
        let (mut rt, driver) = match runtime::build(self.config.io_driver, self.id) {
            Ok(built) => built,
            Err(e) => {
                let hint = "try --io-driver epoll";
                let _ = self
                    .ready
                    .send(Err(fail(format!("cannot start the {} runtime: {e}; {hint}", self.config.io_driver))));
                return;
            }
        };
        rt.block_on(self.serve(http, binary, driver));
    }

    async fn serve(mut self, http: StdListener, binary: StdListener, driver: &'static str) {
        let adopted = TcpListener::from_std(http).and_then(|h| Ok((h, TcpListener::from_std(binary)?)));
        let (http, binary) = match adopted {
            Ok(pair) => pair,
            Err(e) => {
                let message = format!("cannot register listeners with the {driver} driver: {e}");
                let _ = self.ready.send(Err(ShardStartError { shard: self.id, message }));
                return;
            }
        };
        let id = self.id;
        let (tls_http, tls_binary) = match tls_acceptors(self.tls.as_ref()) {
            Ok(pair) => pair,
            Err(e) => {
                let _ = self.ready.send(Err(ShardStartError { shard: id, message: e.to_string() }));
                return;
            }
        };
        let shard_metrics = self.metrics.shard(id);
        // Shard-local latches, each fed by one task waiting on its process-wide signal.
        let shutdown = Latch::following(&self.shutdown);
        let all_quiet = Latch::following(&self.arrival.all_quiet());
        let (link, inbox) = match self.cluster.take() {
            Some((link, inbox)) => (Some(link), Some(inbox)),
            None => (None, None),
        };
        let engine = Engine::new(self.store.clone(), shard_metrics.clone(), self.mesh.outbox, link, self.users);
        if let Some(hooks) = self.hooks.take() {
            engine.set_hook_caller(Rc::new(crate::delivery::hooks::ShardHooks(hooks)));
        }
        engine.set_deliveries_due(self.deliveries_due.clone());
        let owner_task = monoio::spawn(engine.clone().run_owner());
        let cluster_task = inbox.map(|inbox| monoio::spawn(engine.clone().run_cluster(inbox, shutdown.clone())));
        let mesh_task = monoio::spawn(engine.clone().run_mesh(self.mesh.inbox, all_quiet.clone()));
        let publisher = Publisher::through_owners(engine.clone());
        let hub = Hub::sharing(
            self.store.clone(),
            self.config.clone(),
            publisher,
            self.tenant_epoch,
            engine.shards(),
            shard_metrics.clone(),
        )
        .with_jwks(self.jwks.clone());
        let app = Rc::new(App::for_shard(
            self.store,
            self.config.clone(),
            hub,
            Some(engine.clone()),
            shard_metrics,
            self.metrics,
        ));
        // Ends with the delivery worker or at shutdown; awaited below, so it
        // never outlives the shard (it holds the hub, and so the store).
        let inject_task = self
            .injections
            .take()
            .map(|rx| monoio::spawn(crate::delivery::inject_loop(rx, app.hub.clone(), shutdown.clone())));
        let tracker = Rc::new(ConnTracker::default());
        let gate = Rc::new(Gate::new(self.caps.clone(), &self.config.edge, engine.shards(), app.metrics.clone()));
        let abort = Latch::new();
        let binary_task = monoio::spawn(super::binary_listener::accept_loop(
            super::binary_listener::Listener { socket: binary, tls: tls_binary },
            id,
            app.clone(),
            tracker.clone(),
            gate.clone(),
            shutdown.clone(),
            abort.clone(),
        ));
        let limits = self.config.http_limits();
        if self.ready.send(Ok((id, driver))).is_err() {
            return;
        }
        debug!(shard = id, driver, "shard accepting");
        loop {
            monoio::select! {
                accepted = http.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let admitted = match gate.admit(peer.ip()) {
                            Ok(admitted) => admitted,
                            Err(refusal) => {
                                monoio::spawn(refuse_http(stream, peer, tls_http.clone(), refusal));
                                continue;
                            }
                        };
                        let guard = (tracker.open(), admitted);
                        let (app, shutdown, abort, tls) = (app.clone(), shutdown.clone(), abort.clone(), tls_http.clone());
                        monoio::spawn(async move {
                            let served = async {
                                let stream = TlsAcceptor::wrap(tls.as_deref(), stream, peer).await?;
                                let service = Hsts { inner: &*app, on: stream.is_tls() };
                                Some(conn::serve(stream, peer, &service, limits, &shutdown).await)
                            };
                            monoio::select! {
                                why = served => match why {
                                    Some(conn::Closed::Upgraded(ws)) => {
                                        monoio::spawn(run_websocket(ws.run(shutdown), guard, abort, id, peer));
                                    }
                                    Some(why) => debug!(shard = id, %peer, ?why, "http connection closed"),
                                    None => {}
                                },
                                _ = abort.wait() => debug!(shard = id, %peer, "http connection cut after the grace period"),
                            }
                        });
                    }
                    Err(e) => {
                        warn!(shard = id, error = %e, "http accept failed");
                        accept_backoff().await;
                    }
                },
                _ = shutdown.wait() => break,
            }
        }
        drop(http);
        info!(shard = id, open = tracker.count(), "stopped accepting; closing idle connections");
        let grace = self.config.shutdown_grace;
        if monoio::time::timeout(grace, tracker.all_closed()).await.is_err() {
            warn!(
                shard = id,
                open = tracker.count(),
                grace_ms = grace.as_millis() as u64,
                "connections still busy after the grace period; cutting them"
            );
            abort.trigger();
            let _ = monoio::time::timeout(ABORT_WAIT, tracker.all_closed()).await;
        }
        binary_task.await;
        if let Some(task) = inject_task {
            task.await;
        }
        // Other shards may still be finishing requests whose writes this shard
        // owns: keep committing until every shard is quiet, then flush and stop.
        self.arrival.arrive();
        all_quiet.wait().await;
        mesh_task.await;
        if let Some(task) = cluster_task {
            task.await;
        }
        engine.close();
        owner_task.await;
        info!(shard = id, "shard stopped");
    }
}

/// This shard's TLS acceptors for the HTTP and binary listeners (its own
/// session caches; the certificate is shared and reloadable).
type Acceptors = (Option<Rc<TlsAcceptor>>, Option<Rc<TlsAcceptor>>);

fn tls_acceptors(tls: Option<&TlsSettings>) -> Result<Acceptors, crate::net::tls::TlsError> {
    let Some(tls) = tls else { return Ok((None, None)) };
    let refusal = super::binary_listener::tls_required_frame();
    Ok((Some(Rc::new(TlsAcceptor::http(tls)?)), Some(Rc::new(TlsAcceptor::binary(tls, refusal)?))))
}

/// One upgraded connection, on a task of its own: the HTTP task that accepted
/// it has ended, so a long-lived socket holds only its WebSocket state.
async fn run_websocket(
    session: LocalBoxFuture<'static, ()>,
    guard: (tracker::ConnGuard, Admitted),
    abort: Latch,
    shard: usize,
    peer: std::net::SocketAddr,
) {
    let _guard = guard;
    monoio::select! {
        _ = session => debug!(shard, %peer, "websocket closed"),
        _ = abort.wait() => debug!(shard, %peer, "websocket cut after the grace period"),
    }
}

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does
/// not spin; the pending connection stays queued in the kernel meanwhile.
pub async fn accept_backoff() {
    monoio::time::sleep(Duration::from_millis(50)).await;
}
