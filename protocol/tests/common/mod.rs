//! The golden vectors' JSON form of a frame (documented in docs/protocol.md,
//! "Test vectors"), both ways, and the sample frames the vector files were
//! made from. Conventions: 64-bit integers are decimal strings (JavaScript
//! numbers cannot hold them), ids are lowercase hyphenated UUID strings,
//! absent optional fields are `null`, JSON values are strings of raw JSON text.

#![allow(dead_code)]

pub mod samples;

use std::path::PathBuf;

use converger_protocol::*;
use serde_json::{json, Map, Value};

pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

pub fn uuid(id: &Id) -> String {
    let h = hex(id);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

pub fn parse_uuid(v: &Value) -> Id {
    let s: String = v.as_str().expect("uuid string").chars().filter(|c| *c != '-').collect();
    unhex(&s).try_into().expect("16 bytes")
}

fn opt_uuid(id: &Option<Id>) -> Value {
    id.as_ref().map_or(Value::Null, |id| uuid(id).into())
}

fn big(n: impl ToString) -> Value {
    Value::String(n.to_string())
}

fn opt_str(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| s.clone().into())
}

fn u64_of(v: &Value) -> u64 {
    v.as_str().expect("64-bit integers are strings").parse().expect("u64")
}

fn i64_of(v: &Value) -> i64 {
    v.as_str().expect("64-bit integers are strings").parse().expect("i64")
}

fn num<T: TryFrom<u64>>(v: &Value) -> T {
    T::try_from(v.as_u64().expect("number")).ok().expect("in range")
}

fn s(v: &Value) -> String {
    v.as_str().expect("string").to_owned()
}

fn os(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn failure_json(code: u16, message: &str) -> Vec<(&'static str, Value)> {
    let name = ErrorCode::from_code(code).map_or(Value::Null, |c| c.name().into());
    vec![("code", code.into()), ("name", name), ("message", message.into())]
}

fn obj(fields: Vec<(&'static str, Value)>) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())
}

fn opt_uuid_of(v: &Value) -> Option<Id> {
    (!v.is_null()).then(|| parse_uuid(v))
}

fn opt_big(n: Option<impl ToString>) -> Value {
    n.map_or(Value::Null, big)
}

fn opt_i64_of(v: &Value) -> Option<i64> {
    (!v.is_null()).then(|| i64_of(v))
}

fn opt_u64_of(v: &Value) -> Option<u64> {
    (!v.is_null()).then(|| u64_of(v))
}

fn state_json(state: &MessageState) -> Value {
    json!({
        "edited_at": opt_big(state.edited_at),
        "deleted_at": opt_big(state.deleted_at),
        "reply_count": state.reply_count,
        "reactions": state.reactions.iter().map(|r| json!({"emoji": r.emoji, "count": r.count, "me": r.me})).collect::<Vec<_>>(),
    })
}

fn state_of(v: &Value) -> MessageState {
    MessageState {
        edited_at: opt_i64_of(&v["edited_at"]),
        deleted_at: opt_i64_of(&v["deleted_at"]),
        reply_count: num(&v["reply_count"]),
        reactions: (v["reactions"].as_array().expect("reactions").iter())
            .map(|r| Reaction { emoji: s(&r["emoji"]), count: num(&r["count"]), me: r["me"].as_bool().expect("me") })
            .collect(),
    }
}

pub fn activity_json(a: &Activity) -> Value {
    json!({
        "id": uuid(&a.id),
        "conversation_id": uuid(&a.conversation_id),
        "seq": big(a.seq),
        "created_at": big(a.created_at),
        "type": a.kind,
        "sender": a.sender,
        "text": opt_str(&a.text),
        "attachments": opt_str(&a.attachments),
        "metadata": a.metadata,
        "idempotency_key": opt_str(&a.idempotency_key),
        "target_id": opt_uuid(&a.target_id),
        "parent_id": opt_uuid(&a.parent_id),
        "state": a.state.as_ref().map_or(Value::Null, state_json),
    })
}

fn activity_of(v: &Value) -> Activity {
    Activity {
        id: parse_uuid(&v["id"]),
        conversation_id: parse_uuid(&v["conversation_id"]),
        seq: u64_of(&v["seq"]),
        created_at: i64_of(&v["created_at"]),
        kind: s(&v["type"]),
        sender: s(&v["sender"]),
        text: os(&v["text"]),
        attachments: os(&v["attachments"]),
        metadata: s(&v["metadata"]),
        idempotency_key: os(&v["idempotency_key"]),
        target_id: opt_uuid_of(&v["target_id"]),
        parent_id: opt_uuid_of(&v["parent_id"]),
        state: (!v["state"].is_null()).then(|| state_of(&v["state"])),
    }
}

fn draft_json(d: &Draft) -> Value {
    let mut v = json!({
        "conversation_id": uuid(&d.conversation_id),
        "type": d.kind,
        "sender": d.sender,
        "text": opt_str(&d.text),
        "attachments": opt_str(&d.attachments),
        "metadata": opt_str(&d.metadata),
        "idempotency_key": opt_str(&d.idempotency_key),
        "target_id": opt_uuid(&d.target_id),
        "parent_id": opt_uuid(&d.parent_id),
    });
    // Version 3's field, written only when set: the older vectors stay as they were.
    if let Some(t) = &d.traceparent {
        v["traceparent"] = t.as_str().into();
    }
    v
}

fn draft_of(v: &Value) -> Draft {
    Draft {
        conversation_id: parse_uuid(&v["conversation_id"]),
        kind: s(&v["type"]),
        sender: s(&v["sender"]),
        text: os(&v["text"]),
        attachments: os(&v["attachments"]),
        metadata: os(&v["metadata"]),
        idempotency_key: os(&v["idempotency_key"]),
        target_id: opt_uuid_of(&v["target_id"]),
        parent_id: opt_uuid_of(&v["parent_id"]),
        traceparent: os(&v["traceparent"]),
    }
}

fn written_fields(w: &Written) -> Vec<(&'static str, Value)> {
    vec![
        ("activity_id", uuid(&w.activity_id).into()),
        ("seq", big(w.seq)),
        ("created_at", big(w.created_at)),
        ("replayed", w.replayed.into()),
    ]
}

fn written_of(v: &Value) -> Written {
    Written {
        activity_id: parse_uuid(&v["activity_id"]),
        seq: u64_of(&v["seq"]),
        created_at: i64_of(&v["created_at"]),
        replayed: v["replayed"].as_bool().expect("bool"),
    }
}

fn failure_of(v: &Value) -> Failure {
    Failure { code: num(&v["code"]), message: s(&v["message"]) }
}

/// The JSON form of a frame: `{"kind": …, fields…}`.
pub fn to_json(frame: &Frame) -> Value {
    let mut fields: Vec<(&'static str, Value)> = vec![("kind", frame.kind().name().into())];
    match frame {
        Frame::Hello(h) => fields.extend([
            ("min_version", h.min_version.into()),
            ("max_version", h.max_version.into()),
            ("auth", if matches!(h.auth, Auth::Token(_)) { "token" } else { "api_key" }.into()),
            ("credential", h.auth.credential().into()),
            ("client", h.client.clone().into()),
        ]),
        Frame::Welcome(w) => fields.extend([
            ("version", w.version.into()),
            ("idle_timeout_secs", w.idle_timeout_secs.into()),
            ("max_frame", w.max_frame.into()),
            ("send_queue_bytes", w.send_queue_bytes.into()),
            ("tenant_id", uuid(&w.tenant_id).into()),
            ("conversation_id", opt_uuid(&w.conversation_id)),
            ("expires_at", big(w.expires_at)),
            ("sender", w.sender.clone().into()),
            ("server", w.server.clone().into()),
        ]),
        Frame::Ping(p) => fields.push(("payload", big(p.payload))),
        Frame::Pong(p) => fields.push(("payload", big(p.payload))),
        Frame::Error(e) => {
            fields.push(("request_id", e.request_id.into()));
            fields.extend(failure_json(e.code, &e.message));
            fields.push(("close", e.close.into()));
        }
        Frame::Ack(a) => fields.push(("request_id", a.request_id.into())),
        Frame::Reauth(r) => fields.extend([("request_id", r.request_id.into()), ("token", r.token.clone().into())]),
        Frame::Subscribe(sub) => fields.extend([
            ("request_id", sub.request_id.into()),
            (
                "items",
                sub.items
                    .iter()
                    .map(|i| json!({"conversation_id": uuid(&i.conversation_id), "after_seq": big(i.after_seq)}))
                    .collect(),
            ),
        ]),
        Frame::Subscribed(sub) => fields.extend([
            ("request_id", sub.request_id.into()),
            (
                "items",
                sub.items
                    .iter()
                    .map(|i| {
                        let mut item = vec![("conversation_id", uuid(&i.conversation_id).into())];
                        match &i.result {
                            Ok(last_seq) => item.extend([("code", 0.into()), ("last_seq", big(last_seq))]),
                            Err(f) => item.extend(failure_json(f.code, &f.message)),
                        }
                        obj(item)
                    })
                    .collect(),
            ),
        ]),
        Frame::Unsubscribe(u) => fields.extend([
            ("request_id", u.request_id.into()),
            ("conversation_ids", u.conversation_ids.iter().map(|id| Value::from(uuid(id))).collect()),
        ]),
        Frame::Publish(p) => {
            fields.extend([("request_id", p.request_id.into()), ("activity", draft_json(&p.activity))])
        }
        Frame::PublishAck(a) => {
            fields.push(("request_id", a.request_id.into()));
            fields.extend(written_fields(&a.written));
        }
        Frame::PublishBatch(b) => fields.extend([
            ("request_id", b.request_id.into()),
            ("activities", b.activities.iter().map(draft_json).collect()),
        ]),
        Frame::PublishBatchAck(b) => fields.extend([
            ("request_id", b.request_id.into()),
            (
                "items",
                b.items
                    .iter()
                    .map(|i| match i {
                        Ok(w) => {
                            let mut item = vec![("code", 0.into())];
                            item.extend(written_fields(w));
                            obj(item)
                        }
                        Err(f) => obj(failure_json(f.code, &f.message)),
                    })
                    .collect(),
            ),
        ]),
        Frame::Deliver(d) => fields.push(("activities", d.activities.iter().map(activity_json).collect())),
        Frame::Ephemeral(e) => fields.extend([
            ("request_id", e.request_id.into()),
            ("conversation_id", uuid(&e.conversation_id).into()),
            ("type", e.kind.clone().into()),
            ("sender", e.sender.clone().into()),
            ("data", e.data.clone().into()),
        ]),
        Frame::Receipt(r) => fields.extend([
            ("request_id", r.request_id.into()),
            ("conversation_id", uuid(&r.conversation_id).into()),
            ("read_seq", opt_big(r.read_seq)),
            ("delivered_seq", opt_big(r.delivered_seq)),
            ("sender", r.sender.clone().into()),
        ]),
        Frame::History(h) => fields.extend([
            ("request_id", h.request_id.into()),
            ("conversation_id", uuid(&h.conversation_id).into()),
            ("after_seq", big(h.after_seq)),
            ("until_seq", h.until_seq.map_or(Value::Null, big)),
            ("limit", h.limit.into()),
        ]),
        Frame::HistoryPage(p) => fields.extend([
            ("request_id", p.request_id.into()),
            ("conversation_id", uuid(&p.conversation_id).into()),
            ("last_seq", big(p.last_seq)),
            ("activities", p.activities.iter().map(activity_json).collect()),
        ]),
    }
    obj(fields)
}

/// The frame a JSON form describes.
pub fn from_json(v: &Value) -> Frame {
    let request_id = || num::<u32>(&v["request_id"]);
    match v["kind"].as_str().expect("kind") {
        "hello" => Frame::Hello(Hello {
            min_version: num(&v["min_version"]),
            max_version: num(&v["max_version"]),
            auth: match v["auth"].as_str() {
                Some("token") => Auth::Token(s(&v["credential"])),
                Some("api_key") => Auth::ApiKey(s(&v["credential"])),
                other => panic!("auth {other:?}"),
            },
            client: s(&v["client"]),
        }),
        "welcome" => Frame::Welcome(Welcome {
            version: num(&v["version"]),
            idle_timeout_secs: num(&v["idle_timeout_secs"]),
            max_frame: num(&v["max_frame"]),
            send_queue_bytes: num(&v["send_queue_bytes"]),
            tenant_id: parse_uuid(&v["tenant_id"]),
            conversation_id: (!v["conversation_id"].is_null()).then(|| parse_uuid(&v["conversation_id"])),
            expires_at: i64_of(&v["expires_at"]),
            sender: s(&v["sender"]),
            server: s(&v["server"]),
        }),
        "ping" => Frame::Ping(Ping { payload: u64_of(&v["payload"]) }),
        "pong" => Frame::Pong(Pong { payload: u64_of(&v["payload"]) }),
        "error" => Frame::Error(ErrorFrame {
            request_id: request_id(),
            code: num(&v["code"]),
            message: s(&v["message"]),
            close: v["close"].as_bool().expect("close"),
        }),
        "ack" => Frame::Ack(Ack { request_id: request_id() }),
        "reauth" => Frame::Reauth(Reauth { request_id: request_id(), token: s(&v["token"]) }),
        "subscribe" => Frame::Subscribe(Subscribe {
            request_id: request_id(),
            items: items(v)
                .iter()
                .map(|i| SubscribeItem {
                    conversation_id: parse_uuid(&i["conversation_id"]),
                    after_seq: u64_of(&i["after_seq"]),
                })
                .collect(),
        }),
        "subscribed" => Frame::Subscribed(Subscribed {
            request_id: request_id(),
            items: items(v)
                .iter()
                .map(|i| SubscribedItem {
                    conversation_id: parse_uuid(&i["conversation_id"]),
                    result: if i["code"] == 0 { Ok(u64_of(&i["last_seq"])) } else { Err(failure_of(i)) },
                })
                .collect(),
        }),
        "unsubscribe" => Frame::Unsubscribe(Unsubscribe {
            request_id: request_id(),
            conversation_ids: v["conversation_ids"].as_array().expect("ids").iter().map(parse_uuid).collect(),
        }),
        "publish" => Frame::Publish(Publish { request_id: request_id(), activity: draft_of(&v["activity"]) }),
        "publish_ack" => Frame::PublishAck(PublishAck { request_id: request_id(), written: written_of(v) }),
        "publish_batch" => Frame::PublishBatch(PublishBatch {
            request_id: request_id(),
            activities: v["activities"].as_array().expect("activities").iter().map(draft_of).collect(),
        }),
        "publish_batch_ack" => Frame::PublishBatchAck(PublishBatchAck {
            request_id: request_id(),
            items: items(v)
                .iter()
                .map(|i| if i["code"] == 0 { Ok(written_of(i)) } else { Err(failure_of(i)) })
                .collect(),
        }),
        "deliver" => Frame::Deliver(Deliver { activities: activities(v) }),
        "ephemeral" => Frame::Ephemeral(Ephemeral {
            request_id: request_id(),
            conversation_id: parse_uuid(&v["conversation_id"]),
            kind: s(&v["type"]),
            sender: s(&v["sender"]),
            data: s(&v["data"]),
        }),
        "receipt" => Frame::Receipt(Receipt {
            request_id: request_id(),
            conversation_id: parse_uuid(&v["conversation_id"]),
            read_seq: opt_u64_of(&v["read_seq"]),
            delivered_seq: opt_u64_of(&v["delivered_seq"]),
            sender: s(&v["sender"]),
        }),
        "history" => Frame::History(History {
            request_id: request_id(),
            conversation_id: parse_uuid(&v["conversation_id"]),
            after_seq: u64_of(&v["after_seq"]),
            until_seq: (!v["until_seq"].is_null()).then(|| u64_of(&v["until_seq"])),
            limit: num(&v["limit"]),
        }),
        "history_page" => Frame::HistoryPage(HistoryPage {
            request_id: request_id(),
            conversation_id: parse_uuid(&v["conversation_id"]),
            last_seq: u64_of(&v["last_seq"]),
            activities: activities(v),
        }),
        other => panic!("unknown kind {other}"),
    }
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().expect("items")
}

fn activities(v: &Value) -> Vec<Activity> {
    v["activities"].as_array().expect("activities").iter().map(activity_of).collect()
}
