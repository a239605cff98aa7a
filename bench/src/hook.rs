//! `--pre-publish`: a pre-publish hook (docs/api.md "Pre-publish hook") inside
//! this process, so a scenario can measure what the hook's round trip costs
//! the write path. The bench's channel gets
//! `config.pre_publish {url, timeout_ms: 1000, on_failure: "reject"}` naming
//! it (see `Target::tenant`); it accepts every item at once.
//!
//! It is kept cheap so it does not dominate the figure: one thread of its
//! own (a current-thread tokio runtime, apart from the load generator's),
//! keep-alive connections, the items counted without building them
//! (`IgnoredAny`), and no signature check (a real hook would verify one: a
//! few µs of HMAC per request). It counts the requests and the items it
//! answered, so the report shows how the server batched (items per request).
//!
//! One per process, started by the first scenario setup that asks for it,
//! and left running until the process ends. Loopback only; the server must
//! be started with `--delivery-allow-private` (scripts/bench-server does).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest request read (the server sends at most 100 items per call).
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

static HOOK: OnceLock<Hook> = OnceLock::new();

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    items: AtomicU64,
    /// Requests answered 400 (not a hook request): the server then applies
    /// `on_failure` (reject), which the scenario sees as failed writes.
    refused: AtomicU64,
    /// The hook thread's id, for its CPU time (0 until it runs).
    thread: AtomicU32,
}

struct Hook {
    addr: SocketAddr,
    counters: Arc<Counters>,
}

/// What the hook served (since it started, or over a span with [`HookStats::since`]).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct HookStats {
    pub connections: u64,
    pub requests: u64,
    pub items: u64,
    pub items_per_request: f64,
    pub refused: u64,
    /// CPU seconds of the hook's thread (part of the load generator's CPU).
    pub cpu_seconds: f64,
    /// The hook's CPU per request, µs.
    pub cpu_us_per_request: f64,
}

impl HookStats {
    /// What was served after `earlier`.
    pub fn since(&self, earlier: &HookStats) -> HookStats {
        let requests = self.requests - earlier.requests;
        let items = self.items - earlier.items;
        let cpu_seconds = (self.cpu_seconds - earlier.cpu_seconds).max(0.0);
        HookStats {
            connections: self.connections - earlier.connections,
            requests,
            items,
            items_per_request: ratio(items, requests),
            refused: self.refused - earlier.refused,
            cpu_seconds,
            cpu_us_per_request: ratio_us(cpu_seconds, requests),
        }
    }

    /// For a progress line: `pre-publish hook: 1234 requests, 5678 items (4.6 items/request)`.
    pub fn line(&self) -> String {
        let refused = if self.refused > 0 { format!(", {} refused", self.refused) } else { String::new() };
        format!(
            "pre-publish hook: {} requests, {} items ({:.2} items/request) on {} connections{refused}, {:.1} µs CPU per request",
            self.requests, self.items, self.items_per_request, self.connections, self.cpu_us_per_request
        )
    }
}

fn ratio(items: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        ((items as f64 / requests as f64) * 100.0).round() / 100.0
    }
}

fn ratio_us(seconds: f64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        (seconds * 1e6 / requests as f64 * 10.0).round() / 10.0
    }
}

/// The hook's URL, starting it on first use.
pub fn url() -> Result<String, String> {
    if let Some(hook) = HOOK.get() {
        return Ok(format!("http://{}/pre-publish", hook.addr));
    }
    let hook = start()?;
    // Setups run one at a time: a second start cannot race this one.
    let hook = HOOK.get_or_init(|| hook);
    eprintln!("pre-publish hook: listening on {} (accepts every item)", hook.addr);
    Ok(format!("http://{}/pre-publish", hook.addr))
}

/// What the hook served so far; `None` when it was not started.
pub fn stats() -> Option<HookStats> {
    let c = &HOOK.get()?.counters;
    let (requests, items) = (c.requests.load(Ordering::Relaxed), c.items.load(Ordering::Relaxed));
    let thread = c.thread.load(Ordering::Relaxed);
    let cpu_seconds = if thread == 0 { 0.0 } else { crate::cpu::thread_seconds(thread).unwrap_or(0.0) };
    Some(HookStats {
        connections: c.connections.load(Ordering::Relaxed),
        requests,
        items,
        items_per_request: ratio(items, requests),
        refused: c.refused.load(Ordering::Relaxed),
        cpu_seconds,
        cpu_us_per_request: ratio_us(cpu_seconds, requests),
    })
}

/// The stats since `before` (taken before the run; `None` when the run
/// started the hook) as a suffix for a run's progress line (empty without a hook).
pub fn run_suffix(before: Option<HookStats>) -> String {
    match stats() {
        Some(now) => format!("; {}", now.since(&before.unwrap_or_default()).line()),
        None => String::new(),
    }
}

fn start() -> Result<Hook, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("pre-publish hook: bind: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| format!("pre-publish hook: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("pre-publish hook: {e}"))?;
    let counters = Arc::new(Counters::default());
    let served = counters.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("pre-publish hook: runtime: {e}"))?;
    std::thread::Builder::new()
        .name("pre-publish-hook".into())
        .spawn(move || {
            served.thread.store(crate::cpu::current_thread_id().unwrap_or(0), Ordering::Relaxed);
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    served.connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(serve(stream, served.clone()));
                }
            })
        })
        .map_err(|e| format!("pre-publish hook: thread: {e}"))?;
    Ok(Hook { addr, counters })
}

/// The part of the request the hook reads: how many items it holds.
#[derive(Deserialize)]
struct Request {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    items: Vec<serde::de::IgnoredAny>,
}

/// `{"results": [{"action": "accept"}, …]}`, one verdict per item.
fn accept_all(items: usize) -> Vec<u8> {
    const ONE: &str = r#"{"action":"accept"}"#;
    let mut body = String::with_capacity(14 + items * (ONE.len() + 1));
    body.push_str(r#"{"results":["#);
    for i in 0..items {
        if i > 0 {
            body.push(',');
        }
        body.push_str(ONE);
    }
    body.push_str("]}");
    body.into_bytes()
}

/// Serves one keep-alive connection of the server's hook client.
async fn serve(mut stream: TcpStream, counters: Arc<Counters>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(4 * 1024);
    loop {
        let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
            continue;
        };
        let len = content_length(&buf[..head_end]);
        if len > MAX_REQUEST_BYTES {
            return;
        }
        while buf.len() < head_end + len {
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        }
        let parsed = serde_json::from_slice::<Request>(&buf[head_end..head_end + len]);
        buf.drain(..head_end + len);
        out.clear();
        match parsed {
            Ok(request) => {
                let items = request.data.items.len();
                counters.requests.fetch_add(1, Ordering::Relaxed);
                counters.items.fetch_add(items as u64, Ordering::Relaxed);
                let body = accept_all(items);
                out.extend_from_slice(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(&body);
            }
            Err(_) => {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                out.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            }
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// The head's Content-Length (0 when absent or unreadable).
fn content_length(head: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    if req.parse(head).is_err() {
        return 0;
    }
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_one_accept_per_item_as_the_server_reads_it() {
        let v: serde_json::Value = serde_json::from_slice(&accept_all(3)).unwrap();
        assert_eq!(v["results"].as_array().map(Vec::len), Some(3));
        assert!(v["results"].as_array().unwrap().iter().all(|r| r["action"] == "accept"));
        let v: serde_json::Value = serde_json::from_slice(&accept_all(1)).unwrap();
        assert_eq!(v["results"][0]["action"], "accept");
    }

    #[test]
    fn a_request_is_read_for_its_item_count_only() {
        let body = br#"{"type":"activity.pre_publish","timestamp":"t","data":{"channel_id":"c","items":[{"text":"a"},{"text":"b"}]}}"#;
        assert_eq!(serde_json::from_slice::<Request>(body).unwrap().data.items.len(), 2);
        assert_eq!(content_length(b"POST /h HTTP/1.1\r\nContent-Length: 12\r\n\r\n"), 12);
    }

    #[test]
    fn stats_over_a_span_give_items_per_request() {
        let before = HookStats { connections: 1, requests: 10, items: 10, cpu_seconds: 0.5, ..HookStats::default() };
        let now = HookStats { connections: 2, requests: 14, items: 30, cpu_seconds: 0.5002, ..HookStats::default() };
        let span = now.since(&before);
        assert_eq!((span.requests, span.items, span.items_per_request), (4, 20, 5.0));
        assert_eq!(span.cpu_us_per_request, 50.0);
    }
}
