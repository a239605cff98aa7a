//! Parser tests: whole requests, a request split at every byte, pipelining,
//! and every refusal (400, 411, 413, 431).

use bytes::BytesMut;

use super::*;

const POST: &[u8] = b"POST /api/v1/things?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Id: 7\r\n\r\nhello";

fn limits() -> Limits {
    Limits { max_head_bytes: 1024, max_body_bytes: 64, ..Limits::default() }
}

fn parse_all(bytes: &[u8]) -> Result<(Vec<Request>, usize), ParseError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(req) = parse(&mut buf, &limits())? {
        out.push(req);
    }
    Ok((out, buf.len()))
}

#[test]
fn parses_a_whole_request() {
    let (reqs, left) = parse_all(POST).expect("parse");
    assert_eq!((reqs.len(), left), (1, 0));
    let r = &reqs[0];
    assert_eq!(r.method, Method::Post);
    assert_eq!(r.path, "/api/v1/things");
    assert_eq!(r.query.as_deref(), Some("x=1"));
    assert_eq!(r.minor_version, 1);
    assert_eq!(r.header_str("x-id"), Some("7"));
    assert_eq!(&r.body[..], b"hello");
    assert!(!r.wants_close());
}

#[test]
fn a_request_split_at_every_byte_parses_the_same() {
    for split in 0..=POST.len() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&POST[..split]);
        let first = parse(&mut buf, &limits()).expect("no error on a prefix");
        if split < POST.len() {
            assert!(first.is_none(), "complete at {split}?");
            assert_eq!(buf.len(), split, "an incomplete parse leaves the buffer alone");
            buf.extend_from_slice(&POST[split..]);
        }
        let req = match first {
            Some(r) => r,
            None => parse(&mut buf, &limits()).expect("parse").expect("complete"),
        };
        assert_eq!(&req.body[..], b"hello", "split at {split}");
        assert_eq!(req.path, "/api/v1/things");
        assert!(buf.is_empty());
    }
}

#[test]
fn byte_by_byte_feeding_yields_each_pipelined_request_once() {
    let wire = [POST, b"GET /health HTTP/1.1\r\n\r\n", POST].concat();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in &wire {
        buf.extend_from_slice(&[*b]);
        while let Some(req) = parse(&mut buf, &limits()).expect("parse") {
            got.push(req.path);
        }
    }
    assert_eq!(got, ["/api/v1/things", "/health", "/api/v1/things"]);
}

#[test]
fn pipelined_requests_in_one_buffer_all_parse_in_order() {
    let wire = b"GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\nGET /d";
    let (reqs, left) = parse_all(wire).expect("parse");
    let paths: Vec<_> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/a", "/b", "/c"]);
    assert_eq!(reqs[1].method, Method::Head);
    assert!(reqs[2].wants_close());
    assert_eq!(left, 6, "the partial fourth request stays buffered");
}

#[test]
fn http_1_0_closes_unless_keep_alive() {
    let (reqs, _) =
        parse_all(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").expect("parse");
    assert!(reqs[0].wants_close());
    assert!(!reqs[1].wants_close());
}

#[test]
fn malformed_requests_are_400() {
    for bad in [&b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"[..], b"\x00\x01\x02\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"] {
        let err = parse_all(bad).expect_err("malformed");
        assert_eq!(err.status(), 400, "{err}");
    }
    let err = parse_all(b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n").expect_err("bad length");
    assert_eq!(err.status(), 400);
    let err = parse_all(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").expect_err("conflict");
    assert_eq!(err.status(), 400);
    let err = parse_all(b"GET nope HTTP/1.1\r\n\r\n").expect_err("relative target");
    assert_eq!(err.status(), 400);
}

#[test]
fn oversized_body_is_413_before_it_arrives() {
    let err = parse_all(b"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n").expect_err("too large");
    assert_eq!(err, ParseError::BodyTooLarge { length: 65, limit: 64 });
    assert_eq!((err.status(), err.code()), (413, "payload_too_large"));
}

#[test]
fn oversized_or_too_many_headers_are_431() {
    let long = [&b"GET / HTTP/1.1\r\nX: "[..], &[b'a'; 2000]].concat();
    assert_eq!(parse_all(&long).expect_err("long head").status(), 431, "even before the head ends");
    let many: Vec<u8> = (0..=MAX_HEADERS).flat_map(|i| format!("H{i}: v\r\n").into_bytes()).collect();
    let req = [&b"GET / HTTP/1.1\r\n"[..], &many, b"\r\n"].concat();
    let err = Limits { max_head_bytes: 1 << 20, ..limits() };
    let mut buf = BytesMut::from(&req[..]);
    assert_eq!(parse(&mut buf, &err).expect_err("many").status(), 431);
}

#[test]
fn transfer_encoding_is_refused() {
    let err = parse_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").expect_err("chunked");
    assert_eq!(err.status(), 411);
    let both = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
    assert_eq!(parse_all(both).expect_err("smuggling").status(), 400);
}
