//! The mixed load: publishers over REST, Phoenix and the binary protocol,
//! each publishing to the conversations of one tenant with an idempotency key
//! that is also the activity's text. A publish whose outcome is unknown (the
//! connection broke, no answer in time) or refused as temporary (5xx, 429) is
//! retried with the same key after reconnecting, a bounded number of times;
//! every attempt is recorded in the [`History`].
//!
//! Clients find the server through [`Endpoints`], which the fault driver
//! updates as nodes die and come back on new ports.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use converger_protocol::{Draft, ErrorCode, Frame, Publish};
use serde_json::{json, Value};

use super::conn::{BinConn, PhxConn, ANSWER_TIMEOUT};
use super::history::{History, Outcome, Record, Transport};
use crate::api::{create_tenant, expect, Client};
use crate::binary::{message, uuid_bytes};
use crate::http::Conn;
use crate::server::TestServer;

/// Attempts of one logical publish (same key) before the client gives up on it.
const MAX_ATTEMPTS: u32 = 30;
/// Pause before a retry or a reconnect; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(800);

/// One node's listeners.
#[derive(Clone, Copy, Debug)]
pub struct Node {
    pub http: SocketAddr,
    pub binary: SocketAddr,
}

impl Node {
    pub fn of(server: &TestServer) -> Node {
        Node { http: server.http_addr(), binary: server.binary_addr() }
    }
}

/// Where the live nodes are: slot i is node i, `None` while it is down.
#[derive(Default)]
pub struct Endpoints {
    nodes: RwLock<Vec<Option<Node>>>,
}

impl Endpoints {
    pub fn new(nodes: Vec<Node>) -> Endpoints {
        Endpoints { nodes: RwLock::new(nodes.into_iter().map(Some).collect()) }
    }

    pub fn set(&self, i: usize, node: Option<Node>) {
        if let Ok(mut nodes) = self.nodes.write() {
            nodes[i] = node;
        }
    }

    /// The first live node from slot `prefer` on (wrapping), if any.
    pub fn pick(&self, prefer: usize) -> Option<Node> {
        let nodes = self.nodes.read().ok()?;
        let n = nodes.len();
        (0..n).find_map(|k| nodes[(prefer + k) % n])
    }
}

/// The tenant and conversations the load works on, made through REST.
pub struct Workload {
    pub api_key: String,
    pub conversations: Vec<String>,
    /// Client tokens for the Phoenix clients, by (client name, conversation index).
    tokens: std::collections::HashMap<(String, usize), String>,
}

impl Workload {
    /// A tenant with a websocket channel and `conversations` conversations;
    /// tokens (24 h) for each of `phoenix_clients` on each conversation.
    pub fn create(server: &TestServer, conversations: usize, phoenix_clients: &[String]) -> Workload {
        let tenant = create_tenant(server, "chaos");
        let client = Client::bearer(server, &tenant.api_key);
        let channel = expect(&client.post("/api/v1/channels", &json!({"name": "chaos", "type": "websocket"})), 201);
        let conversations: Vec<String> = (0..conversations)
            .map(|_| {
                let c = expect(&client.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
                c["id"].as_str().expect("conversation id").to_string()
            })
            .collect();
        let mut tokens = std::collections::HashMap::new();
        for name in phoenix_clients {
            for (i, conv) in conversations.iter().enumerate() {
                let body = json!({"conversation_id": conv, "sender": name, "ttl_seconds": 86400});
                let t = expect(&client.post("/api/v1/tokens", &body), 200);
                tokens.insert((name.clone(), i), t["token"].as_str().expect("token").to_string());
            }
        }
        Workload { api_key: tenant.api_key, conversations, tokens }
    }

    pub fn token(&self, client: &str, conversation: usize) -> &str {
        &self.tokens[&(client.to_string(), conversation)]
    }
}

/// What every load thread shares.
#[derive(Clone)]
pub struct Ctx {
    pub endpoints: Arc<Endpoints>,
    pub history: History,
    pub work: Arc<Workload>,
    /// Makes keys unique across scenarios of one run.
    pub run: String,
    pub stop: Arc<AtomicBool>,
    /// Pause between two publishes of one client.
    pub pace: Duration,
}

impl Ctx {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits `d`, or less when the load is stopped meanwhile.
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopped() && Instant::now() < until {
            thread::sleep(Duration::from_millis(10).min(until.saturating_duration_since(Instant::now())));
        }
    }

    /// A live node, preferring slot `prefer`; waits while none is up. `None` once stopped.
    pub fn node(&self, prefer: usize) -> Option<Node> {
        loop {
            if let Some(n) = self.endpoints.pick(prefer) {
                return Some(n);
            }
            if self.stopped() {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One transport's way of publishing; the connection is the implementor's.
trait Publisher {
    /// Publishes `key` into conversation number `conv`; drops the connection
    /// on anything but an answer.
    fn publish(&mut self, ctx: &Ctx, conv: usize, key: &str) -> Outcome;
    /// Forgets the connection (after an unknown outcome).
    fn disconnect(&mut self);
}

/// Starts a publisher thread of `transport` named `name`, preferring node `prefer`.
pub fn spawn_publisher(ctx: Ctx, transport: Transport, name: String, prefer: usize) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let mut p: Box<dyn Publisher> = match transport {
                Transport::Rest => Box::new(RestPublisher { name: name.clone(), prefer, conn: None }),
                Transport::Phoenix => {
                    Box::new(PhxPublisher { name: name.clone(), prefer, conns: Vec::new(), known: Vec::new() })
                }
                Transport::Binary => Box::new(BinPublisher { name: name.clone(), prefer, conn: None, next_id: 0 }),
            };
            run_publisher(&ctx, transport, &name, p.as_mut());
        })
        .expect("spawn a publisher")
}

fn run_publisher(ctx: &Ctx, transport: Transport, name: &str, p: &mut dyn Publisher) {
    let convs = ctx.work.conversations.len();
    let mut n = 0usize;
    while !ctx.stopped() {
        let conv = n % convs;
        let key = format!("{}-{name}-{n}", ctx.run);
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let outcome = p.publish(ctx, conv, &key);
            let settled = match &outcome {
                Outcome::Acked { .. } => true,
                Outcome::Refused { status, .. } => !(*status >= 500 || *status == 429 || *status == 0),
                Outcome::Unknown { .. } => false,
            };
            if matches!(outcome, Outcome::Unknown { .. }) {
                p.disconnect();
            }
            ctx.history.push(Record::Publish {
                client: name.to_string(),
                transport,
                conversation: ctx.work.conversations[conv].clone(),
                key: key.clone(),
                attempt,
                outcome,
            });
            if settled || ctx.stopped() {
                break;
            }
            ctx.pause(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        n += 1;
        ctx.pause(ctx.pace);
    }
}

/// The `{"error": {"code"}}` of an answer, or `"?"`.
fn error_code(body: &Value) -> String {
    body["error"]["code"].as_str().or(body["code"].as_str()).unwrap_or("?").to_string()
}

fn acked(activity: &Value, replayed: bool) -> Option<Outcome> {
    Some(Outcome::Acked { seq: activity["seq"].as_u64()?, id: activity["id"].as_str()?.to_string(), replayed })
}

fn unknown(e: impl std::fmt::Display) -> Outcome {
    Outcome::Unknown { error: e.to_string() }
}

struct RestPublisher {
    name: String,
    prefer: usize,
    conn: Option<Conn>,
}

impl Publisher for RestPublisher {
    fn publish(&mut self, ctx: &Ctx, conv: usize, key: &str) -> Outcome {
        if self.conn.is_none() {
            let Some(node) = ctx.node(self.prefer) else { return unknown("stopped") };
            match Conn::open(node.http).and_then(|mut c| c.set_read_timeout(ANSWER_TIMEOUT).map(|()| c)) {
                Ok(c) => self.conn = Some(c),
                Err(e) => return unknown(format!("connect: {e}")),
            }
        }
        let Some(conn) = self.conn.as_mut() else { return unknown("no connection") };
        let path = format!("/api/v1/conversations/{}/activities", ctx.work.conversations[conv]);
        let auth = format!("Bearer {}", ctx.work.api_key);
        let headers =
            [("authorization", auth.as_str()), ("content-type", "application/json"), ("idempotency-key", key)];
        let body = json!({"sender": self.name, "text": key, "metadata": {"chaos": true}}).to_string();
        let reply =
            match conn.send_request("POST", &path, &headers, body.as_bytes()).and_then(|()| conn.read_reply(false)) {
                Ok(r) => r,
                Err(e) => return unknown(e),
            };
        let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if reply.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
            self.conn = None;
        }
        match reply.status {
            200 | 201 => acked(&value, reply.status == 200)
                .unwrap_or_else(|| unknown(format!("{} without id/seq: {value}", reply.status))),
            status => Outcome::Refused { status, code: error_code(&value) },
        }
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }
}

/// One socket per conversation (a client token names one conversation).
struct PhxPublisher {
    name: String,
    prefer: usize,
    conns: Vec<Option<(PhxConn, String)>>,
    /// The highest seq acknowledged to this client, per conversation: its
    /// joins ask only for what came after (a publisher needs no backlog).
    known: Vec<u64>,
}

impl PhxPublisher {
    fn joined(&mut self, ctx: &Ctx, conv: usize) -> Result<&mut (PhxConn, String), Outcome> {
        if self.conns.len() <= conv {
            self.conns.resize_with(conv + 1, || None);
            self.known.resize(conv + 1, 0);
        }
        if self.conns[conv].is_none() {
            let node = ctx.node(self.prefer).ok_or_else(|| unknown("stopped"))?;
            let mut c = PhxConn::connect(node.http, ctx.work.token(&self.name, conv)).map_err(unknown)?;
            let topic = format!("conversation:{}", ctx.work.conversations[conv]);
            let r = c.push(&topic, "phx_join", json!({"last_seq": self.known[conv]})).map_err(unknown)?;
            let reply = c.reply(&r, |_| {}).map_err(unknown)?;
            if reply["status"] != "ok" {
                return Err(unknown(format!("join refused: {reply}")));
            }
            self.conns[conv] = Some((c, topic));
        }
        self.conns[conv].as_mut().ok_or_else(|| unknown("no connection"))
    }
}

impl Publisher for PhxPublisher {
    fn publish(&mut self, ctx: &Ctx, conv: usize, key: &str) -> Outcome {
        let outcome = match self.joined(ctx, conv) {
            Ok((c, topic)) => {
                let payload = json!({"text": key, "idempotency_key": key, "metadata": {"chaos": true}});
                match c.push(topic, "activity:create", payload).and_then(|r| c.reply(&r, |_| {})) {
                    Ok(reply) if reply["status"] == "ok" => acked(&reply["response"], false)
                        .unwrap_or_else(|| unknown(format!("ok without id/seq: {reply}"))),
                    // Phoenix replies carry the REST code: its HTTP twin is the status.
                    Ok(reply) => {
                        let code = error_code(&reply["response"]);
                        let status = ErrorCode::from_name(&code).and_then(ErrorCode::http_status).unwrap_or(0);
                        Outcome::Refused { status, code }
                    }
                    Err(e) => unknown(e),
                }
            }
            Err(outcome) => outcome,
        };
        match &outcome {
            // A refusal without a catalogue code (e.g. the topic was closed
            // under it) may not heal on this socket: join again.
            Outcome::Unknown { .. } | Outcome::Refused { status: 0, .. } if conv < self.conns.len() => {
                self.conns[conv] = None
            }
            Outcome::Acked { seq, .. } if conv < self.known.len() => self.known[conv] = self.known[conv].max(*seq),
            _ => {}
        }
        outcome
    }

    fn disconnect(&mut self) {}
}

struct BinPublisher {
    name: String,
    prefer: usize,
    conn: Option<BinConn>,
    next_id: u32,
}

impl Publisher for BinPublisher {
    fn publish(&mut self, ctx: &Ctx, conv: usize, key: &str) -> Outcome {
        if self.conn.is_none() {
            let Some(node) = ctx.node(self.prefer) else { return unknown("stopped") };
            match BinConn::connect(node.binary, &ctx.work.api_key) {
                Ok(c) => self.conn = Some(c),
                Err(e) => return unknown(format!("connect: {e}")),
            }
        }
        let Some(c) = self.conn.as_mut() else { return unknown("no connection") };
        self.next_id = self.next_id.wrapping_add(1);
        let request_id = self.next_id;
        let activity = Draft {
            metadata: Some(r#"{"chaos":true}"#.into()),
            idempotency_key: Some(key.into()),
            ..message(uuid_bytes(&ctx.work.conversations[conv]), &self.name, key)
        };
        if let Err(e) = c.send(Publish { request_id, activity }) {
            return unknown(e);
        }
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            match c.next_by(deadline) {
                Ok(Some(Frame::PublishAck(a))) if a.request_id == request_id => {
                    let id = uuid::Uuid::from_bytes(a.written.activity_id).to_string();
                    return Outcome::Acked { seq: a.written.seq, id, replayed: a.written.replayed };
                }
                Ok(Some(Frame::Error(e))) if e.request_id == request_id && !e.close => {
                    let code = e.error_code().map_or_else(|| e.code.to_string(), |c| c.name().to_string());
                    // The HTTP twin of the code, so temporary refusals are retried.
                    let status = e.error_code().and_then(ErrorCode::http_status).unwrap_or(0);
                    return Outcome::Refused { status, code };
                }
                Ok(Some(Frame::Error(e))) => return unknown(format!("error frame: {} {}", e.code, e.message)),
                Ok(Some(_)) => {}
                Ok(None) => return unknown("no PublishAck in time"),
                Err(e) => return unknown(e),
            }
        }
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_sent_to_the_next_live_node() {
        let node =
            |port| Node { http: SocketAddr::from(([127, 0, 0, 1], port)), binary: "127.0.0.1:1".parse().unwrap() };
        let e = Endpoints::new(vec![node(10), node(11), node(12)]);
        assert_eq!(e.pick(1).map(|n| n.http.port()), Some(11));
        e.set(1, None);
        assert_eq!(e.pick(1).map(|n| n.http.port()), Some(12));
        e.set(2, None);
        assert_eq!(e.pick(1).map(|n| n.http.port()), Some(10));
        e.set(0, None);
        assert!(e.pick(1).is_none());
    }
}
