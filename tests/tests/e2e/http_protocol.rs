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
