//! HTTP/1.1 behaviour over raw TCP: keep-alive, pipelining, HEAD, limits.

use converger_e2e::{Conn, TestServer};

#[test]
fn pipelined_keep_alive_requests_over_one_connection_answer_in_order() {
    let server = TestServer::embedded();
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    // Three requests in one write, the last one split across two writes.
    conn.send(
        b"GET /health HTTP/1.1\r\nhost: t\r\n\r\nHEAD /health/live HTTP/1.1\r\nhost: t\r\n\r\nGET /nope HTTP/1.1\r\n",
    )
    .expect("send");
    conn.send(b"host: t\r\n\r\n").expect("send");
    let first = conn.read_reply(false).expect("reply 1");
    let second = conn.read_reply(true).expect("reply 2");
    let third = conn.read_reply(false).expect("reply 3");
    assert_eq!((first.status, second.status, third.status), (200, 200, 404));
    assert!(second.body.is_empty(), "HEAD has no body");
    assert_eq!(second.header("content-length"), first.header("content-length"));
    // The connection is still open for more.
    conn.send_request("GET", "/health/ready", &[], b"").expect("send");
    assert_eq!(conn.read_reply(false).expect("reply 4").status, 200);
    conn.send_request("GET", "/health", &[("connection", "close")], b"").expect("send");
    let last = conn.read_reply(false).expect("reply 5");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(conn.is_closed_by_server(), "Connection: close is honoured");
}

#[test]
fn hundreds_of_pipelined_requests_are_answered_in_order_in_bounded_batches() {
    let server = TestServer::embedded();
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    // More than one batch of answers (the server writes at most 64 at a time
    // and parses the rest of what it holds before reading again).
    let n = 300;
    let mut all = Vec::new();
    for i in 0..n {
        let path = if i % 3 == 2 { "/nope" } else { "/health" };
        all.extend_from_slice(format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes());
    }
    conn.send(&all).expect("send");
    for i in 0..n {
        let reply = conn.read_reply(false).expect("reply");
        assert_eq!(reply.status, if i % 3 == 2 { 404 } else { 200 }, "answer {i} in order");
    }
    conn.send_request("GET", "/health", &[], b"").expect("send");
    assert_eq!(conn.read_reply(false).expect("after").status, 200, "the connection goes on");
}

#[test]
fn oversized_body_is_refused_with_413_json() {
    let server = TestServer::embedded_with(&["--max-body-bytes", "1024"]);
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    conn.send_request("POST", "/health", &[], &[b'x'; 1025]).expect("send");
    let reply = conn.read_reply(false).expect("reply");
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["error"]["code"], "payload_too_large");
    // A body within the limit reaches routing (and is refused there: 405).
    let reply = server.request("POST", "/health", &[], &[b'x'; 1024]);
    assert_eq!(reply.status, 405);
}

#[test]
fn malformed_request_is_400_json_and_the_connection_closes() {
    let server = TestServer::embedded();
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    conn.send(b"GET /health HTTP/1.1\r\nbad header line\r\n\r\n").expect("send");
    let reply = conn.read_reply(false).expect("reply");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["code"], "bad_request");
    assert!(conn.is_closed_by_server());
}

#[test]
fn a_request_trickling_in_too_slowly_gets_408_and_the_connection_closes() {
    let server = TestServer::embedded_with(&["--http-request-timeout-ms", "300"]);
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    conn.send(b"GET /health HTTP/1.1\r\nhost: t\r\n").expect("send half a request");
    let reply = conn.read_reply(false).expect("a 408 before the timeout of the test client");
    assert_eq!(reply.status, 408);
    assert_eq!(reply.json()["error"]["code"], "request_timeout");
    assert!(conn.is_closed_by_server());
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::embedded_with(&["--http-idle-timeout-ms", "300"]);
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    conn.send_request("GET", "/health", &[], b"").expect("send");
    assert_eq!(conn.read_reply(false).expect("reply").status, 200);
    // Then silence: the server closes (reads end) instead of holding it open.
    assert!(conn.is_closed_by_server());
}

/// Writes `request` whole before reading anything (as Python's urllib and
/// many HTTP libraries do), then reads to the end: the answer's status line.
fn send_all_then_read(server: &TestServer, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.http_addr()).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    s.write_all(request).expect("the server reads what the client keeps sending");
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) => panic!("read after a full write: {e} (got {} bytes)", answer.len()),
    }
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_refusal_arrives_even_when_the_client_sends_everything_before_reading() {
    let server = TestServer::embedded();
    for (size, tries) in [(1024 * 1024 + 200, 10), (8 * 1024 * 1024, 3)] {
        let mut request =
            format!("POST /api/v1/channels HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n").into_bytes();
        request.resize(request.len() + size, b'x');
        for _ in 0..tries {
            assert_eq!(send_all_then_read(&server, &request), "HTTP/1.1 413 Payload Too Large", "{size} bytes");
        }
    }
    let mut big_head = b"GET /health HTTP/1.1\r\n".to_vec();
    for i in 0..2000 {
        big_head.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    big_head.extend_from_slice(b"\r\n");
    assert!(send_all_then_read(&server, &big_head).starts_with("HTTP/1.1 431"));
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(64 * 1024));
    assert!(send_all_then_read(&server, long.as_bytes()).starts_with("HTTP/1.1 414"));
}

#[test]
fn chunked_request_bodies_are_read_and_limits_are_configurable() {
    let server = TestServer::embedded_with(&["--http-max-target-bytes", "100", "--http-max-headers", "8"]);
    let tenant = converger_e2e::api::create_tenant(&server, "chunky");
    let auth = format!("Authorization: Bearer {}\r\n", tenant.api_key);
    let body = r#"{"name":"c","type":"websocket"}"#;
    let (a, b) = body.split_at(10);
    let chunked = format!(
        "POST /api/v1/channels HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    assert!(send_all_then_read(&server, chunked.as_bytes()).starts_with("HTTP/1.1 201"), "chunked create");
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100));
    assert!(send_all_then_read(&server, long.as_bytes()).starts_with("HTTP/1.1 414"));
    let many: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
    assert!(send_all_then_read(&server, format!("GET /health HTTP/1.1\r\n{many}\r\n").as_bytes())
        .starts_with("HTTP/1.1 431"));
    assert!(send_all_then_read(&server, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .starts_with("HTTP/1.1 200"));
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let server = TestServer::embedded();
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    conn.send(b"POST /health HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n").expect("head");
    let interim = conn.read_reply(false).expect("interim");
    assert_eq!(interim.status, 100, "the server asks for the body");
    conn.send(b"hello").expect("body");
    assert_eq!(conn.read_reply(false).expect("final").status, 405, "then answers the request");
    // A body over the limit is refused from its length, without a 100.
    let server = TestServer::embedded_with(&["--max-body-bytes", "16"]);
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    conn.send(b"POST /health HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\nexpect: 100-continue\r\n\r\n")
        .expect("head");
    assert_eq!(conn.read_reply(false).expect("refusal").status, 413);
}

#[test]
fn every_response_carries_a_date() {
    let server = TestServer::embedded();
    for path in ["/health", "/nope"] {
        let reply = server.request("GET", path, &[], b"");
        let date = reply.header("date").unwrap_or_else(|| panic!("{path}: no Date"));
        // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
        assert_eq!(date.len(), 29, "{date}");
        assert!(date.ends_with(" GMT") && date.as_bytes()[3] == b',', "{date}");
    }
}

#[test]
fn an_http_1_1_request_without_host_is_400_and_head_and_allow_behave() {
    let server = TestServer::embedded();
    let mut conn = Conn::open(server.http_addr()).expect("connect");
    conn.send(b"GET /health HTTP/1.1\r\n\r\n").expect("send");
    let reply = conn.read_reply(false).expect("reply");
    assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (400, Some("bad_request")));
    assert!(reply.text().contains("Host"), "{}", reply.text());
    // HEAD on GET routes: the GET's headers, no body.
    for path in ["/health", "/health/live", "/metrics", "/api/v1/openapi.json"] {
        let mut conn = Conn::open(server.http_addr()).expect("connect");
        conn.send_request("GET", path, &[], b"").expect("get");
        let get = conn.read_reply(false).expect("get");
        conn.send_request("HEAD", path, &[], b"").expect("head");
        let head = conn.read_reply(true).expect("head");
        assert_eq!(head.status, get.status, "{path}");
        assert_eq!(head.header("content-type"), get.header("content-type"), "{path}");
        assert!(head.body.is_empty(), "{path}");
    }
    let reply = server.request("DELETE", "/health", &[], b"");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
}
