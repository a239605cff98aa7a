//! A full disk under the embedded store (docs/reliability.md "Disk full").
//! The server's data directory is a small tmpfs; after some acknowledged
//! writes a ballast file fills it to ENOSPC. Then every transport refuses
//! writes with `storage_full` (REST 503 in the one error shape, a Phoenix
//! error reply, a binary Error 5007), reads go on, and a server started on the
//! full file system exits with one clear line. Once the ballast is gone,
//! writes succeed again without a restart; every conversation is gap-free,
//! every acknowledged activity is stored once under its acknowledged seq, and
//! an idempotency key refused while full writes once. All of it holds again
//! after `kill -9` and a restart on the same directory.
//!
//! Needs root (to mount); otherwise it skips with a notice, unless
//! `CONVERGER_REQUIRE_MOUNT=1` (scripts/test sets it when run as root).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use converger_e2e::api::{assert_error, Fixture};
use converger_e2e::binary::{message, uuid_bytes, BinClient};
use converger_e2e::phoenix::{self, join, socket, topic, Ws};
use converger_e2e::skip::skip;
use converger_e2e::tmpfs::{fill, Tmpfs};
use converger_e2e::TestServer;
use converger_protocol::{ErrorCode, Frame, Publish};
use serde_json::{json, Value};

/// Room for the server's database and WAL with some to spare: the ballast takes the rest.
const TMPFS_MIB: u32 = 48;
/// Big texts need new pages, so a full file system shows at once (under the 64 KiB limit).
const BIG: usize = 60 * 1024;
/// Writes tried before the refusal must have come (SQLite may first fill space it already holds).
const ATTEMPTS: usize = 200;

static BANNER: Once = Once::new();

/// The tmpfs (unmounted when dropped, also when the test fails), or a skip
/// notice when it cannot be mounted.
fn mount(mib: u32) -> Option<Tmpfs> {
    match Tmpfs::mount(mib) {
        Ok(tmpfs) => Some(tmpfs),
        Err(why) => {
            skip(
                "CONVERGER_REQUIRE_MOUNT",
                &format!("a tmpfs cannot be mounted: {why}"),
                &format!("storage_full skipped: cannot mount a tmpfs ({why}); run as root"),
                "note: the disk-full test needs root to mount a tmpfs; it was skipped\n",
                &BANNER,
            );
            None
        }
    }
}

/// Fills the file system holding `dir` with one file, to ENOSPC.
fn ballast_in(dir: &Path) -> PathBuf {
    let path = dir.join("ballast");
    fill(&path).expect("filling the tmpfs");
    path
}

/// What the server acknowledged: activity id → (conversation id, seq).
#[derive(Default)]
struct Acked(BTreeMap<String, (String, i64)>);

impl Acked {
    fn add(&mut self, conversation: &str, a: &Value) {
        let id = a["id"].as_str().expect("id").to_string();
        let seq = a["seq"].as_i64().expect("seq");
        assert!(self.0.insert(id, (conversation.to_string(), seq)).is_none(), "acknowledged twice: {a}");
    }
}

fn text(tag: &str) -> String {
    format!("{tag}:{}", "x".repeat(BIG))
}

/// A REST publish; `Ok(activity)` or `Err(error object)` of a 503.
fn rest(server: &TestServer, f: &Fixture, body: &Value, key: Option<&str>) -> Result<Value, Value> {
    let headers: Vec<(&str, &str)> = key.map(|k| vec![("idempotency-key", k)]).unwrap_or_default();
    let r = f.client(server).send("POST", &f.activities_path(), &headers, Some(body));
    match r.status {
        200 | 201 => Ok(r.json()),
        _ => {
            let e = assert_error(&r, 503, "storage_full");
            assert!(r.header("retry-after").is_some(), "503 carries Retry-After");
            Err(e)
        }
    }
}

/// A Phoenix `activity:create`; the reply's payload.
fn push(ws: &mut Ws, t: &str, r: usize, text: &str) -> Value {
    let r = r.to_string();
    phoenix::send(ws, json!(["1", r, t, "activity:create", {"text": text}]));
    loop {
        let m = phoenix::until(ws, "phx_reply");
        if m[1] == r.as_str() {
            return m[4].clone();
        }
    }
}

/// A binary Publish; `Ok((id, seq))` or `Err(code)`.
fn publish(c: &mut BinClient, f: &Fixture, request_id: u32, text: &str) -> Result<(String, i64), Option<ErrorCode>> {
    let activity = message(uuid_bytes(f.conversation_id()), "bot", text);
    c.send(Publish { request_id, activity });
    loop {
        match c.frame() {
            Frame::PublishAck(a) if a.request_id == request_id => {
                let id = a.written.activity_id.iter().map(|b| format!("{b:02x}")).collect::<String>();
                let id = format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..]);
                return Ok((id, a.written.seq as i64));
            }
            Frame::Error(e) if e.request_id == request_id => {
                assert!(!e.close, "a full disk does not close the connection: {e:?}");
                return Err(e.error_code());
            }
            _ => {}
        }
    }
}

/// Every conversation gap-free (seqs 1..n) and every acknowledged activity in
/// it once, under its acknowledged seq.
fn check_stored(server: &TestServer, fixtures: &[&Fixture], acked: &Acked) {
    for f in fixtures {
        let all = f.all_activities(server);
        let seqs: Vec<i64> = all.iter().map(|a| a["seq"].as_i64().expect("seq")).collect();
        assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>(), "gap-free");
        let stored: BTreeMap<&str, i64> =
            all.iter().map(|a| (a["id"].as_str().expect("id"), a["seq"].as_i64().expect("seq"))).collect();
        assert_eq!(stored.len(), all.len(), "each activity once");
        for (id, (conv, seq)) in &acked.0 {
            if conv == f.conversation_id() {
                assert_eq!(stored.get(id.as_str()), Some(seq), "acknowledged {id} is stored under seq {seq}");
            }
        }
    }
}

#[test]
fn a_full_disk_refuses_writes_with_storage_full_and_loses_nothing_acknowledged() {
    let Some(tmpfs) = mount(TMPFS_MIB) else { return };
    let dir = tmpfs.path().join("server");
    let mut server = TestServer::embedded_in(&dir, &[]).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (Fixture::new(&server, "full-a"), Fixture::new(&server, "full-b"));
    let mut acked = Acked::default();
    for i in 0..5 {
        for f in [&a, &b] {
            let body = json!({"text": format!("before {i}"), "sender": "u"});
            acked.add(f.conversation_id(), &rest(&server, f, &body, None).expect("stored before the disk fills"));
        }
    }
    let mut ws = socket(&server, &a, "alice");
    let t = topic(&a);
    assert_eq!(join(&mut ws, &t, json!({}))[4]["status"], "ok");
    let (mut bin, _) = BinClient::with_api_key(server.binary_addr(), &b.tenant.api_key);

    let ballast = ballast_in(tmpfs.path());

    // REST: big writes until the refusal (what SQLite still holds may take a few first).
    let key = "written-once";
    let refused = (0..ATTEMPTS).find_map(|i| {
        let f = if i % 2 == 0 { &a } else { &b };
        match rest(&server, f, &json!({"text": text("rest"), "sender": "u"}), Some(&format!("{key}-{i}"))) {
            Ok(stored) => {
                acked.add(f.conversation_id(), &stored);
                None
            }
            Err(e) => Some((i, e)),
        }
    });
    let (i, error) = refused.expect("a full disk refuses a REST write");
    let message = error["message"].as_str().expect("message");
    assert!(!message.contains('/') && !message.contains("SQL"), "no internals: {message}");
    let (refused_conv, refused_key) = (if i % 2 == 0 { &a } else { &b }, format!("{key}-{i}"));

    // Phoenix: an error reply with the same code.
    let reply = (0..ATTEMPTS)
        .find_map(|r| {
            let reply = push(&mut ws, &t, r + 10, &text("phoenix"));
            if reply["status"] == "ok" {
                acked.add(a.conversation_id(), &reply["response"]);
                return None;
            }
            Some(reply)
        })
        .expect("a full disk refuses a Phoenix push");
    assert_eq!((reply["status"].as_str(), reply["response"]["code"].as_str()), (Some("error"), Some("storage_full")));

    // Binary: Error 5007 for the publish, the connection stays.
    let code = (0..ATTEMPTS as u32)
        .find_map(|r| match publish(&mut bin, &b, r + 1, &text("binary")) {
            Ok((id, seq)) => {
                acked.0.insert(id, (b.conversation_id().to_string(), seq));
                None
            }
            Err(code) => Some(code),
        })
        .expect("a full disk refuses a binary publish");
    assert_eq!(code, Some(ErrorCode::StorageFull));
    assert_eq!(ErrorCode::StorageFull.code(), 5007);

    // Reads go on (and readiness: the database answers), and the refusals are counted.
    check_stored(&server, &[&a, &b], &acked);
    assert_eq!(server.get("/health/ready").status, 200, "ready while full");
    let metrics = server.get("/metrics").text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("converger_batches_failed_total{reason=\"storage_full\"}") && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(server.stderr().contains("storage is full"), "one warning when it fills:\n{}", server.stderr());

    // A server started on the full file system says so in one line and exits.
    let second = TestServer::embedded_in(&tmpfs.path().join("second"), &[]);
    let err = second.err().expect("no server starts on a full disk");
    assert!(err.status.is_some_and(|s| !s.success()), "{err}");
    assert!(!err.stderr.contains("panicked"), "{err}");
    let line = err.stderr.lines().find(|l| l.starts_with("converger: error:")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("full") || line.contains("No space left"), "{line}");

    // Space returns: writes succeed again, without a restart.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    std::fs::remove_dir_all(tmpfs.path().join("second")).ok();
    let body = json!({"text": "retried", "sender": "u"});
    let first = rest(&server, refused_conv, &body, Some(&refused_key)).expect("stored once space returns");
    let again = rest(&server, refused_conv, &body, Some(&refused_key)).expect("replayed");
    assert_eq!((&again["id"], &again["seq"]), (&first["id"], &first["seq"]), "the key writes once");
    acked.add(refused_conv.conversation_id(), &first);
    let reply = push(&mut ws, &t, 1000, "phoenix after");
    assert_eq!(reply["status"], "ok", "{reply}");
    acked.add(a.conversation_id(), &reply["response"]);
    let (id, seq) = publish(&mut bin, &b, 1000, "binary after").expect("binary publish after");
    acked.0.insert(id, (b.conversation_id().to_string(), seq));
    check_stored(&server, &[&a, &b], &acked);
    assert!(
        server.wait_for_log("storage has space again", 1, std::time::Duration::from_secs(5)),
        "{}",
        server.stderr()
    );

    // And after kill -9 and a restart on the same directory.
    drop((ws, bin));
    server.kill_and_restart();
    check_stored(&server, &[&a, &b], &acked);
    let after = rest(&server, &a, &json!({"text": "after restart", "sender": "u"}), None).expect("stored");
    acked.add(a.conversation_id(), &after);
    check_stored(&server, &[&a, &b], &acked);
    let keyed = refused_conv.all_activities(&server);
    assert_eq!(keyed.iter().filter(|x| x["idempotency_key"] == refused_key.as_str()).count(), 1);
    drop(server);
}
