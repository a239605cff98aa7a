//! The write path under load, over real HTTP: many writers on many connections
//! (so on both shards) into one conversation, one idempotency key raced from
//! many connections, and `kill -9` in the middle of a load — on embedded
//! storage and on PostgreSQL.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use converger_e2e::api::Fixture;
use converger_e2e::{Conn, TestServer};
use serde_json::{json, Value};

/// A tenant's API key and one conversation of theirs.
struct Setup {
    api_key: String,
    conversation: String,
}

fn setup(server: &TestServer) -> Setup {
    let f = Fixture::new(server, "load");
    Setup { api_key: f.tenant.api_key.clone(), conversation: f.conversation_id().to_string() }
}

/// One JSON request on a kept-alive connection; `None` when the connection broke.
fn try_call(
    conn: &mut Conn,
    method: &str,
    path: &str,
    bearer: &str,
    extra: &[(&str, &str)],
    body: &Value,
) -> Option<(u16, Value)> {
    let auth = format!("Bearer {bearer}");
    let mut headers = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
    headers.extend_from_slice(extra);
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    conn.send_request(method, path, &headers, &body).ok()?;
    let reply = conn.read_reply(false).ok()?;
    let value = if reply.body.is_empty() { Value::Null } else { reply.json() };
    Some((reply.status, value))
}

fn call(conn: &mut Conn, method: &str, path: &str, bearer: &str, extra: &[(&str, &str)], body: &Value) -> (u16, Value) {
    try_call(conn, method, path, bearer, extra, body).expect("the server answered")
}

fn activities_path(s: &Setup) -> String {
    format!("/api/v1/conversations/{}/activities", s.conversation)
}

/// Every stored activity of the conversation, read page by page: (id, seq).
fn stored(addr: SocketAddr, s: &Setup) -> Vec<(String, i64)> {
    let mut c = Conn::open(addr).expect("connect");
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("{}?after_seq={after}&limit=1000", activities_path(s));
        let (status, page) = call(&mut c, "GET", &path, &s.api_key, &[], &Value::Null);
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().expect("data");
        if data.is_empty() {
            return out;
        }
        for a in data {
            let seq = a["seq"].as_i64().expect("seq");
            out.push((a["id"].as_str().expect("id").to_string(), seq));
            after = seq;
        }
    }
}

fn assert_gap_free(stored: &[(String, i64)]) {
    let seqs: Vec<i64> = stored.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs, (1..=stored.len() as i64).collect::<Vec<_>>(), "seq is 1..N with no gap or duplicate");
}

on_both_backends!(fifty_concurrent_writers_get_gap_free_seqs);

fn fifty_concurrent_writers_get_gap_free_seqs(server: &TestServer) {
    const WRITERS: usize = 50;
    const EACH: usize = 20;
    let addr = server.http_addr();
    let s = Arc::new(setup(server));
    let barrier = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (s, barrier) = (s.clone(), barrier.clone());
            thread::spawn(move || {
                let mut c = Conn::open(addr).expect("connect");
                barrier.wait();
                (0..EACH)
                    .map(|i| {
                        let body = json!({"sender": format!("writer-{w}"), "text": format!("{w}/{i}")});
                        let (status, a) = call(&mut c, "POST", &activities_path(&s), &s.api_key, &[], &body);
                        assert_eq!(status, 201, "{a}");
                        (a["id"].as_str().expect("id").to_string(), a["seq"].as_i64().expect("seq"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acked: Vec<(String, i64)> = writers.into_iter().flat_map(|w| w.join().expect("writer")).collect();
    let stored = stored(addr, &s);
    assert_eq!(stored.len(), WRITERS * EACH);
    assert_gap_free(&stored);
    let stored: HashSet<_> = stored.into_iter().collect();
    for a in &acked {
        assert!(stored.contains(a), "acknowledged {a:?} is stored under the seq it was acknowledged with");
    }
    assert_eq!(acked.iter().map(|(_, seq)| seq).collect::<HashSet<_>>().len(), acked.len(), "each seq acked once");
}

on_both_backends!(one_idempotency_key_raced_from_ten_connections_writes_once);

fn one_idempotency_key_raced_from_ten_connections_writes_once(server: &TestServer) {
    const RACERS: usize = 10;
    let addr = server.http_addr();
    let s = Arc::new(setup(server));
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|r| {
            let (s, barrier) = (s.clone(), barrier.clone());
            thread::spawn(move || {
                let mut c = Conn::open(addr).expect("connect");
                barrier.wait();
                let body = json!({"sender": format!("racer-{r}"), "text": "once"});
                let headers = [("idempotency-key", "the-one-key")];
                call(&mut c, "POST", &activities_path(&s), &s.api_key, &headers, &body)
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = racers.into_iter().map(|r| r.join().expect("racer")).collect();
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "exactly one racer created it: {answers:?}");
    assert!(answers.iter().all(|(status, _)| matches!(status, 200 | 201)), "{answers:?}");
    let ids: HashSet<_> = answers.iter().map(|(_, a)| (a["id"].to_string(), a["seq"].to_string())).collect();
    assert_eq!(ids.len(), 1, "every answer carries the same id and seq: {answers:?}");
    assert_eq!(stored(addr, &s).len(), 1, "one activity stored");
}

on_both_backends!(mut acknowledged_writes_survive_kill_9);

/// Writers keep publishing until the server is killed with SIGKILL; after a
/// restart on the same data, everything acknowledged is there exactly once,
/// under the seq it was acknowledged with, and seq has no gap.
fn acknowledged_writes_survive_kill_9(server: &mut TestServer) {
    const WRITERS: usize = 8;
    /// Acknowledgements to see before the kill, so it lands mid-load.
    const BEFORE_KILL: usize = 300;
    let addr = server.http_addr();
    let s = Arc::new(setup(server));
    let acks = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (s, acks) = (s.clone(), acks.clone());
            thread::spawn(move || {
                let mut acked = Vec::new();
                let Ok(mut c) = Conn::open(addr) else { return acked };
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline {
                    let body = json!({"sender": format!("w{w}"), "text": format!("{}", acked.len())});
                    // The kill shows up as a broken connection: stop there.
                    match try_call(&mut c, "POST", &activities_path(&s), &s.api_key, &[], &body) {
                        Some((201, a)) => {
                            acked.push((a["id"].as_str().expect("id").to_string(), a["seq"].as_i64().expect("seq")));
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    let waited = Instant::now();
    while acks.load(Ordering::Relaxed) < BEFORE_KILL && waited.elapsed() < Duration::from_secs(20) {
        // Polling a counter, not guessing a duration: the kill waits for the load.
        thread::sleep(Duration::from_millis(5));
    }
    server.kill_and_restart();
    let acked: Vec<(String, i64)> = writers.into_iter().flat_map(|w| w.join().expect("writer")).collect();
    assert!(acked.len() >= BEFORE_KILL, "the load ran before the kill ({} acks)", acked.len());
    let stored = stored(server.http_addr(), &s);
    assert_gap_free(&stored);
    let by_id: BTreeMap<_, _> = stored.iter().cloned().collect();
    assert_eq!(by_id.len(), stored.len(), "no activity stored twice");
    for (id, seq) in &acked {
        assert_eq!(by_id.get(id), Some(seq), "acknowledged activity {id} (seq {seq}) survived kill -9");
    }
}
