use serde_json::json;

use super::super::testing::server_frame;
use super::*;

/// The JSON inside a server text frame.
fn json_of(frame: Bytes) -> String {
    let mut wire = frame.to_vec();
    let (b0, payload) = server_frame(&mut wire).expect("one frame");
    assert_eq!(b0, 0x81);
    assert!(wire.is_empty());
    String::from_utf8(payload).expect("utf8")
}

#[test]
fn the_interop_exchange_parses_and_encodes_exactly() {
    let join = parse_text(br#"["3","3","room:lobby","phx_join",{"user":"u1"}]"#).expect("join");
    assert_eq!(join.join_ref.as_deref(), Some("3"));
    assert_eq!(join.msg_ref.as_deref(), Some("3"));
    assert_eq!((join.topic.as_str(), join.event.as_str()), ("room:lobby", "phx_join"));
    assert_eq!(&join.payload[..], br#"{"user":"u1"}"#);
    let heartbeat = parse_text(br#"[null,"6","phoenix","heartbeat",{}]"#).expect("heartbeat");
    assert_eq!((heartbeat.join_ref, heartbeat.msg_ref.as_deref()), (None, Some("6")));

    let r = |jr, r, status, v: Value| json_of(reply(jr, r, "room:lobby", status, &v).expect("encode"));
    assert_eq!(
        r(Some("3"), "3", Status::Ok, json!({"welcome": true})),
        r#"["3","3","room:lobby","phx_reply",{"status":"ok","response":{"welcome":true}}]"#
    );
    assert_eq!(
        r(Some("3"), "4", Status::Ok, json!({"id": 42})),
        r#"["3","4","room:lobby","phx_reply",{"status":"ok","response":{"id":42}}]"#
    );
    assert_eq!(
        json_of(reply(None, "6", "phoenix", Status::Ok, &json!({})).expect("encode")),
        r#"[null,"6","phoenix","phx_reply",{"status":"ok","response":{}}]"#
    );
    assert_eq!(
        r(Some("3"), "3", Status::Error, json!({"reason": "unmatched topic"})),
        r#"["3","3","room:lobby","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"#
    );
    assert_eq!(
        json_of(broadcast("room:lobby", "new_msg", &json!({"body": "hi"})).expect("encode")),
        r#"[null,null,"room:lobby","new_msg",{"body":"hi"}]"#
    );
    assert_eq!(
        json_of(push("3", "room:lobby", "activity", &json!({"seq": 1})).expect("encode")),
        r#"["3",null,"room:lobby","activity",{"seq":1}]"#
    );
    assert_eq!(json_of(close("3", "room:lobby")), r#"["3","3","room:lobby","phx_close",{}]"#);
    assert_eq!(
        json_of(error("3", "room:lobby", "crashed")),
        r#"["3","3","room:lobby","phx_error",{"reason":"crashed"}]"#
    );
}

#[test]
fn an_encoded_message_parses_back() {
    let frame = message(Some("1"), Some("2"), "conversation:x", "typing", &json!({"a": [1, 2]})).expect("encode");
    let parsed = parse_text(json_of(frame).as_bytes()).expect("parse");
    assert_eq!(parsed.join_ref.as_deref(), Some("1"));
    assert_eq!(parsed.event, "typing");
    assert_eq!(&parsed.payload[..], br#"{"a":[1,2]}"#);
    // A large broadcast takes the 16-bit length header.
    let big = "x".repeat(70_000);
    let json = json_of(broadcast("t", "e", &json!({ "text": big })).expect("encode"));
    assert!(json.len() > 65_535 && json.ends_with("\"}]"));
}

#[test]
fn malformed_text_frames_get_typed_errors() {
    let err = |t: &str| parse_text(t.as_bytes()).expect_err(t);
    assert!(matches!(err("[1,"), PhoenixError::Json(_)));
    assert_eq!(err(r#"{"topic":"x"}"#), PhoenixError::NotArray);
    assert_eq!(err(r#"["1","1","t","e"]"#), PhoenixError::Arity(4));
    assert_eq!(err(r#"["1","1","t","e",{},1]"#), PhoenixError::Arity(6));
    assert_eq!(err(r#"[1,"1","t","e",{}]"#), PhoenixError::BadRef("join_ref"));
    assert_eq!(err(r#"["1",2,"t","e",{}]"#), PhoenixError::BadRef("ref"));
    assert_eq!(err(r#"["1","1",null,"e",{}]"#), PhoenixError::NotString("topic"));
    assert_eq!(err(r#"["1","1","t",5,{}]"#), PhoenixError::NotString("event"));
    assert_eq!(err(r#"["1","1","t","e",[]]"#), PhoenixError::PayloadNotObject);
    assert_eq!(err(r#"["1","1","t","e","x"]"#), PhoenixError::PayloadNotObject);
}

fn binary_push(jr: &str, r: &str, topic: &str, event: &str, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, jr.len() as u8, r.len() as u8, topic.len() as u8, event.len() as u8];
    for s in [jr, r, topic, event] {
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[test]
fn binary_push_parses_and_every_truncation_is_refused() {
    let wire = binary_push("3", "12", "room:lobby", "upload", &[0, 1, 255]);
    let push = parse_binary(&Bytes::from(wire.clone())).expect("push");
    assert_eq!(
        push,
        BinaryPush {
            join_ref: "3".into(),
            msg_ref: "12".into(),
            topic: "room:lobby".into(),
            event: "upload".into(),
            data: Bytes::from_static(&[0, 1, 255]),
        }
    );
    let fields_end = wire.len() - 3;
    for cut in 0..fields_end {
        assert_eq!(parse_binary(&Bytes::copy_from_slice(&wire[..cut])), Err(PhoenixError::Truncated), "{cut}");
    }
    let empty_data = parse_binary(&Bytes::copy_from_slice(&wire[..fields_end])).expect("no data");
    assert!(empty_data.data.is_empty());
    let mut reply_kind = wire.clone();
    reply_kind[0] = 1;
    assert_eq!(parse_binary(&Bytes::from(reply_kind)), Err(PhoenixError::BinaryKind(1)));
    let bad = binary_push("3", "1", "\u{e9}", "e", b"");
    let mut bad = bad;
    bad[7] = 0xff;
    assert_eq!(parse_binary(&Bytes::from(bad)), Err(PhoenixError::BinaryUtf8("topic")));
}

#[test]
fn a_push_of_a_shared_payload_is_the_same_frame_as_one_encoded_whole() {
    let state = json!({"alice": {"metas": [{"phx_ref": "r1"}]}, "bob": {"metas": []}});
    let payload = Bytes::from(serde_json::to_vec(&state).expect("json"));
    for filler in [0, 200, 70_000] {
        let topic = format!("conversation:{}", "x".repeat(filler));
        let pieces = push_encoded("7", &topic, "presence_state", &payload);
        assert_eq!(pieces[1].as_ptr(), payload.as_ptr(), "the payload is not copied");
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        let whole = push("7", &topic, "presence_state", &state).expect("encodes");
        assert_eq!(joined, whole.to_vec());
    }
}
