//! Parser tests: whole requests, a request split at every byte, pipelining,
//! chunked bodies split anywhere, and every refusal (400, 413, 414, 431, 501).

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
    let wire = [POST, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", POST].concat();
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
    let wire = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /d";
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
    for bad in
        [&b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"[..], b"\x00\x01\x02\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"]
    {
        let err = parse_all(bad).expect_err("malformed");
        assert_eq!(err.status(), 400, "{err}");
    }
    let err = parse_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n").expect_err("bad length");
    assert_eq!(err.status(), 400);
    let err = parse_all(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        .expect_err("conflict");
    assert_eq!(err.status(), 400);
    let err = parse_all(b"GET nope HTTP/1.1\r\nHost: x\r\n\r\n").expect_err("relative target");
    assert_eq!(err.status(), 400);
}

#[test]
fn oversized_body_is_413_before_it_arrives() {
    let err = parse_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n").expect_err("too large");
    assert_eq!(err, ParseError::BodyTooLarge { length: 65, limit: 64 });
    assert_eq!((err.status(), err.code()), (413, "payload_too_large"));
}

#[test]
fn oversized_or_too_many_headers_are_431() {
    let long = [&b"GET / HTTP/1.1\r\nHost: x\r\nX: "[..], &[b'a'; 2000]].concat();
    assert_eq!(parse_all(&long).expect_err("long head").status(), 431, "even before the head ends");
    let many: Vec<u8> = (0..=limits().max_headers).flat_map(|i| format!("H{i}: v\r\n").into_bytes()).collect();
    let req = [&b"GET / HTTP/1.1\r\nHost: x\r\n"[..], &many, b"\r\n"].concat();
    let err = Limits { max_head_bytes: 1 << 20, ..limits() };
    let mut buf = BytesMut::from(&req[..]);
    assert_eq!(parse(&mut buf, &err).expect_err("many").status(), 431);
}

const CHUNKED: &[u8] =
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";

#[test]
fn chunked_bodies_are_decoded_even_when_split_at_every_byte() {
    for split in 0..=CHUNKED.len() {
        let mut buf = BytesMut::from(&CHUNKED[..split]);
        let first = parse(&mut buf, &limits()).expect("no error on a prefix");
        if split < CHUNKED.len() {
            assert!(first.is_none(), "complete at {split}?");
            assert_eq!(buf.len(), split);
            buf.extend_from_slice(&CHUNKED[split..]);
        }
        let req = match first {
            Some(r) => r,
            None => parse(&mut buf, &limits()).expect("parse").expect("complete"),
        };
        assert_eq!(&req.body[..], b"hello, world", "split at {split}");
        assert!(buf.is_empty());
    }
    // The next pipelined request follows the chunked one.
    let wire = [CHUNKED, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
    let (reqs, left) = parse_all(&wire).expect("parse");
    assert_eq!((reqs.len(), left, reqs[1].path.as_str()), (2, 0, "/health"));
}

#[test]
fn chunked_bodies_are_held_to_the_limit_and_the_grammar() {
    let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let err = |body: &str| parse_all(format!("{head}{body}").as_bytes()).expect_err(body);
    // 64 bytes allowed: the size line alone is enough to refuse, before the data.
    assert_eq!(err("41\r\n"), ParseError::BodyTooLarge { length: 65, limit: 64 });
    assert_eq!(err("zz\r\n").status(), 400);
    assert_eq!(err("3\r\nabcX\r\n").status(), 400, "data longer than its size");
    assert_eq!(err(&format!("{}\r\n", "1".repeat(16))).status(), 400);
    assert_eq!(err(&format!("1;{}\r\n", "e".repeat(5000))).status(), 400, "a huge extension");
}

#[test]
fn transfer_encodings_other_than_chunked_and_smuggling_shapes_are_refused() {
    let err = parse_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").expect_err("gzip");
    assert_eq!((err.status(), err.code()), (501, "not_implemented"));
    let last =
        parse_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").expect_err("not last");
    assert_eq!(last.status(), 400);
    let both = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n";
    assert_eq!(parse_all(both).expect_err("smuggling").status(), 400);
    let old = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(parse_all(old).expect_err("1.0").status(), 400);
}

#[test]
fn an_over_long_target_is_414_even_before_the_line_ends() {
    let limits = Limits { max_target_bytes: 100, ..limits() };
    let whole = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
    let mut buf = BytesMut::from(whole.as_bytes());
    let err = parse(&mut buf, &limits).expect_err("long");
    assert_eq!((err.status(), err.code()), (414, "uri_too_long"));
    let mut buf = BytesMut::from(format!("GET /{}", "a".repeat(200)).as_bytes());
    assert_eq!(parse(&mut buf, &limits).expect_err("long prefix").status(), 414);
    let mut buf = BytesMut::from(format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(98)).as_bytes());
    assert!(parse(&mut buf, &limits).expect("fits").is_some());
}

/// The bytes up to a limit decide a size refusal, so the same bytes get the same
/// answer whether they arrive at once or one at a time (found by the
/// `http_parse` fuzz target: a bad byte past the limit made them 400 at once).
#[test]
fn a_size_refusal_does_not_depend_on_how_the_bytes_arrive() {
    let fuzz_limits =
        Limits { max_head_bytes: 512, max_headers: 8, max_target_bytes: 128, max_body_bytes: 1024, ..limits() };
    let long_target = format!("GET /{}\x01 HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(200)).into_bytes();
    let long_head = format!("GET / HTTP/1.1\r\nHost: x\r\nX-A: {}\x01\r\n\r\n", "a".repeat(600)).into_bytes();
    // The fuzzer's inputs start with its split byte.
    let fuzzed = |input: &'static [u8]| &input[1..];
    let cases: [(&[u8], u16); 4] = [
        (&long_target, 414),
        (&long_head, 431),
        (fuzzed(include_bytes!("../../../../fuzz/regressions/http_parse-target-too-long-vs-malformed")), 414),
        (fuzzed(include_bytes!("../../../../fuzz/regressions/http_parse-headers-too-large-vs-malformed")), 431),
    ];
    for (wire, status) in cases {
        let whole = parse(&mut BytesMut::from(wire), &fuzz_limits).expect_err("whole");
        let mut buf = BytesMut::new();
        let bytewise = wire
            .iter()
            .find_map(|b| {
                buf.extend_from_slice(&[*b]);
                parse(&mut buf, &fuzz_limits).err()
            })
            .expect("refused byte by byte");
        assert_eq!((whole.status(), bytewise.status()), (status, status), "{}", String::from_utf8_lossy(&wire[..40]));
    }
}

#[test]
fn an_http_1_1_request_needs_exactly_one_host() {
    for wire in [&b"GET / HTTP/1.1\r\n\r\n"[..], b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"] {
        let err = parse(&mut BytesMut::from(wire), &limits()).expect_err("refused");
        assert_eq!(err.status(), 400, "{err}");
    }
    // HTTP/1.0 predates Host.
    assert!(parse(&mut BytesMut::from(&b"GET / HTTP/1.0\r\n\r\n"[..]), &limits()).expect("1.0").is_some());
}

#[test]
fn expect_continue_is_seen_once_the_head_is_whole() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n";
    assert!(expects_continue(head));
    assert!(!expects_continue(&head[..head.len() - 2]), "not before the head ends");
    assert!(!expects_continue(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"));
}
