//! Subscribers of the mixed load: Phoenix sockets (one per conversation, as
//! a client token names one) and binary connections (one for every
//! conversation). After every disconnect they resume from the last seq they
//! saw — Phoenix's join `last_seq`, the binary Subscribe's `after_seq` — and
//! record every activity received, in order, in the [`History`]. They also
//! leave and resume on their own every few seconds, faults or not.
//!
//! [`Seen`] tells the driver how far each one got, so that it can wait for
//! them to catch up once the load stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use converger_protocol::{Frame, Ping, Subscribe, SubscribeItem};
use serde_json::json;

use super::conn::{BinConn, PhxConn};
use super::history::{Record, Transport};
use super::load::Ctx;
use crate::binary::uuid_bytes;

/// Heartbeats and pings go out this often (servers close idle sockets).
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Pause before a reconnect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// How long a session lasts before the subscriber leaves and resumes on its
/// own (faults aside): resuming under a live load is where a gap or a
/// duplicate at the seam would show. Varied per session in 1–4 s.
fn session_length(session: u32) -> Duration {
    super::faults::jitter(session, Duration::from_secs(1), Duration::from_secs(4))
}

/// (subscriber, conversation) → the last seq it saw.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<HashMap<(String, String), u64>>>);

impl Seen {
    fn set(&self, subscriber: &str, conversation: &str, seq: u64) {
        if let Ok(mut m) = self.0.lock() {
            m.insert((subscriber.to_string(), conversation.to_string()), seq);
        }
    }

    /// True when every subscriber of each conversation has seen up to its
    /// `last` seq.
    pub fn caught_up(&self, last: &HashMap<String, u64>) -> bool {
        let Ok(m) = self.0.lock() else { return false };
        m.iter().all(|((_, conv), seq)| last.get(conv).is_none_or(|l| seq >= l))
    }
}

fn observe(ctx: &Ctx, seen: &Seen, name: &str, transport: Transport, conversation: &str, seq: u64, id: String) {
    ctx.history.push(Record::Observe {
        subscriber: name.to_string(),
        transport,
        conversation: conversation.to_string(),
        seq,
        id,
    });
    seen.set(name, conversation, seq);
}

fn resume(ctx: &Ctx, seen: &Seen, name: &str, transport: Transport, conversation: &str, after_seq: u64) {
    ctx.history.push(Record::Resume {
        subscriber: name.to_string(),
        transport,
        conversation: conversation.to_string(),
        after_seq,
    });
    // Registered at once, so the driver waits for one that saw nothing yet.
    seen.set(name, conversation, after_seq);
}

/// A Phoenix subscriber of conversation number `conv` (its token is `name`'s).
pub fn spawn_phoenix(ctx: Ctx, seen: Seen, name: String, conv: usize, prefer: usize) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let conversation = ctx.work.conversations[conv].clone();
            let topic = format!("conversation:{conversation}");
            let mut last = 0u64;
            let mut session = conv as u32;
            while !ctx.stopped() {
                let Some(node) = ctx.node(prefer) else { return };
                session += 1;
                let until = Instant::now() + session_length(session);
                // Whatever ends a session (its time, a dead server, a close), the next resumes from `last`.
                let _ = phoenix_session(&ctx, &seen, &name, (&conversation, &topic), node.http, until, &mut last);
                ctx.pause(RECONNECT_PAUSE);
            }
        })
        .expect("spawn a subscriber")
}

fn phoenix_session(
    ctx: &Ctx,
    seen: &Seen,
    name: &str,
    (conversation, topic): (&str, &str),
    http: std::net::SocketAddr,
    until: Instant,
    last: &mut u64,
) -> std::io::Result<()> {
    let conv = ctx.work.conversations.iter().position(|c| c == conversation).unwrap_or(0);
    let mut c = PhxConn::connect(http, ctx.work.token(name, conv))?;
    let r = c.push(topic, "phx_join", json!({"last_seq": *last}))?;
    let reply = c.reply(&r, |_| {})?;
    if reply["status"] != "ok" {
        return Err(std::io::Error::other(format!("join refused: {reply}")));
    }
    resume(ctx, seen, name, Transport::Phoenix, conversation, *last);
    let mut beat = Instant::now() + KEEPALIVE;
    while !ctx.stopped() && Instant::now() < until {
        if Instant::now() >= beat {
            c.heartbeat()?;
            beat = Instant::now() + KEEPALIVE;
        }
        let Some(m) = c.next_by(Instant::now() + Duration::from_millis(200))? else { continue };
        if m[2] != topic {
            continue;
        }
        match m[3].as_str() {
            Some("activity") => {
                let (Some(seq), Some(id)) = (m[4]["seq"].as_u64(), m[4]["id"].as_str()) else { continue };
                observe(ctx, seen, name, Transport::Phoenix, conversation, seq, id.to_string());
                *last = seq;
            }
            Some("phx_close") | Some("phx_error") => return Err(std::io::Error::other(format!("{m}"))),
            _ => {}
        }
    }
    Ok(())
}

/// A binary subscriber of every conversation, on the tenant's API key.
pub fn spawn_binary(ctx: Ctx, seen: Seen, name: String, prefer: usize) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let mut last: Vec<u64> = vec![0; ctx.work.conversations.len()];
            let mut session = 100;
            while !ctx.stopped() {
                let Some(node) = ctx.node(prefer) else { return };
                session += 1;
                let until = Instant::now() + session_length(session);
                let _ = binary_session(&ctx, &seen, &name, node.binary, until, &mut last);
                ctx.pause(RECONNECT_PAUSE);
            }
        })
        .expect("spawn a subscriber")
}

fn binary_session(
    ctx: &Ctx,
    seen: &Seen,
    name: &str,
    addr: std::net::SocketAddr,
    until: Instant,
    last: &mut [u64],
) -> std::io::Result<()> {
    let convs = &ctx.work.conversations;
    let index: HashMap<[u8; 16], usize> = convs.iter().enumerate().map(|(i, c)| (uuid_bytes(c), i)).collect();
    let mut c = BinConn::connect(addr, &ctx.work.api_key)?;
    let items = convs
        .iter()
        .zip(last.iter())
        .map(|(conv, &after_seq)| SubscribeItem { conversation_id: uuid_bytes(conv), after_seq })
        .collect();
    c.send(Subscribe { request_id: 1, items })?;
    let mut subscribed = false;
    let mut ping = Instant::now() + KEEPALIVE;
    while !ctx.stopped() && Instant::now() < until {
        if Instant::now() >= ping {
            c.send(Ping { payload: 1 })?;
            ping = Instant::now() + KEEPALIVE;
        }
        let Some(frame) = c.next_by(Instant::now() + Duration::from_millis(200))? else { continue };
        match frame {
            Frame::Subscribed(s) if !subscribed => {
                if let Some(failed) = s.items.iter().find(|i| i.result.is_err()) {
                    return Err(std::io::Error::other(format!("subscribe refused: {failed:?}")));
                }
                subscribed = true;
                for (conv, &after) in convs.iter().zip(last.iter()) {
                    resume(ctx, seen, name, Transport::Binary, conv, after);
                }
            }
            Frame::Deliver(d) => {
                for a in d.activities {
                    let Some(&i) = index.get(&a.conversation_id) else { continue };
                    let id = uuid::Uuid::from_bytes(a.id).to_string();
                    observe(ctx, seen, name, Transport::Binary, &convs[i], a.seq, id);
                    last[i] = a.seq;
                }
            }
            Frame::Error(e) if e.close => return Err(std::io::Error::other(format!("{} {}", e.code, e.message))),
            _ => {}
        }
    }
    Ok(())
}
