//! [`Client`]: the public handle of one binary-protocol connection (kept up
//! across reconnects), and the request path every call takes: a request id,
//! a one-shot slot for the answer, the frame into the connection's bounded
//! outbox, then the answer (or the connection's loss, or the timeout).

use std::sync::Arc;
use std::time::{Duration, Instant};

use converger_protocol::{self as proto, Frame, History, Publish, PublishBatch, Reauth, Subscribe, SubscribeItem};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::codec::encode;
use crate::connection::{handshake, run};
use crate::error::{Error, ProtocolError, Result, ServerError};
use crate::state::{Shared, SubSignal, SubState};
use crate::subscription::{MemberEvents, Subscription, TypingEvents};
use crate::types::{Credential, Draft, HistoryPage, Welcome, Written};

/// Tuning of a [`Client`]; [`Options::default`] suits most uses.
#[derive(Clone, Debug)]
pub struct Options {
    /// Sent in Hello for the server's logs.
    pub client_name: String,
    /// One connection attempt: TCP connect and handshake.
    pub connect_timeout: Duration,
    /// A request's whole life, waiting for a connection included.
    pub request_timeout: Duration,
    /// First pause between reconnect attempts; it doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Activities a [`Subscription`] holds for its consumer. When it is full
    /// the subscription pauses and later resumes from its last seq (see
    /// [`Subscription`]): memory stays bounded, nothing is lost.
    pub subscription_buffer: usize,
    /// Typing events held per [`TypingEvents`]; a receiver that falls further
    /// behind loses the oldest (they are ephemeral).
    pub typing_buffer: usize,
    /// Requests waiting for answers at once, over all handles; further calls
    /// wait for a slot.
    pub max_in_flight: usize,
    /// TLS to a server whose binary port speaks it (`--tls-cert`); `None`:
    /// plain TCP. A plain client on a TLS port is refused with `tls_required`.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::Tls>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            client_name: concat!("converger-rust/", env!("CARGO_PKG_VERSION")).into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(2),
            subscription_buffer: 1024,
            typing_buffer: 256,
            max_in_flight: 1024,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// A connection to a Converger server over the binary protocol.
///
/// Cheap to clone: clones share the connection, and requests from any number
/// of clones and tasks are in flight together (answers are matched by request
/// id). The connection is reopened after any loss, and subscriptions resume
/// where they were. It closes on [`Client::close`], or when the last clone
/// and the last [`Subscription`] are dropped.
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

/// Owned by every clone; the last one dropped closes the client.
struct Handle {
    shared: Arc<Shared>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close(None);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared().lock();
        f.debug_struct("Client").field("addr", &state.addr).field("connected", &state.conn.is_some()).finish()
    }
}

impl Client {
    /// Connects to `addr` (`host:port`, resolved again at every reconnect)
    /// and authenticates. Errors: the server's refusal ([`Error::Server`] with
    /// `unauthorized`, `tenant_inactive`, …), I/O, or the connect timeout.
    pub async fn connect(addr: impl ToString, credential: Credential) -> Result<Client> {
        Client::connect_with(addr, credential, Options::default()).await
    }

    /// [`Client::connect`] with [`Options`].
    pub async fn connect_with(addr: impl ToString, credential: Credential, options: Options) -> Result<Client> {
        let addr = addr.to_string();
        let established = handshake(&addr, &credential, &options).await?;
        let shared = Arc::new(Shared::new(options, addr, credential, established.welcome.clone()));
        let mut up = shared.conn_changed.subscribe();
        let task = tokio::spawn(run(shared.clone(), established));
        // Return once requests can use the connection.
        let _ = up.wait_for(|n| *n >= 1).await;
        Ok(Client { handle: Arc::new(Handle { shared, task: std::sync::Mutex::new(Some(task)) }) })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// What the server said at the current (or last) connection's handshake.
    pub fn welcome(&self) -> Welcome {
        self.shared().lock().welcome.clone()
    }

    /// Whether a connection is up right now (false while reconnecting).
    pub fn is_connected(&self) -> bool {
        self.shared().lock().conn.is_some()
    }

    /// Connections made so far (1 after `connect`; each reconnect adds one).
    pub fn connections(&self) -> u64 {
        *self.shared().conn_changed.borrow()
    }

    /// Publishes one activity and waits for its acknowledgement: once it
    /// returns `Ok`, the activity is committed.
    ///
    /// On [`Error::ConnectionLost`] the outcome is unknown: publish again with
    /// the same idempotency key to make sure it exists exactly once.
    pub async fn publish(&self, draft: Draft) -> Result<Written> {
        let activity = proto::Draft::from(draft);
        match self.call(|request_id| Frame::Publish(Publish { request_id, activity })).await? {
            Frame::PublishAck(ack) => Ok(ack.written.into()),
            other => Err(unexpected(&other)),
        }
    }

    /// Publishes many activities in one frame (any conversations); each item
    /// succeeds or fails on its own, in the drafts' order. `Err` is a failure
    /// of the whole frame (`overloaded`, `shutting_down`, …).
    pub async fn publish_batch(&self, drafts: Vec<Draft>) -> Result<Vec<Result<Written, ServerError>>> {
        let activities: Vec<proto::Draft> = drafts.into_iter().map(proto::Draft::from).collect();
        match self.call(|request_id| Frame::PublishBatch(PublishBatch { request_id, activities })).await? {
            Frame::PublishBatchAck(ack) => {
                Ok(ack.items.into_iter().map(|item| item.map(Written::from).map_err(ServerError::from)).collect())
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Subscribes to a conversation from `after_seq` (the last seq you have:
    /// 0 = everything, [`LIVE_ONLY`](crate::LIVE_ONLY) = no backlog). The
    /// [`Subscription`] yields the backlog, then the live stream, in seq
    /// order, and survives reconnects (it resumes from the last seq it handed
    /// out, so there is no gap and no duplicate).
    ///
    /// Errors: the server's refusal of the conversation (`not_found`,
    /// `forbidden` for another conversation than a token's), or
    /// `already_subscribed` when this client already has a subscription to it.
    /// If the connection is lost before the answer, the subscription is kept
    /// and starts on the next connection.
    pub async fn subscribe(&self, conversation: Uuid, after_seq: u64) -> Result<Subscription> {
        let shared = self.shared();
        let (tx, rx) = mpsc::channel(shared.options.subscription_buffer.max(1));
        let signal = Arc::new(SubSignal::default());
        let request_id = shared.next_id();
        let last = (after_seq != proto::LIVE_ONLY).then_some(after_seq);
        {
            let mut state = shared.lock();
            if state.closed.is_some() {
                return Err(Error::Closed);
            }
            if state.subs.contains_key(&conversation) {
                let e = ServerError::new(proto::ErrorCode::AlreadySubscribed, "this client has a subscription to it");
                return Err(e.into());
            }
            state.subs.insert(conversation, SubState::new(tx, last, request_id, signal.clone()));
        }
        let subscription = Subscription::new(self.clone(), conversation, rx, signal.clone());
        let items = vec![SubscribeItem { conversation_id: conversation.into_bytes(), after_seq }];
        let answer = self.call_with_id(request_id, Frame::Subscribe(Subscribe { request_id, items })).await;
        let refused = match answer {
            Ok(Frame::Subscribed(s)) => {
                match s.items.into_iter().find(|i| i.conversation_id == conversation.into_bytes()) {
                    Some(item) => match item.result {
                        Ok(_) => return Ok(subscription),
                        // A reconnect subscribed it first.
                        Err(f) if f.code == proto::ErrorCode::AlreadySubscribed.code() => return Ok(subscription),
                        Err(f) => Error::Server(f.into()),
                    },
                    None => Error::Protocol(ProtocolError::Unexpected("subscribed (without the item)")),
                }
            }
            Ok(other) => unexpected(&other),
            // It stays registered: the next connection subscribes it.
            Err(Error::ConnectionLost) => return Ok(subscription),
            Err(e) => e,
        };
        drop(subscription); // forgets the registration (and tells the server if needed)
        Err(refused)
    }

    /// Reads activities `after_seq < seq <= until` (all after `after_seq`
    /// when `until` is `None`) in seq order, at most `limit` (the server caps
    /// it at 1000). A page may hold fewer: the range is done when the page's
    /// last seq reaches `until` or [`HistoryPage::last_seq`]; else ask again
    /// after it.
    pub async fn history(
        &self,
        conversation: Uuid,
        after_seq: u64,
        until: Option<u64>,
        limit: u32,
    ) -> Result<HistoryPage> {
        let conversation_id = conversation.into_bytes();
        let frame = |request_id| {
            Frame::History(History {
                request_id,
                conversation_id,
                after_seq,
                until_seq: until.filter(|u| *u != 0),
                limit,
            })
        };
        match self.call(frame).await? {
            Frame::HistoryPage(page) => Ok(page.into()),
            other => Err(unexpected(&other)),
        }
    }

    /// Tells the conversation's subscribers that you started (`true`) or
    /// stopped typing: ephemeral, never stored. For a token client; an
    /// API-key client names the sender with [`Client::typing_as`].
    ///
    /// Returns once the frame is queued: the server answers nothing on
    /// success, and the SDK does not ask it to report refusals (a refused
    /// typing signal has no consequence worth a round trip).
    pub async fn typing(&self, conversation: Uuid, typing: bool) -> Result<()> {
        self.typing_as(conversation, "", typing).await
    }

    /// [`Client::typing`] in the name of `sender` (required with an API key).
    pub async fn typing_as(&self, conversation: Uuid, sender: &str, typing: bool) -> Result<()> {
        if sender.is_empty() && matches!(self.shared().lock().credential, Credential::ApiKey(_)) {
            return Err(Error::InvalidArgument("an API-key client names the sender of a typing signal".into()));
        }
        let frame = Frame::Ephemeral(proto::Ephemeral {
            request_id: 0,
            conversation_id: conversation.into_bytes(),
            kind: "typing".into(),
            sender: sender.into(),
            data: if typing { r#"{"typing":true}"# } else { r#"{"typing":false}"# }.into(),
        });
        let conn = self.wait_for_connection(Instant::now() + self.shared().options.request_timeout).await?;
        let bytes = encode(&frame, conn.version)?;
        conn.outbox.send(bytes).await.map_err(|_| Error::ConnectionLost)
    }

    /// Typing events of the conversations this client is subscribed to, from
    /// now on. Each receiver holds up to `Options::typing_buffer` events and
    /// skips the oldest when it falls behind. Ends when the client closes.
    pub fn typing_events(&self) -> TypingEvents {
        TypingEvents::new(self.shared().typing_receiver())
    }

    /// Receipts (a member's read and delivered watermarks moved) and users
    /// coming online or going offline, in the conversations this client is
    /// subscribed to, from now on (protocol version 2; ephemeral, like typing
    /// events, and buffered the same way).
    pub fn member_events(&self) -> MemberEvents {
        MemberEvents::new(self.shared().member_receiver())
    }

    /// A round trip to the server (Ping → Pong).
    pub async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        match self.call(|id| Frame::Ping(proto::Ping { payload: u64::from(id) })).await? {
            Frame::Pong(_) => Ok(start.elapsed()),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces the connection's client token before it expires
    /// (`POST /api/v1/tokens/refresh` makes one). It must name the same
    /// tenant, conversation and sender. On success it is also the credential
    /// of every later reconnect; on refusal the old token stays in force.
    pub async fn reauth(&self, token: impl Into<String>) -> Result<()> {
        let token = token.into();
        let sent = token.clone();
        match self.call(|request_id| Frame::Reauth(Reauth { request_id, token: sent })).await? {
            Frame::Ack(_) => {
                self.shared().lock().credential = Credential::Token(token);
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    /// The address of later reconnects (a failover; takes effect at the next
    /// connection, see [`Client::reconnect`]).
    pub fn set_addr(&self, addr: impl ToString) {
        self.shared().lock().addr = addr.to_string();
    }

    /// Drops the current connection and opens a new one. Subscriptions resume
    /// from their last seq; requests in flight fail with
    /// [`Error::ConnectionLost`]. For a network change, and for tests.
    pub fn reconnect(&self) {
        if let Some(conn) = &self.shared().lock().conn {
            conn.kill.notify_one();
        }
    }

    /// Closes the connection for every clone: requests fail with
    /// [`Error::Closed`], subscriptions end after what they hold. Waits for
    /// the socket to close.
    pub async fn close(&self) {
        self.shared().close(None);
        let task = self.handle.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// A request whose frame takes the id this picks.
    pub(crate) async fn call(&self, frame: impl FnOnce(u32) -> Frame) -> Result<Frame> {
        let id = self.shared().next_id();
        self.call_with_id(id, frame(id)).await
    }

    /// Sends `frame` (request `id`) and waits for its answer; an Error frame
    /// is returned as [`Error::Server`].
    pub(crate) async fn call_with_id(&self, id: u32, frame: Frame) -> Result<Frame> {
        let shared = self.shared();
        let timeout = shared.options.request_timeout;
        let deadline = Instant::now() + timeout;
        let attempt = async {
            let _slot = shared.in_flight.acquire().await.map_err(|_| Error::Closed)?;
            let (reply, answer) = oneshot::channel();
            let mut reply = Some(reply);
            let conn = loop {
                let mut changed = shared.conn_changed.subscribe();
                match shared.register(id, &mut reply)? {
                    Some(conn) => break conn,
                    // Reconnecting: wait for the next connection (or the close).
                    None => {
                        let _ = changed.changed().await;
                    }
                }
            };
            // Encoded for the connection it goes on (its version).
            let bytes = encode(&frame, conn.version)?;
            let max_frame = shared.lock().welcome.max_frame;
            if bytes.len() > max_frame as usize {
                // The server would close the connection (`frame_too_large`).
                let why = format!("a frame of {} bytes is over the server's limit of {max_frame}", bytes.len());
                return Err(Error::InvalidArgument(why));
            }
            if conn.outbox.send(bytes).await.is_err() {
                return Err(Error::ConnectionLost);
            }
            match answer.await {
                Ok(Frame::Error(e)) => Err(Error::Server(ServerError::from(&e))),
                Ok(frame) => Ok(frame),
                Err(_) if shared.lock().closed.is_some() => Err(Error::Closed),
                Err(_) => Err(Error::ConnectionLost),
            }
        };
        let result = match tokio::time::timeout_at(deadline.into(), attempt).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(timeout)),
        };
        if result.is_err() {
            shared.forget(id);
        }
        result
    }

    /// The current connection, waiting for one until `deadline`.
    async fn wait_for_connection(&self, deadline: Instant) -> Result<crate::state::Conn> {
        let shared = self.shared();
        let wait = async {
            loop {
                let mut changed = shared.conn_changed.subscribe();
                {
                    let state = shared.lock();
                    if state.closed.is_some() {
                        return Err(Error::Closed);
                    }
                    if let Some(conn) = &state.conn {
                        return Ok(conn.clone());
                    }
                }
                let _ = changed.changed().await;
            }
        };
        tokio::time::timeout_at(deadline.into(), wait)
            .await
            .unwrap_or(Err(Error::Timeout(shared.options.request_timeout)))
    }
}

pub(crate) fn unexpected(frame: &Frame) -> Error {
    Error::Protocol(ProtocolError::Unexpected(frame.kind().name()))
}
