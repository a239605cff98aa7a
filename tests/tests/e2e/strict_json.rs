//! Strict JSON on every transport: what REST refuses, the binary protocol
//! refuses too (and the other way round), nothing of a refused write is
//! stored, and what is stored reads back with the exact values it was sent
//! with: no number rounded, no key chosen between two, no document deeper
//! than a recursive parser can read.

use converger_e2e::api::{assert_error, expect, Fixture};
use converger_e2e::binary::BinClient;
use converger_e2e::TestServer;
use converger_protocol::{Draft, Ephemeral, ErrorCode, Frame, Publish};

/// Posts `body` as it is, with the tenant's key.
fn post_raw(server: &TestServer, f: &Fixture, body: &str) -> converger_e2e::http::Reply {
    let auth = format!("Bearer {}", f.tenant.api_key);
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    server.request("POST", &f.activities_path(), &headers, body.as_bytes())
}

fn stored(server: &TestServer, f: &Fixture) -> Vec<serde_json::Value> {
    let page = expect(&f.client(server).get(&f.activities_path()), 200);
    page["data"].as_array().expect("data").clone()
}

/// Bodies a strict parser would refuse or read differently: each is 400
/// `invalid_json`, and none writes anything.
fn rest_refuses_what_a_strict_reader_would_not_read_the_same(server: &TestServer) {
    let f = Fixture::new(server, "strict-rest");
    let deep = format!(r#"{{"sender":"s","text":"x","metadata":{}{}}}"#, "{\"a\":".repeat(100), "}".repeat(100));
    let refused = [
        r#"{"sender":"s","text":"x","metadata":{"a":1e999}}"#,
        r#"{"sender":"s","text":"x","metadata":{"a":1e-400}}"#,
        r#"{"sender":"s","text":"x","metadata":{"a":18446744073709551616}}"#,
        r#"{"sender":"s","text":"x","metadata":{"a":0.1000000000000000000001}}"#,
        r#"{"sender":"s","text":"\ud800"}"#,
        r#"{"sender":"s","text":"x","attachments":[{"name":"\udc00"}]}"#,
        r#"{"sender":"s","text":"x","idempotency_key":"a","idempotency_key":"b"}"#,
        r#"{"sender":"s","text":"x","metadata":{"k":1,"k":2}}"#,
        deep.as_str(),
    ];
    for body in refused {
        let e = assert_error(&post_raw(server, &f, body), 400, "invalid_json");
        assert!(!e["message"].as_str().unwrap_or_default().is_empty(), "{body}");
    }
    assert!(stored(server, &f).is_empty(), "nothing written");

    // Numbers a 64-bit integer or a double holds read back with their value.
    let body = r#"{"sender":"s","text":"x","metadata":{"u":18446744073709551615,"i":-9223372036854775808,"f":0.1,"e":1e20,"emoji":"\ud83d\ude00"}}"#;
    expect(&post_raw(server, &f, body), 201);
    let metadata = &stored(server, &f)[0]["metadata"];
    assert_eq!(metadata["u"].as_u64(), Some(u64::MAX), "{metadata}");
    assert_eq!(metadata["i"].as_i64(), Some(i64::MIN), "{metadata}");
    assert_eq!(metadata["f"].as_f64(), Some(0.1), "{metadata}");
    assert_eq!(metadata["e"].as_f64(), Some(1e20), "{metadata}");
    assert_eq!(metadata["emoji"], "\u{1f600}");
}

on_both_backends!(rest_refuses_what_a_strict_reader_would_not_read_the_same);

fn draft(f: &Fixture, metadata: Option<&str>, attachments: Option<&str>) -> Draft {
    Draft {
        conversation_id: *uuid::Uuid::parse_str(f.conversation_id()).expect("uuid").as_bytes(),
        kind: "message".into(),
        sender: "bot".into(),
        text: Some("x".into()),
        attachments: attachments.map(str::to_string),
        metadata: metadata.map(str::to_string),
        idempotency_key: None,
        target_id: None,
        parent_id: None,
        traceparent: None,
    }
}

/// The binary protocol's JSON fields pass the same check as REST bodies:
/// malformed or inexact JSON is `invalid_json` (3002), valid JSON of the wrong
/// shape `validation_failed`; nothing refused is stored.
fn binary_json_fields_are_checked_like_rest_bodies(server: &TestServer) {
    let f = Fixture::new(server, "strict-binary");
    let (mut c, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: [(Option<&str>, Option<&str>, ErrorCode); 8] = [
        (Some(r#"{"a":1e999}"#), None, ErrorCode::InvalidJson),
        (Some("{not json"), None, ErrorCode::InvalidJson),
        (Some(r#"{"a":"\ud800"}"#), None, ErrorCode::InvalidJson),
        (Some(r#"{"a":1,"a":2}"#), None, ErrorCode::InvalidJson),
        (Some(&deep), None, ErrorCode::InvalidJson),
        (None, Some(r#"[{"n":123456789012345678901234567890}]"#), ErrorCode::InvalidJson),
        (Some("[1]"), None, ErrorCode::ValidationFailed),
        (None, Some("[1]"), ErrorCode::ValidationFailed),
    ];
    for (i, (metadata, attachments, code)) in cases.into_iter().enumerate() {
        let request_id = i as u32 + 1;
        c.send(Publish { request_id, activity: draft(&f, metadata, attachments) });
        match c.frame() {
            Frame::Error(e) => {
                assert_eq!((e.request_id, e.error_code()), (request_id, Some(code)), "{e:?}");
                assert!(!e.close, "one refused request does not end the connection");
            }
            other => panic!("case {i}: expected Error {}, got {other:?}", code.name()),
        }
    }
    assert!(stored(server, &f).is_empty(), "nothing written");

    // A typing signal's data is checked as the Phoenix payload is.
    let conversation_id = *uuid::Uuid::parse_str(f.conversation_id()).expect("uuid").as_bytes();
    for (request_id, data, code) in [
        (20, r#"{"typing":"yes"}"#, ErrorCode::ValidationFailed),
        (21, r#"{"typing":true,"x":1}"#, ErrorCode::ValidationFailed),
        (22, r#"{"typing":tru}"#, ErrorCode::InvalidJson),
    ] {
        c.send(Ephemeral {
            request_id,
            conversation_id,
            kind: "typing".into(),
            sender: "bot".into(),
            data: data.into(),
        });
        match c.frame() {
            Frame::Error(e) => assert_eq!((e.request_id, e.error_code()), (request_id, Some(code)), "{e:?}"),
            other => panic!("{data}: expected Error, got {other:?}"),
        }
    }

    // Exact values are kept as sent.
    c.send(Publish { request_id: 30, activity: draft(&f, Some(r#"{"u":18446744073709551615,"f":0.1}"#), None) });
    assert!(matches!(c.frame(), Frame::PublishAck(a) if a.request_id == 30));
    let metadata = &stored(server, &f)[0]["metadata"];
    assert_eq!((metadata["u"].as_u64(), metadata["f"].as_f64()), (Some(u64::MAX), Some(0.1)), "{metadata}");
}

on_both_backends!(binary_json_fields_are_checked_like_rest_bodies);
