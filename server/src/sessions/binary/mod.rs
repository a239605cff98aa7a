//! One binary-protocol connection (TCP or `/socket/binary`): the handshake
//! ([`handshake`]), then the loop here, which reads frames and runs the
//! requests ([`requests`]) answered by request id (docs/protocol.md).
//!
//! Every request goes through the same service layer as REST and the Phoenix
//! socket. Requests are pipelined: each is a future of its own, answered when
//! done, so a publisher keeps up to [`MAX_IN_FLIGHT`] requests committing at
//! once; past that the session stops reading and TCP slows the client
//! (the protocol's client → server flow control). Subscriptions use the same
//! resume seam and encode-once fan-out as the Phoenix socket.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use converger_protocol as proto;
use converger_protocol::{ErrorCode, ErrorFrame, Frame};
use converger_storage::Id;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;

mod handshake;
mod identity;
pub mod link;
mod requests;
mod sink;

use crate::auth::Claims;
use crate::engine::{Engine, Subscription};
use crate::net::binary::Inbound;
use crate::rt::coarse;
use crate::rt::latch::Latch;
use crate::service::caller::unix_now;
use crate::service::Hub;
use handshake::{handshake, welcome};
use identity::Identity;
use link::Link;
use sink::BinarySender;

/// Requests of one connection being answered at once; past this the session
/// stops reading until one is done.
pub const MAX_IN_FLIGHT: usize = 256;

/// How long a new connection may take to send its Hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Silence after which a connection is closed (announced in Welcome).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits a connection runs with (from the config; announced in Welcome).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_frame: u32,
    pub send_queue_bytes: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// The WebSocket limits apply (one frame is one message), with no
    /// per-message rate (TCP backpressure paces clients).
    pub fn from_config(config: &crate::config::Config) -> Limits {
        Limits {
            max_frame: config.ws_max_message_bytes.min(converger_protocol::MAX_FRAME_SIZE as usize) as u32,
            send_queue_bytes: config.ws_send_queue_bytes,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// What a finished request leaves for the session to record.
enum Done {
    Nothing,
    /// A Subscribe's subscriptions that started, and the conversations whose
    /// did not (their places are free again).
    Subscribed {
        started: Vec<(Id, Rc<Subscription>, Active)>,
        refused: Vec<(Id, Active)>,
    },
    /// A new token took effect: its expiry.
    Reauthorized(Claims),
    /// The connection cannot go on as the client believes (a subscription
    /// that was answered could not start): close it; the client resumes.
    Close(ErrorFrame),
}

type Pending = LocalBoxFuture<'static, Done>;

/// A subscription's switch: cleared by Unsubscribe, and it names the attempt
/// (a conversation unsubscribed and subscribed again has a new one).
type Active = Rc<Cell<bool>>;

/// A subscription of this connection.
enum Sub {
    /// Being set up (the Subscribed answer and the backlog are on their way).
    Starting {
        active: Active,
    },
    Live {
        sub: Rc<Subscription>,
        active: Active,
    },
}

struct Session {
    hub: Rc<Hub>,
    engine: Rc<Engine>,
    identity: Identity,
    out: BinarySender,
    subs: HashMap<Id, Sub>,
    /// Subscriptions the server ended (a disconnect, a close), by switch;
    /// see [`sink::BinarySink::ended`] for the bound.
    ended: futures_channel::mpsc::UnboundedSender<Active>,
}

/// Serves one connection until it closes. `upgrade_token` is the token a
/// `/socket/binary` upgrade was checked with: the Hello must carry the same.
pub(crate) async fn run<L: Link>(
    mut link: L,
    hub: Rc<Hub>,
    engine: Rc<Engine>,
    shutdown: Latch,
    limits: Limits,
    upgrade_token: Option<String>,
) {
    let open = hub.metrics.socket_opened(link.transport());
    link.on_overflow(open.overflow_counter());
    let (identity, version) = match handshake(&mut link, &hub, limits, upgrade_token.as_deref(), &shutdown).await {
        Ok(accepted) => accepted,
        Err(error) => return link.close(error).await,
    };
    // From the Welcome on, both ways speak the chosen version.
    link.set_version(version);
    let out = link.sender();
    let _ = out.send(welcome(&identity, version, limits));
    // A client token's user is online while this connection lives.
    let _online = match &identity {
        Identity::Token(c) if !c.watch => Some(engine.user_connected(c.tenant_id, &c.sub)),
        _ => None,
    };
    let (ended, mut ended_subs) = futures_channel::mpsc::unbounded();
    let mut session = Session { hub, engine, identity, out, subs: HashMap::new(), ended };
    let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
    let mut expires_at = Instant::now() + session.expires_in();
    let mut heard = Instant::now();
    let closing = loop {
        // One coarse timer for both deadlines: a timer is a large part of an idle connection.
        let wake = coarse::sleep_until(expires_at.min(heard + limits.idle_timeout));
        monoio::select! {
            inbound = link.recv(), if pending.len() < MAX_IN_FLIGHT => {
                heard = Instant::now();
                match inbound {
                    Inbound::Frame(frame) => match session.handle(frame) {
                        Ok(Some(request)) => pending.push(request),
                        Ok(None) => {}
                        Err(error) => break Some(error),
                    },
                    Inbound::Bad(e) => break Some(ErrorFrame::new(0, e.code(), e.to_string())),
                    Inbound::Closed => break None,
                }
            }
            Some(done) = pending.next(), if !pending.is_empty() => match done {
                Done::Close(error) => break Some(error),
                done => {
                    if let Some(claims) = session.record(done) {
                        expires_at = Instant::now() + expires_in(&claims);
                    }
                }
            },
            Some(attempt) = ended_subs.next() => session.forget_ended(attempt),
            _ = wake => match Instant::now() >= expires_at {
                true => break Some(ErrorFrame::new(0, ErrorCode::TokenExpired, "the client token expired")),
                false => break Some(ErrorFrame::new(0, ErrorCode::IdleTimeout, "nothing heard from the client")),
            },
            _ = shutdown.wait() => break Some(ErrorFrame::new(0, ErrorCode::ShuttingDown, "the server is stopping")),
        }
    };
    session.unsubscribe_all();
    if let Some(error) = closing {
        link.close(error).await;
    }
}

fn expires_in(claims: &Claims) -> Duration {
    Duration::from_secs(claims.exp.saturating_sub(unix_now()).max(0) as u64)
}

impl Session {
    fn expires_in(&self) -> Duration {
        match &self.identity {
            Identity::Token(c) => expires_in(c),
            // An API key does not expire; a day-long timer that re-arms never fires in practice.
            Identity::Tenant(_) => Duration::from_secs(u32::MAX as u64),
        }
    }

    /// Answers a frame at once, or returns the future that will; an error closes the connection.
    fn handle(&mut self, frame: Frame) -> Result<Option<Pending>, ErrorFrame> {
        match frame {
            Frame::Ping(p) => self.reply(proto::Pong { payload: p.payload }),
            Frame::Pong(_) => {}
            Frame::Subscribe(s) => return Ok(self.subscribe(s)),
            Frame::Unsubscribe(u) => self.unsubscribe(u),
            Frame::Publish(p) => return Ok(self.publish(p)),
            Frame::PublishBatch(b) => return Ok(self.publish_batch(b)),
            Frame::Ephemeral(e) => return Ok(self.ephemeral(e)),
            Frame::Receipt(r) => return Ok(self.receipt(r)),
            Frame::History(h) => return Ok(self.history(h)),
            Frame::Reauth(r) => return Ok(self.reauth(r)),
            Frame::Hello(_) => return Err(ErrorFrame::new(0, ErrorCode::UnexpectedFrame, "a second Hello")),
            other => {
                let why = format!("{} is sent by the server only", other.kind().name());
                return Err(ErrorFrame::new(0, ErrorCode::UnexpectedFrame, why));
            }
        }
        Ok(None)
    }

    fn reply(&self, frame: impl Into<Frame>) {
        send(&self.out, frame.into());
    }

    /// Records what a finished request changed; a new token's claims when one took effect.
    fn record(&mut self, done: Done) -> Option<Claims> {
        match done {
            Done::Nothing => {}
            Done::Subscribed { started, refused } => {
                for (id, attempt) in refused {
                    if matches!(self.subs.get(&id), Some(Sub::Starting { active }) if Rc::ptr_eq(active, &attempt)) {
                        self.subs.remove(&id);
                    }
                }
                for (id, sub, attempt) in started {
                    let current =
                        matches!(self.subs.get(&id), Some(Sub::Starting { active }) if Rc::ptr_eq(active, &attempt));
                    if current && attempt.get() {
                        self.subs.insert(id, Sub::Live { sub, active: attempt });
                    } else {
                        // Unsubscribed while starting.
                        attempt.set(false);
                        self.engine.unsubscribe(&sub);
                    }
                }
            }
            Done::Reauthorized(claims) => {
                self.identity = Identity::Token(claims.clone());
                return Some(claims);
            }
            Done::Close(_) => {}
        }
        None
    }
}

fn send(out: &BinarySender, frame: Frame) {
    if let Err(e) = out.send(frame) {
        tracing::debug!(error = %e, "binary answer not sent");
    }
}
