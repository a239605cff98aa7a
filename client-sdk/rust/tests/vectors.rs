//! Every golden vector (`protocol/testdata/*.json`, format in docs/protocol.md,
//! "Test vectors") through the SDK: each frame the server sends is decoded by
//! the SDK's [`FrameDecoder`] (whole, byte by byte, and as one stream of all
//! vectors) and converted to the SDK's types, whose fields must be the
//! vector's; each frame a client sends is built from the SDK's types and must
//! encode to the vector's bytes. The invalid vectors must fail to decode with
//! the error they name.

use std::fs;
use std::path::PathBuf;

use converger_client::codec::{encode, FrameDecoder};
use converger_client::{
    Activity, Draft, MessageState, PresenceEvent, Reaction, ReceiptEvent, ServerError, TypingEvent, Uuid, Version,
    Welcome, Written,
};
use converger_protocol as proto;
use converger_protocol::{ErrorCode, Frame};
use serde_json::Value;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../protocol/testdata")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn load(file: &str) -> Value {
    let text = fs::read_to_string(testdata().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn version_of(v: &Value) -> Version {
    Version::from_u8(num(&v["version"])).expect("a version the SDK speaks")
}

/// `(file/name, version, bytes, fields)` of every frame vector.
fn frame_vectors() -> Vec<(String, Version, Vec<u8>, Value)> {
    let mut files: Vec<String> = fs::read_dir(testdata())
        .expect("protocol/testdata")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && n != "invalid.json")
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        for v in load(&file)["vectors"].as_array().expect("vectors") {
            let name = format!("{file}/{}", v["name"].as_str().expect("name"));
            out.push((name, version_of(v), unhex(v["hex"].as_str().expect("hex")), v["frame"].clone()));
        }
    }
    out
}

fn uuid(v: &Value) -> Uuid {
    v.as_str().expect("uuid string").parse().expect("uuid")
}

fn big<T: std::str::FromStr>(v: &Value) -> T {
    v.as_str().expect("64-bit integers are strings").parse().ok().expect("integer")
}

fn num<T: TryFrom<u64>>(v: &Value) -> T {
    T::try_from(v.as_u64().expect("number")).ok().expect("in range")
}

fn opt(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn s(v: &Value) -> String {
    v.as_str().expect("string").to_owned()
}

fn opt_uuid(v: &Value) -> Option<Uuid> {
    v.as_str().map(|_| uuid(v))
}

fn opt_big<T: std::str::FromStr>(v: &Value) -> Option<T> {
    v.as_str().map(|_| big(v))
}

fn state(f: &Value) -> Option<MessageState> {
    if f.is_null() {
        return None;
    }
    Some(MessageState {
        edited_at: opt_big(&f["edited_at"]),
        deleted_at: opt_big(&f["deleted_at"]),
        reply_count: num(&f["reply_count"]),
        reactions: (f["reactions"].as_array().unwrap().iter())
            .map(|r| Reaction { emoji: s(&r["emoji"]), count: num(&r["count"]), me: r["me"].as_bool().unwrap() })
            .collect(),
    })
}

fn check_activity(a: &Activity, f: &Value, at: &str) {
    let expected = Activity {
        id: uuid(&f["id"]),
        conversation_id: uuid(&f["conversation_id"]),
        seq: big(&f["seq"]),
        created_at: big(&f["created_at"]),
        kind: s(&f["type"]),
        sender: s(&f["sender"]),
        text: opt(&f["text"]),
        attachments: opt(&f["attachments"]),
        metadata: s(&f["metadata"]),
        idempotency_key: opt(&f["idempotency_key"]),
        target_id: opt_uuid(&f["target_id"]),
        parent_id: opt_uuid(&f["parent_id"]),
        state: state(&f["state"]),
    };
    assert_eq!(*a, expected, "{at}");
}

fn check_activities(list: Vec<proto::Activity>, f: &Value, at: &str) {
    let expected = f.as_array().expect("activities");
    assert_eq!(list.len(), expected.len(), "{at}");
    for (a, f) in list.into_iter().zip(expected) {
        check_activity(&Activity::from(a), f, at);
    }
}

fn check_written(w: Written, f: &Value, at: &str) {
    let expected = Written {
        activity_id: uuid(&f["activity_id"]),
        seq: big(&f["seq"]),
        created_at: big(&f["created_at"]),
        replayed: f["replayed"].as_bool().expect("bool"),
    };
    assert_eq!(w, expected, "{at}");
}

fn check_failure(e: &ServerError, f: &Value, at: &str) {
    assert_eq!(e.number, num::<u16>(&f["code"]), "{at}");
    assert_eq!(e.message, s(&f["message"]), "{at}");
    match f["name"].as_str() {
        Some(name) => assert_eq!(e.code.name(), name, "{at}"),
        None => assert_eq!(ErrorCode::from_code(e.number), None, "{at}: an unknown number is kept"),
    }
}

fn draft(f: &Value) -> Draft {
    Draft {
        conversation_id: uuid(&f["conversation_id"]),
        kind: s(&f["type"]),
        sender: s(&f["sender"]),
        text: opt(&f["text"]),
        attachments: opt(&f["attachments"]),
        metadata: opt(&f["metadata"]),
        idempotency_key: opt(&f["idempotency_key"]),
        target_id: opt_uuid(&f["target_id"]),
        parent_id: opt_uuid(&f["parent_id"]),
        traceparent: opt(&f["traceparent"]),
    }
}

/// A frame the server sends, through the SDK's types.
fn check_server_frame(frame: Frame, f: &Value, at: &str) {
    match frame {
        Frame::Welcome(w) => {
            let w = Welcome::from(w);
            assert_eq!(w.version, num::<u8>(&f["version"]), "{at}");
            assert_eq!(w.idle_timeout.as_secs(), f["idle_timeout_secs"].as_u64().unwrap(), "{at}");
            assert_eq!((w.max_frame, w.send_queue_bytes), (num(&f["max_frame"]), num(&f["send_queue_bytes"])), "{at}");
            assert_eq!(w.tenant_id, uuid(&f["tenant_id"]), "{at}");
            assert_eq!(w.conversation_id, f["conversation_id"].as_str().map(|_| uuid(&f["conversation_id"])), "{at}");
            assert_eq!(
                (w.expires_at, w.sender, w.server),
                (big(&f["expires_at"]), s(&f["sender"]), s(&f["server"])),
                "{at}"
            );
        }
        Frame::Error(e) => {
            assert_eq!((e.request_id, e.close), (num(&f["request_id"]), f["close"].as_bool().unwrap()), "{at}");
            check_failure(&ServerError::from(&e), f, at);
        }
        Frame::Ack(a) => assert_eq!(a.request_id, num::<u32>(&f["request_id"]), "{at}"),
        Frame::Ping(p) => assert_eq!(p.payload, big::<u64>(&f["payload"]), "{at}"),
        Frame::Pong(p) => assert_eq!(p.payload, big::<u64>(&f["payload"]), "{at}"),
        Frame::Subscribed(sub) => {
            assert_eq!(sub.request_id, num::<u32>(&f["request_id"]), "{at}");
            let items = f["items"].as_array().unwrap();
            assert_eq!(sub.items.len(), items.len(), "{at}");
            for (item, f) in sub.items.into_iter().zip(items) {
                assert_eq!(Uuid::from_bytes(item.conversation_id), uuid(&f["conversation_id"]), "{at}");
                match item.result {
                    Ok(last_seq) => assert_eq!(last_seq, big::<u64>(&f["last_seq"]), "{at}"),
                    Err(failure) => check_failure(&ServerError::from(failure), f, at),
                }
            }
        }
        Frame::PublishAck(a) => {
            assert_eq!(a.request_id, num::<u32>(&f["request_id"]), "{at}");
            check_written(a.written.into(), f, at);
        }
        Frame::PublishBatchAck(a) => {
            assert_eq!(a.request_id, num::<u32>(&f["request_id"]), "{at}");
            let items = f["items"].as_array().unwrap();
            assert_eq!(a.items.len(), items.len(), "{at}");
            for (item, f) in a.items.into_iter().zip(items) {
                match item.map(Written::from).map_err(ServerError::from) {
                    Ok(w) => check_written(w, f, at),
                    Err(e) => check_failure(&e, f, at),
                }
            }
        }
        Frame::Deliver(d) => check_activities(d.activities, &f["activities"], at),
        Frame::HistoryPage(p) => {
            assert_eq!((p.request_id, p.last_seq), (num(&f["request_id"]), big(&f["last_seq"])), "{at}");
            assert_eq!(Uuid::from_bytes(p.conversation_id), uuid(&f["conversation_id"]), "{at}");
            check_activities(p.activities, &f["activities"], at);
        }
        Frame::Ephemeral(e) => {
            assert_eq!(
                (e.request_id, e.sender.as_str(), e.data.as_str()),
                (num(&f["request_id"]), f["sender"].as_str().unwrap(), f["data"].as_str().unwrap()),
                "{at}"
            );
            let data: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
            let conversation_id = uuid(&f["conversation_id"]);
            match e.kind.as_str() {
                "typing" => {
                    let typing = TypingEvent::from_frame(&e).expect("a typing event");
                    assert_eq!(typing.typing, data["typing"].as_bool().unwrap(), "{at}");
                    assert_eq!(typing.conversation_id, conversation_id, "{at}");
                }
                "receipt" => {
                    let receipt = ReceiptEvent::from_frame(&e).expect("a receipt event");
                    let expected = ReceiptEvent {
                        conversation_id,
                        sender: s(&f["sender"]),
                        read_seq: data["read_seq"].as_u64().unwrap(),
                        delivered_seq: data["delivered_seq"].as_u64().unwrap(),
                    };
                    assert_eq!(receipt, expected, "{at}");
                }
                kind => {
                    let presence = PresenceEvent::from_frame(&e).expect("a presence event");
                    let expected = PresenceEvent {
                        conversation_id,
                        sender: s(&f["sender"]),
                        online: kind == "user_online",
                        last_seen: data["last_seen"].as_str().map(str::to_owned),
                    };
                    assert_eq!(presence, expected, "{at}");
                }
            }
        }
        other => panic!("{at}: {} is not sent by the server", other.kind().name()),
    }
}

/// A frame a client sends, built the way the SDK builds it.
fn client_frame(f: &Value, at: &str) -> Frame {
    let request_id = || num::<u32>(&f["request_id"]);
    match f["kind"].as_str().unwrap() {
        "hello" => {
            let credential = s(&f["credential"]);
            let auth = match f["auth"].as_str().unwrap() {
                "token" => proto::Auth::Token(credential),
                _ => proto::Auth::ApiKey(credential),
            };
            Frame::Hello(proto::Hello {
                min_version: num(&f["min_version"]),
                max_version: num(&f["max_version"]),
                auth,
                client: s(&f["client"]),
            })
        }
        "publish" => {
            Frame::Publish(proto::Publish { request_id: request_id(), activity: draft(&f["activity"]).into() })
        }
        "publish_batch" => Frame::PublishBatch(proto::PublishBatch {
            request_id: request_id(),
            activities: f["activities"].as_array().unwrap().iter().map(|d| draft(d).into()).collect(),
        }),
        "subscribe" => Frame::Subscribe(proto::Subscribe {
            request_id: request_id(),
            items: (f["items"].as_array().unwrap().iter())
                .map(|i| proto::SubscribeItem {
                    conversation_id: uuid(&i["conversation_id"]).into_bytes(),
                    after_seq: big(&i["after_seq"]),
                })
                .collect(),
        }),
        "unsubscribe" => Frame::Unsubscribe(proto::Unsubscribe {
            request_id: request_id(),
            conversation_ids: f["conversation_ids"].as_array().unwrap().iter().map(|c| uuid(c).into_bytes()).collect(),
        }),
        "history" => Frame::History(proto::History {
            request_id: request_id(),
            conversation_id: uuid(&f["conversation_id"]).into_bytes(),
            after_seq: big(&f["after_seq"]),
            until_seq: f["until_seq"].as_str().map(|_| big(&f["until_seq"])),
            limit: num(&f["limit"]),
        }),
        "reauth" => Frame::Reauth(proto::Reauth { request_id: request_id(), token: s(&f["token"]) }),
        "receipt" => Frame::Receipt(proto::Receipt {
            request_id: request_id(),
            conversation_id: uuid(&f["conversation_id"]).into_bytes(),
            read_seq: opt_big(&f["read_seq"]),
            delivered_seq: opt_big(&f["delivered_seq"]),
            sender: s(&f["sender"]),
        }),
        "ephemeral" | "ping" | "pong" => {
            // Both directions: the SDK sends them as it decodes them.
            let (frame, _) = proto::decode_frame(&encode_json_free(f), Version::V1).unwrap().unwrap();
            frame
        }
        other => panic!("{at}: {other} is not sent by a client"),
    }
}

/// Ping, Pong and Ephemeral as the SDK builds them.
fn encode_json_free(f: &Value) -> Vec<u8> {
    let frame = match f["kind"].as_str().unwrap() {
        "ping" => Frame::Ping(proto::Ping { payload: big(&f["payload"]) }),
        "pong" => Frame::Pong(proto::Pong { payload: big(&f["payload"]) }),
        _ => Frame::Ephemeral(proto::Ephemeral {
            request_id: num(&f["request_id"]),
            conversation_id: uuid(&f["conversation_id"]).into_bytes(),
            kind: s(&f["type"]),
            sender: s(&f["sender"]),
            data: s(&f["data"]),
        }),
    };
    encode(&frame, Version::V1).unwrap().to_vec()
}

#[test]
fn every_vector_decodes_through_the_sdk_and_client_frames_encode_to_their_bytes() {
    let vectors = frame_vectors();
    assert!(vectors.len() >= 18, "the vectors are there: {}", vectors.len());
    // One stream per version, as one connection reads it.
    let mut streams: Vec<(Version, Vec<u8>, usize)> = Version::ALL.iter().map(|v| (*v, Vec::new(), 0)).collect();
    for (at, version, bytes, fields) in &vectors {
        // Whole, then one byte at a time: incomplete until the last byte.
        let mut whole = FrameDecoder::new();
        whole.set_version(*version);
        whole.extend(bytes);
        let frame = whole.next_frame().unwrap_or_else(|e| panic!("{at}: {e}")).expect("complete");
        assert_eq!(whole.buffered(), 0, "{at}");
        let mut split = FrameDecoder::new();
        split.set_version(*version);
        for (i, b) in bytes.iter().enumerate() {
            split.extend(std::slice::from_ref(b));
            let got = split.next_frame().unwrap_or_else(|e| panic!("{at} at byte {i}: {e}"));
            assert_eq!(got.is_some(), i + 1 == bytes.len(), "{at} at byte {i}");
            if let Some(got) = got {
                assert_eq!(got, frame, "{at}");
            }
        }
        let kind = frame.kind();
        if kind.server_sends() {
            check_server_frame(frame.clone(), fields, at);
        }
        if kind.client_sends() {
            let built = client_frame(fields, at);
            assert_eq!(built, frame, "{at}");
            assert_eq!(encode(&built, *version).unwrap().as_ref(), bytes.as_slice(), "{at}: encoded bytes");
        }
        let (_, stream, count) = streams.iter_mut().find(|(v, _, _)| v == version).expect("a stream");
        stream.extend_from_slice(bytes);
        *count += 1;
    }
    // All of a version as one stream, read in odd-sized pieces.
    for (version, stream, count) in streams {
        let mut decoder = FrameDecoder::new();
        decoder.set_version(version);
        let mut decoded = Vec::new();
        for piece in stream.chunks(7) {
            decoder.extend(piece);
            while let Some(frame) = decoder.next_frame().expect("a valid stream") {
                decoded.push(frame);
            }
        }
        assert_eq!(decoded.len(), count, "version {version}");
    }
}

#[test]
fn invalid_vectors_fail_in_the_sdk_decoder_with_the_named_error() {
    let doc = load("invalid.json");
    let vectors = doc["vectors"].as_array().expect("vectors");
    assert!(!vectors.is_empty());
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.set_version(version_of(v));
        decoder.extend(&unhex(v["hex"].as_str().unwrap()));
        match decoder.next_frame() {
            Err(e) => assert_eq!(e.name(), v["error"].as_str().unwrap(), "{name}: {e}"),
            Ok(other) => panic!("{name}: decoded {other:?}"),
        }
    }
}
