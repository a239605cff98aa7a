//! The Rust SDK of Converger's binary protocol (docs/protocol.md), on tokio.
//!
//! A [`Client`] is one TCP connection (`TCP_NODELAY`), authenticated with a
//! client token or a tenant API key ([`Credential`]), kept up across losses:
//!
//! - [`Client::publish`] / [`Client::publish_batch`] return once the server
//!   has committed the activities. Requests from any number of clones and
//!   tasks are in flight at once; a reader task matches answers by request id.
//! - [`Client::subscribe`] gives a [`Subscription`]: the backlog after your
//!   last seq, then the live stream, in seq order. After a reconnect it
//!   resumes from the last seq it handed out: no gap, no duplicate.
//! - [`Client::history`], [`Client::typing`] (and [`Client::typing_events`]),
//!   [`Client::ping`], [`Client::reauth`].
//! - Chat (protocol version 2, which the client offers and a current server
//!   picks): [`Client::edit`], [`Client::delete`], [`Client::react`],
//!   [`Client::unreact`], [`Client::reply`], [`Client::mark_read`], and
//!   [`Client::member_events`] for receipts and users online and offline.
//!   Activities carry `target_id`, `parent_id` and a message's
//!   [`MessageState`].
//! - [`Rest`]: the REST calls an integrator makes around it (channels,
//!   conversations, client tokens, the activity list), over `http://` or
//!   `https://`. Behind the default `rest` feature (see [Features](#features)).
//!
//! Frames are encoded and decoded by `converger-protocol`, the codec the
//! server uses: the SDK has no second one.
//!
//! ```no_run
//! # #[cfg(feature = "rest")]
//! # async fn demo() -> converger_client::Result<()> {
//! use converger_client::{Client, Credential, Draft, Rest};
//!
//! // Server side: a channel, a conversation and a token for a user.
//! let rest = Rest::new("https://converger.example.com", "cvg_…tenant api key…")?;
//! let channel = rest.create_channel("support", "websocket", serde_json::json!({})).await?;
//! let conversation = rest.create_conversation(channel.id, None, None).await?;
//! let token = rest.create_token(conversation.id, "user-42", None).await?;
//!
//! // The user's side: connect with the token, follow the conversation, write.
//! let client = Client::connect("127.0.0.1:4001", Credential::Token(token.token)).await?;
//! let mut sub = client.subscribe(conversation.id, 0).await?;
//! let written = client.publish(Draft::message(conversation.id, "hello").idempotency_key("hello-1")).await?;
//! while let Some(activity) = sub.next().await {
//!     println!("{} {}: {:?}", activity.seq, activity.sender, activity.text);
//!     if activity.seq == written.seq {
//!         break;
//!     }
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Reconnect and resume
//!
//! Any loss of the connection (a server restart, `slow_consumer`,
//! `shutting_down`, a network error, a dead peer found by the keepalive
//! pings) is followed by a new connection after an exponential backoff
//! ([`Options::reconnect_min`] to [`Options::reconnect_max`], with jitter).
//! The new connection subscribes every subscription again with the last seq
//! it queued; the server sends what follows, and every activity at or below
//! that seq is dropped. Requests in flight when a connection is lost fail
//! with [`Error::ConnectionLost`] (their outcome is unknown: publish again
//! with the same idempotency key); requests made while reconnecting wait
//! for the new connection, up to [`Options::request_timeout`]. A reconnect
//! refused for its credential (an expired token, a disabled tenant) closes
//! the client: subscriptions end and [`Subscription::end_reason`] says why.
//! Renew a token before it expires with [`Client::reauth`].
//!
//! # Flow control and memory
//!
//! Every queue is bounded. Towards the server, frames wait in an outbox of
//! 256 frames, and callers wait when it is full, so the server's TCP
//! backpressure reaches them; at most [`Options::max_in_flight`] requests
//! wait for answers. From the server, the reader never waits on a consumer:
//! each subscription holds at most [`Options::subscription_buffer`]
//! activities, and when a consumer is that far behind its subscription
//! pauses and later resumes from its last seq (see [`Subscription`]), so a
//! slow consumer costs a resubscription, never unbounded memory, never a
//! lost activity, and never delays other subscriptions or acks. Typing
//! events, which are ephemeral, are dropped for a receiver that falls
//! [`Options::typing_buffer`] behind.
//!
//! # Features
//!
//! - `rest` (default): [`Rest`], over `reqwest` with rustls (no OpenSSL),
//!   HTTP/1.1, `http://` and `https://` base URLs; server certificates are
//!   checked against the Mozilla roots of `webpki-roots`. It is the reqwest
//!   build the server crate already uses, so a workspace build compiles
//!   nothing more for it; the crate built on its own compiles hyper, rustls
//!   and ring too (about 100 crates instead of about 30).
//!
//! - `tls` (default): [`Options::tls`] with a [`Tls`], the binary protocol
//!   over TLS to a server started with `--tls-cert`/`--tls-key`
//!   (tokio-rustls, ring; the rustls that `rest` builds anyway). Trust your
//!   CA ([`Tls::with_ca_pem`]), a root store of yours ([`Tls::with_roots`])
//!   or the Mozilla roots ([`Tls::webpki_roots`]).
//!
//! With `default-features = false` the crate is the binary-protocol client
//! alone (tokio, the shared codec), without reqwest: create channels,
//! conversations and tokens with any HTTP client, the API is plain JSON
//! (docs/api.md).

mod chat;
mod client;
pub mod codec;
mod connection;
mod error;
#[cfg(feature = "rest")]
mod rest;
mod state;
mod subscription;
#[cfg(feature = "tls")]
mod tls;
mod types;

pub use chat::Receipt;
pub use client::{Client, Options};
pub use converger_protocol::{ErrorCode, Version, LIVE_ONLY};
pub use error::{code_of, Error, ProtocolError, Result, ServerError};
#[cfg(feature = "rest")]
pub use rest::{
    ActivityList, ApiError, BroadcastResult, Channel, Conversation, EventEndpoint, LifecycleEvent, Member, Present,
    Rest, RestActivity, SigningKey, Token,
};
#[cfg(feature = "tls")]
pub use rustls;
pub use subscription::{Events, MemberEvents, Subscription, TypingEvents};
#[cfg(feature = "tls")]
pub use tls::Tls;
pub use types::{
    Activity, Credential, Draft, Edit, HistoryPage, MemberEvent, MessageState, PresenceEvent, Reaction, ReceiptEvent,
    TypingEvent, Welcome, Written,
};
pub use uuid::Uuid;
