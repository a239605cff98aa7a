//! A blocking Phoenix Channels V2 client over a real WebSocket (tungstenite):
//! messages are JSON arrays `[join_ref, ref, topic, event, payload]`. Reads
//! wait at most [`READ_TIMEOUT`]; [`activities`] and [`PresenceView`] follow a
//! conversation's stream and presence with a deadline of the caller's choosing.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use crate::api::Fixture;
use crate::server::TestServer;

pub type Ws = WebSocket<TcpStream>;

/// How long one read waits before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A socket on `/socket/websocket?{query}`, or the handshake's refusal.
pub fn connect(server: &TestServer, query: &str) -> Result<Ws, tungstenite::Error> {
    let stream = TcpStream::connect(server.http_addr()).expect("tcp");
    stream.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
    let url = format!("ws://{}/socket/websocket?{query}", server.http_addr());
    tungstenite::client(url, stream).map(|(ws, _)| ws).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
    })
}

/// A socket authenticated with a client token.
pub fn with_token(server: &TestServer, token: &str) -> Ws {
    connect(server, &format!("token={token}&vsn=2.0.0")).expect("handshake")
}

/// A socket for `sender` on the fixture's conversation (its token issued by `server`).
pub fn socket(server: &TestServer, f: &Fixture, sender: &str) -> Ws {
    with_token(server, &f.token(server, sender))
}

pub fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::text(msg.to_string())).expect("send");
}

/// The next Phoenix message (skipping pings).
pub fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// What [`next_by`] found before its deadline.
#[derive(Debug)]
pub enum Read {
    Message(Value),
    /// Nothing arrived before the deadline.
    Timeout,
    /// The connection ended (closed, reset, or its server died).
    Closed,
}

/// The next message before `deadline`, without panicking when nothing comes
/// or the connection ends.
pub fn next_by(ws: &mut Ws, deadline: Instant) -> Read {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Read::Timeout;
        }
        let _ = ws.get_mut().set_read_timeout(Some(left.min(READ_TIMEOUT)));
        match ws.read() {
            Ok(Message::Text(t)) => return Read::Message(serde_json::from_str(t.as_str()).expect("json")),
            Ok(Message::Close(_)) => return Read::Closed,
            Ok(_) => continue,
            // A read timeout: tungstenite keeps any partial frame, so reading again is safe.
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue
            }
            Err(_) => return Read::Closed,
        }
    }
}

/// Reads until a message with `event` arrives; returns it.
pub fn until(ws: &mut Ws, event: &str) -> Value {
    let deadline = Instant::now() + READ_TIMEOUT;
    while Instant::now() < deadline {
        let m = next(ws);
        if m[3] == event {
            return m;
        }
    }
    panic!("no {event} within {READ_TIMEOUT:?}");
}

pub fn join(ws: &mut Ws, topic: &str, payload: Value) -> Value {
    send(ws, json!(["1", "1", topic, "phx_join", payload]));
    until(ws, "phx_reply")
}

/// The topic of the fixture's conversation.
pub fn topic(f: &Fixture) -> String {
    format!("conversation:{}", f.conversation_id())
}

/// Reads `activity` events until `n` have arrived or `deadline` passes;
/// returns those that did (the caller asserts on them), and feeds every
/// presence message to `presence` when given.
pub fn activities(ws: &mut Ws, n: usize, deadline: Instant, mut presence: Option<&mut PresenceView>) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        match next_by(ws, deadline) {
            Read::Message(m) => {
                if m[3] == "activity" {
                    got.push(m[4].clone());
                } else if let Some(view) = presence.as_deref_mut() {
                    view.apply(&m);
                }
            }
            Read::Timeout | Read::Closed => break,
        }
    }
    got
}

/// Reads until a message with `event` arrives (returned) or `deadline`
/// passes (`None`).
pub fn until_by(ws: &mut Ws, event: &str, deadline: Instant) -> Option<Value> {
    loop {
        match next_by(ws, deadline) {
            Read::Message(m) if m[3] == event => return Some(m),
            Read::Message(_) => {}
            Read::Timeout | Read::Closed => return None,
        }
    }
}

/// Shared between a thread following a socket's stream ([`follow`]) and the
/// test: how many activities it has seen, and how many it should wait for.
#[derive(Debug)]
pub struct Progress {
    want: AtomicUsize,
    seen: AtomicUsize,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { want: AtomicUsize::new(usize::MAX), seen: AtomicUsize::new(0) }
    }
}

impl Progress {
    /// Until told, the follower reads on (to its deadline or the connection's end).
    pub fn want(&self, n: usize) {
        self.want.store(n, Ordering::SeqCst);
    }

    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` have been seen; false if not by `deadline`.
    pub fn wait_seen(&self, n: usize, deadline: Instant) -> bool {
        while self.seen() < n {
            if Instant::now() >= deadline {
                return false;
            }
            // The follower runs on another thread: look again shortly.
            thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// Reads `activity` payloads until `progress.want(n)` of them have come, the
/// connection ends (the second value is then true) or `deadline` passes.
pub fn follow(ws: &mut Ws, progress: &Progress, deadline: Instant) -> (Vec<Value>, bool) {
    let mut got = Vec::new();
    while got.len() < progress.want.load(Ordering::SeqCst) && Instant::now() < deadline {
        // Short reads, so that a target set meanwhile is seen.
        match next_by(ws, deadline.min(Instant::now() + Duration::from_millis(100))) {
            Read::Message(m) if m[3] == "activity" => {
                got.push(m[4].clone());
                progress.seen.store(got.len(), Ordering::SeqCst);
            }
            Read::Message(_) | Read::Timeout => {}
            Read::Closed => return (got, true),
        }
    }
    (got, false)
}

/// The seqs of `activity` payloads.
pub fn seqs(activities: &[Value]) -> Vec<i64> {
    activities.iter().map(|a| a["seq"].as_i64().expect("seq")).collect()
}

/// One socket's view of a conversation's presence, kept as Phoenix clients
/// keep it: `presence_state` replaces it, `presence_diff` adds joins and
/// removes leaves (by `phx_ref`, so a key stays while it has a meta left).
#[derive(Debug, Default)]
pub struct PresenceView {
    metas: BTreeMap<String, Vec<String>>,
}

impl PresenceView {
    /// Takes in a message if it is `presence_state` or `presence_diff`; true if it was.
    pub fn apply(&mut self, msg: &Value) -> bool {
        match msg[3].as_str() {
            Some("presence_state") => {
                self.metas.clear();
                self.add(&msg[4]);
                true
            }
            Some("presence_diff") => {
                self.add(&msg[4]["joins"]);
                if let Some(leaves) = msg[4]["leaves"].as_object() {
                    for (key, entry) in leaves {
                        let gone = refs(entry);
                        if let Some(refs) = self.metas.get_mut(key) {
                            refs.retain(|r| !gone.contains(r));
                            if refs.is_empty() || gone.is_empty() {
                                self.metas.remove(key);
                            }
                        }
                    }
                }
                true
            }
            _ => false,
        }
    }

    fn add(&mut self, entries: &Value) {
        if let Some(entries) = entries.as_object() {
            for (key, entry) in entries {
                // A presence told twice (in the joiner's state, then in the
                // diff of the tick it joined in) is one, as Phoenix clients keep it.
                let known = self.metas.entry(key.clone()).or_default();
                for r in refs(entry) {
                    if !known.contains(&r) {
                        known.push(r);
                    }
                }
            }
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.metas.contains_key(key)
    }

    /// The keys present, in order.
    pub fn keys(&self) -> Vec<String> {
        self.metas.keys().cloned().collect()
    }

    /// Reads `ws` (ignoring other events) until `done` holds for the view, or
    /// `deadline` passes; true if it held.
    pub fn wait(&mut self, ws: &mut Ws, deadline: Instant, done: impl Fn(&PresenceView) -> bool) -> bool {
        while !done(self) {
            match next_by(ws, deadline) {
                Read::Message(m) => {
                    self.apply(&m);
                }
                Read::Timeout | Read::Closed => return false,
            }
        }
        true
    }
}

/// The `phx_ref`s of one presence entry's metas.
fn refs(entry: &Value) -> Vec<String> {
    entry["metas"].as_array().map(|metas| metas.iter().map(|m| m["phx_ref"].to_string()).collect()).unwrap_or_default()
}
