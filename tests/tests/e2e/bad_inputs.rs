//! The bad-input catalogue (`tests/bad_inputs/*.json`) against one real
//! server: every case sends something a client should not (a malformed body,
//! header, parameter, id or cursor; a broken Phoenix message or WebSocket
//! frame; a truncated, oversized or mis-versioned binary frame; a forged,
//! stale or malformed webhook) and asserts the documented answer: HTTP status
//! and error code, Phoenix reply or close code, binary Error code. Every
//! answer must be the documented error shape and carry no internal text, and
//! the server must still be ready after each case (and still take a fresh
//! Phoenix join and binary handshake every few socket cases).
//! The cases' format and placeholders are in [`cases`]. Every mismatch is
//! collected, so one run lists them all.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use converger_e2e::api::{expect, Client};
use converger_e2e::binary::{BinClient, Next};
use converger_e2e::http::{Conn, Reply};
use converger_e2e::phoenix;
use converger_e2e::TestServer;
use converger_protocol::{Auth, Frame, Ping};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tungstenite::Message;

mod cases;
use cases::{
    expand, hex, load, unhex, BinaryCase, Ctx, HttpCase, HttpExpect, Sign, SocketCase, SocketExpect, META_APP_SECRET,
};

/// Text no answer may carry: SQL, source paths, panics, Rust type names.
const INTERNAL: [&str; 14] = [
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "relation \"",
    "sqlx",
    "/src/",
    ".rs:",
    "panicked",
    "unwrap()",
    "Utf8Error",
    "serde_json",
    "tokio",
    "monoio",
    "RUST_BACKTRACE",
];
/// Socket cases between two checks that fresh connections still work.
const SOCKET_CHECK_EVERY: usize = 8;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The internal text `text` carries, if any.
fn internal_text(text: &str) -> Option<&'static str> {
    INTERNAL.iter().copied().find(|needle| text.contains(needle))
}

/// Mismatches of one answer to its case, as sentences.
fn check_http(reply: &Reply, want: &HttpExpect) -> Vec<String> {
    let mut wrong = Vec::new();
    if reply.status != want.status {
        wrong.push(format!("status {} (want {}): {}", reply.status, want.status, reply.text()));
    }
    if let Some(needle) = internal_text(&reply.text()) {
        wrong.push(format!("internal text `{needle}`: {}", reply.text()));
    }
    if reply.status < 400 {
        return wrong;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&reply.body) else {
        wrong.push(format!("error body is not JSON: {}", reply.text()));
        return wrong;
    };
    let error = &body["error"];
    let shaped = body.as_object().is_some_and(|o| o.len() == 1)
        && error["code"].is_string()
        && error["message"].as_str().is_some_and(|m| !m.is_empty());
    if !shaped {
        wrong.push(format!("not the error shape: {body}"));
    }
    // docs/api.md "Errors": `field` appears on every `validation_failed`.
    if error["code"] == "validation_failed" && !error["field"].is_string() {
        wrong.push(format!("validation_failed without its field: {body}"));
    }
    if let Some(code) = &want.code {
        if error["code"] != code.as_str() {
            wrong.push(format!("code {} (want {code}): {body}", error["code"]));
        }
    }
    if let Some(field) = &want.field {
        if error["field"] != field.as_str() {
            wrong.push(format!("field {} (want {field}): {body}", error["field"]));
        }
    }
    wrong
}

fn run_http(server: &TestServer, ctx: &Ctx, case: &HttpCase) -> Vec<String> {
    let text = |s: &str| expand(s, &|n| ctx.lookup(n));
    let mut last = None;
    for _ in 0..case.times {
        let reply = match &case.raw {
            Some(raw) => Conn::open(server.http_addr()).and_then(|mut c| {
                c.send(&text(raw))?;
                c.read_reply(raw.starts_with("HEAD "))
            }),
            None => {
                let body = case.body.as_deref().map(text).unwrap_or_default();
                let mut headers: Vec<(String, String)> = Vec::new();
                let credential = match case.auth.as_str() {
                    "none" => None,
                    "admin" => Some(converger_e2e::server::ADMIN_TOKEN.to_string()),
                    "channel_secret" => Some(ctx.fixture.channel_secret().to_string()),
                    "token" => Some(ctx.token.clone()),
                    _ => Some(ctx.fixture.tenant.api_key.clone()),
                };
                if let Some(c) = credential {
                    headers.push(("authorization".into(), format!("Bearer {c}")));
                }
                if case.body.is_some() && !case.content_type.is_empty() {
                    headers.push(("content-type".into(), case.content_type.clone()));
                }
                if let Some(sign) = &case.sign {
                    headers.extend(signature(ctx, sign, &body));
                }
                for (n, v) in &case.headers {
                    let value = String::from_utf8_lossy(&text(v)).into_owned();
                    headers.push((n.clone(), value));
                }
                let path = String::from_utf8_lossy(&text(&case.path)).into_owned();
                let refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                converger_e2e::http::request(server.http_addr(), &case.method, &path, &refs, &body)
            }
        };
        last = Some(reply);
    }
    match last {
        Some(Ok(reply)) => check_http(&reply, &case.expect),
        Some(Err(e)) => vec![format!("no answer: {e}")],
        None => vec!["times is 0".into()],
    }
}

/// The headers that sign `body` per `sign`.
fn signature(ctx: &Ctx, sign: &Sign, body: &[u8]) -> Vec<(String, String)> {
    if sign.scheme == "meta" {
        let key: &[u8] = if sign.wrong_key { b"not the app secret" } else { META_APP_SECRET.as_bytes() };
        let header = sign.signature.clone().unwrap_or_else(|| format!("sha256={}", hex(&hmac(key, body))));
        return vec![("x-hub-signature-256".into(), header)];
    }
    let secret = ctx.webhook["secret"].as_str().expect("secret");
    let key = match sign.wrong_key {
        true => hmac(b"not the secret", b"converger-webhook-signing-v1"),
        false => hmac(secret.as_bytes(), b"converger-webhook-signing-v1"),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    let ts = sign.ts.clone().unwrap_or_else(|| (now + sign.ts_offset).to_string());
    let mut signed = format!("{}.{ts}.", sign.id).into_bytes();
    signed.extend_from_slice(body);
    let computed = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(hmac(&key, &signed)));
    vec![
        ("webhook-id".into(), sign.id.clone()),
        ("webhook-timestamp".into(), ts),
        ("webhook-signature".into(), sign.signature.clone().unwrap_or(computed)),
    ]
}

/// One WebSocket frame from the client, masked with a zero key (the payload
/// goes as it is).
fn ws_frame(fin: bool, rsv: u8, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let mask = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask | n as u8),
        n if n <= 0xffff => {
            out.push(mask | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&[0; 4]);
    }
    out.extend_from_slice(payload);
    out
}

fn run_socket(server: &TestServer, ctx: &Ctx, case: &SocketCase) -> Vec<String> {
    let text = |s: &str| expand(s, &|n| ctx.lookup(n));
    let query = String::from_utf8_lossy(&text(&case.query)).into_owned();
    let stream = TcpStream::connect(server.http_addr()).expect("tcp");
    stream.set_read_timeout(Some(phoenix::READ_TIMEOUT)).expect("timeout");
    let url = format!("ws://{}/socket/{}?{query}", server.http_addr(), case.socket);
    let mut ws = match tungstenite::client(url, stream) {
        Ok((ws, _)) => ws,
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            let Some(want) = &case.expect.handshake else {
                return vec![format!("upgrade refused: {}", response.status())];
            };
            let reply = Reply {
                status: response.status().as_u16(),
                headers: Vec::new(),
                body: response.body().clone().unwrap_or_default(),
            };
            return check_http(&reply, want);
        }
        Err(e) => return vec![format!("upgrade failed: {e}")],
    };
    if case.expect.handshake.is_some() {
        return vec!["the upgrade was accepted".into()];
    }
    if case.join {
        let reply = phoenix::join(&mut ws, &phoenix::topic(&ctx.fixture), json!({}));
        if reply[4]["status"] != "ok" {
            return vec![format!("join refused: {reply}")];
        }
    }
    for frame in &case.frames {
        let sent = match (&frame.text, frame.opcode) {
            (Some(t), _) => {
                let t = String::from_utf8(text(t)).expect("a text frame's case is UTF-8: use `opcode` for bytes");
                ws.send(Message::text(t)).map_err(|e| e.to_string())
            }
            (None, Some(op)) => {
                let bytes = ws_frame(frame.fin, frame.rsv, op, frame.masked, &text(&frame.payload));
                ws.get_mut().write_all(&bytes).map_err(|e| e.to_string())
            }
            (None, None) => Err("a frame needs `text` or `opcode`".into()),
        };
        if let Err(e) = sent {
            // The server may close before every frame is written: the read below says how.
            if case.expect.close.is_none() {
                return vec![format!("send: {e}")];
            }
        }
    }
    read_socket_answer(&mut ws, &case.expect)
}

fn read_socket_answer(ws: &mut phoenix::Ws, want: &SocketExpect) -> Vec<String> {
    // Bounded: a few messages (presence, backlog) may come before the answer.
    for _ in 0..50 {
        match ws.read() {
            Ok(Message::Text(t)) => {
                if let Some(needle) = internal_text(t.as_str()) {
                    return vec![format!("internal text `{needle}`: {t}")];
                }
                let m: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if m[3] != "phx_reply" {
                    continue;
                }
                let Some(status) = &want.reply else {
                    return vec![format!("a reply where a close was expected: {m}")];
                };
                let response = &m[4]["response"];
                let mut wrong = Vec::new();
                if m[4]["status"] == "error" && response["reason"].as_str().is_none_or(str::is_empty) {
                    wrong.push(format!("an error reply without a reason: {m}"));
                }
                if m[4]["status"] != status.as_str() {
                    wrong.push(format!("reply status (want {status}): {m}"));
                }
                if want.reason.as_ref().is_some_and(|r| response["reason"] != r.as_str()) {
                    wrong.push(format!("reason (want {:?}): {m}", want.reason));
                }
                if want.code.as_ref().is_some_and(|c| response["code"] != c.as_str()) {
                    wrong.push(format!("code (want {:?}): {m}", want.code));
                }
                return wrong;
            }
            Ok(Message::Close(frame)) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                let reason = frame.as_ref().map(|f| f.reason.to_string()).unwrap_or_default();
                if let Some(needle) = internal_text(&reason) {
                    return vec![format!("internal text `{needle}` in the close reason: {reason}")];
                }
                return match want.close {
                    Some(c) if code == Some(c) => Vec::new(),
                    _ => vec![format!("closed {code:?} {reason:?} (want {:?} / reply {:?})", want.close, want.reply)],
                };
            }
            Ok(_) => continue,
            Err(e) => return vec![format!("read: {e} (want close {:?} / reply {:?})", want.close, want.reply)],
        }
    }
    vec!["no answer within 50 messages".into()]
}

fn run_binary(server: &TestServer, ctx: &Ctx, case: &BinaryCase) -> Vec<String> {
    let mut client = match case.websocket {
        true => match BinClient::websocket(server.http_addr(), None) {
            Ok(c) => c,
            Err(e) => return vec![format!("upgrade: {e}")],
        },
        false => BinClient::tcp(server.binary_addr()),
    };
    let mut version = 1;
    if case.hello != "none" {
        let auth = match case.hello.as_str() {
            "token" => Auth::Token(ctx.token.clone()),
            _ => Auth::ApiKey(ctx.fixture.tenant.api_key.clone()),
        };
        match client.hello_versions(1, case.version, auth) {
            Ok(w) => version = w.version,
            Err(f) => return vec![format!("hello refused: {f:?}")],
        }
    }
    for frame in &case.frames {
        let hex_text = |s: &str| unhex(&String::from_utf8(expand(s, &|n| ctx.lookup_hex(n))).expect("hex is ASCII"));
        let bytes = match &frame.hex {
            Some(h) => hex_text(h),
            None => {
                let body = hex_text(&frame.body);
                let mut out = frame.length.unwrap_or(4 + body.len() as u32).to_le_bytes().to_vec();
                out.push(frame.version.unwrap_or(version));
                out.push(frame.kind);
                out.extend_from_slice(&frame.flags.to_le_bytes());
                out.extend_from_slice(&body);
                out
            }
        };
        client.send_raw(&bytes);
    }
    let want = converger_protocol::ErrorCode::from_name(&case.expect.error).expect("a catalogue name");
    // Bounded: an Ephemeral or Deliver may come before the answer.
    for _ in 0..50 {
        match client.read_next() {
            Next::Frame(Frame::Error(e)) => {
                let mut wrong = Vec::new();
                if e.error_code() != Some(want) || e.close != case.expect.close {
                    wrong.push(format!(
                        "error {:?} close {} (want {} close {})",
                        e,
                        e.close,
                        want.name(),
                        case.expect.close
                    ));
                }
                if e.message.is_empty() {
                    wrong.push(format!("an Error without a message: {e:?}"));
                }
                if let Some(needle) = internal_text(&e.message) {
                    wrong.push(format!("internal text `{needle}`: {}", e.message));
                }
                if e.close && !matches!(client.read_next(), Next::Closed) {
                    wrong.push("a frame after the closing error".into());
                }
                return wrong;
            }
            Next::Frame(_) => continue,
            Next::Closed => return vec![format!("closed without an Error (want {})", want.name())],
        }
    }
    vec!["no Error within 50 frames".into()]
}

/// Fresh connections still work: a Phoenix join and a binary handshake with a Ping.
fn sockets_work(server: &TestServer, ctx: &Ctx) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut ws = phoenix::with_token(server, &ctx.token);
    let reply = phoenix::join(&mut ws, &phoenix::topic(&ctx.fixture), json!({}));
    if reply[4]["status"] != "ok" {
        wrong.push(format!("a fresh join: {reply}"));
    }
    let (mut bin, _) = BinClient::with_api_key(server.binary_addr(), &ctx.fixture.tenant.api_key);
    bin.send(Ping { payload: 7 });
    if !matches!(bin.frame(), Frame::Pong(p) if p.payload == 7) {
        wrong.push("a fresh binary connection does not answer Ping".into());
    }
    wrong
}

fn ready(server: &TestServer) -> bool {
    converger_e2e::http::request(server.http_addr(), "GET", "/health/ready", &[], b"").is_ok_and(|r| r.status == 200)
}

#[test]
fn every_bad_input_gets_its_documented_answer_and_the_server_stays_healthy() {
    let server = TestServer::embedded();
    let ctx = Ctx::new(&server);
    let rest: Vec<HttpCase> = load("rest.json");
    let inbound: Vec<HttpCase> = load("inbound.json");
    let sockets: Vec<SocketCase> = load("phoenix.json");
    let binary: Vec<BinaryCase> = load("binary.json");
    let mut failures: Vec<String> = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    let mut slow: Vec<(Duration, String)> = Vec::new();
    let mut record = |surface: &str, name: &str, started: Instant, wrong: Vec<String>, failures: &mut Vec<String>| {
        slow.push((started.elapsed(), format!("{surface}/{name}")));
        assert!(names.insert(format!("{surface}/{name}")), "case names are unique: {surface}/{name}");
        failures.extend(wrong.into_iter().map(|w| format!("{surface}/{name}: {w}")));
        if !ready(&server) {
            panic!("{surface}/{name}: the server is not ready after it\n{}", server.stderr());
        }
    };
    for case in &rest {
        let started = Instant::now();
        record("rest", &case.name, started, run_http(&server, &ctx, case), &mut failures);
    }
    for case in &inbound {
        let started = Instant::now();
        record("inbound", &case.name, started, run_http(&server, &ctx, case), &mut failures);
    }
    for (i, case) in sockets.iter().enumerate() {
        let started = Instant::now();
        record("phoenix", &case.name, started, run_socket(&server, &ctx, case), &mut failures);
        if i % SOCKET_CHECK_EVERY == SOCKET_CHECK_EVERY - 1 {
            failures
                .extend(sockets_work(&server, &ctx).into_iter().map(|w| format!("after phoenix/{}: {w}", case.name)));
        }
    }
    for (i, case) in binary.iter().enumerate() {
        let started = Instant::now();
        record("binary", &case.name, started, run_binary(&server, &ctx, case), &mut failures);
        if i % SOCKET_CHECK_EVERY == SOCKET_CHECK_EVERY - 1 {
            failures
                .extend(sockets_work(&server, &ctx).into_iter().map(|w| format!("after binary/{}: {w}", case.name)));
        }
    }
    failures.extend(sockets_work(&server, &ctx));
    let total = rest.len() + inbound.len() + sockets.len() + binary.len();
    println!(
        "bad inputs: {total} cases: rest {}, inbound {}, phoenix {}, binary {}; {} mismatches",
        rest.len(),
        inbound.len(),
        sockets.len(),
        binary.len(),
        failures.len()
    );
    slow.sort();
    let slowest: Vec<String> = slow.iter().rev().take(5).map(|(d, n)| format!("{n} {d:.1?}")).collect();
    println!("slowest: {}", slowest.join(", "));
    assert!(total >= 150, "the catalogue holds at least 150 cases, not {total}");
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    // No bad input wrote anything: not to the fixture's conversation, not through any inbound channel.
    let api = Client::bearer(&server, &ctx.fixture.tenant.api_key);
    assert_eq!(expect(&api.get(&ctx.fixture.activities_path()), 200)["data"], json!([]));
    for channel in [&ctx.webhook, &ctx.meta, &ctx.infobip] {
        let list = expect(&api.get(&format!("/api/v1/conversations?channel_id={}", Ctx::id(channel, "id"))), 200);
        assert_eq!(list["data"], json!([]), "{}", channel["type"]);
    }
}
