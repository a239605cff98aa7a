//! The Phoenix wire side of a subscription: committed activities become
//! broadcasts, typing signals, presence changes `presence_diff` and member
//! signals their own events, under the names of the socket's [`Naming`] —
//! each encoded once per naming and shard (the frame names the topic, not
//! the socket, so every subscriber of that naming can share it) and queued
//! on the socket without copying.

use std::ops::Range;
use std::rc::Rc;

use bytes::Bytes;
use converger_storage::{kinds, Activity, Id};
use serde::Serialize;
use serde_json::json;

use super::phoenix_events::Naming;
use crate::engine::live::{Ephemeral, LocalEvent, SharedBatch, Sink};
use crate::engine::Disconnect;
use crate::net::ws::phoenix;
use crate::net::ws::WsSender;

pub struct PhoenixSink {
    pub sender: WsSender,
    pub naming: Naming,
    /// The topic as the client joined it, its `join_ref`, and the session's
    /// number for the join.
    pub topic: String,
    pub join_ref: String,
    pub join: u64,
    /// The sender the socket acts as; `None` for a watcher (the console).
    pub client: Option<String>,
    /// Where the session hears that the server ended a join (by its number).
    /// At most one message per join, and a socket holds at most
    /// `max_subscriptions_per_connection` joins: bounded by construction.
    pub ended: futures_channel::mpsc::UnboundedSender<u64>,
}

impl Sink for PhoenixSink {
    fn deliver(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool {
        let naming = self.naming;
        let frames = batch.encoded(naming.format(), |activities| encode_activities(naming, activities));
        frames[range].iter().all(|f| self.sender.send_frame(f.clone()).is_ok())
    }

    fn event(&self, event: &Rc<LocalEvent>) -> bool {
        let naming = self.naming;
        let frame = event.encoded(naming.format(), |e| encode_event(naming, e));
        frame.is_empty() || self.sender.send_frame(frame).is_ok()
    }

    fn poll_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.sender.poll_room(cx)
    }

    fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// The topic is left with `phx_close` carrying `{reason, code}`; the
    /// socket stays open (it may follow other topics, and a closed socket
    /// would make the Phoenix client reconnect and join again).
    fn disconnected(&self, d: &Disconnect) {
        let payload = json!({"reason": d.reason, "code": d.cause.as_str()});
        if let Ok(frame) = phoenix::close_with(&self.join_ref, &self.topic, &payload) {
            let _ = self.sender.send_frame(frame);
        }
        let _ = self.ended.unbounded_send(self.join);
    }
}

/// A QuckChat push of an activity: the activity as Converger gives it, plus
/// the names a QuckChat client writes: `message_id` (the message an edit,
/// delete or reaction acts on) and `emoji` (a reaction's).
#[derive(Serialize)]
struct QuckChatActivity<'a> {
    #[serde(flatten)]
    activity: &'a Activity,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emoji: Option<&'a str>,
}

impl<'a> QuckChatActivity<'a> {
    fn of(activity: &'a Activity) -> QuckChatActivity<'a> {
        let reaction = matches!(activity.kind.as_str(), kinds::REACTION_ADD | kinds::REACTION_REMOVE);
        QuckChatActivity {
            activity,
            message_id: activity.target_id.filter(|_| kinds::has_target(&activity.kind)),
            emoji: activity.text.as_deref().filter(|_| reaction),
        }
    }
}

fn encode_activities(naming: Naming, activities: &[Activity]) -> Vec<Bytes> {
    activities
        .iter()
        .map(|a| {
            let topic = naming.topic(a.conversation_id);
            let event = naming.activity_event(&a.kind);
            match naming {
                Naming::Converger => phoenix::broadcast(&topic, event, a),
                Naming::QuckChat => phoenix::broadcast(&topic, event, &QuckChatActivity::of(a)),
            }
            .unwrap_or_default()
        })
        .collect()
}

fn encode_event(naming: Naming, e: &LocalEvent) -> Bytes {
    let topic = naming.topic(e.conversation);
    let frame = match &*e.event {
        Ephemeral::Typing { sender, typing } => {
            phoenix::broadcast(&topic, naming.typing_event(*typing), &json!({"sender": sender, "typing": typing}))
        }
        Ephemeral::Presence(diff) => phoenix::broadcast(&topic, "presence_diff", diff),
        Ephemeral::Signal { signal, data } => phoenix::broadcast(&topic, naming.signal_event(*signal), data),
    };
    // Serializing our own types cannot fail; an empty frame is skipped by the sink.
    frame.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use converger_storage::{new_id, Json, MessageState, Timestamp};
    use serde_json::Value;

    use super::*;
    use crate::engine::Signal;

    fn activity(kind: &str, text: &str, target_id: Option<Id>) -> Activity {
        Activity {
            id: new_id(),
            tenant_id: new_id(),
            conversation_id: new_id(),
            seq: 1,
            kind: kind.into(),
            text: Some(text.into()),
            attachments: None,
            sender: "alice".into(),
            metadata: Json::empty_object(),
            idempotency_key: None,
            created_at: Timestamp::now(),
            target_id,
            parent_id: None,
            state: (kind == kinds::MESSAGE).then(MessageState::default),
        }
    }

    /// The JSON of a server's text frame (unmasked: a 2, 4 or 10 byte header).
    fn frame(bytes: &Bytes) -> Value {
        let header = match bytes[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        serde_json::from_slice(&bytes[header..]).expect("json frame")
    }

    #[test]
    fn quckchat_pushes_carry_the_activity_under_quckchat_names() {
        let message = activity(kinds::MESSAGE, "hi", None);
        let reaction = activity(kinds::REACTION_ADD, "👍", Some(message.id));
        let edit = activity(kinds::EDIT, "hello", Some(message.id));
        let all = [message.clone(), reaction.clone(), edit.clone()];

        let ours = encode_activities(Naming::Converger, &all);
        let theirs = encode_activities(Naming::QuckChat, &all);
        let ours: Vec<Value> = ours.iter().map(frame).collect();
        let theirs: Vec<Value> = theirs.iter().map(frame).collect();

        assert_eq!(
            ours[0],
            json!([null, null, format!("conversation:{}", message.conversation_id), "activity", message])
        );
        assert_eq!(theirs[0], json!([null, null, format!("chat:{}", message.conversation_id), "message:new", message]));
        assert_eq!(theirs[1][3], "message:reaction:added");
        let mut expected = serde_json::to_value(&reaction).expect("json");
        expected["message_id"] = json!(message.id);
        expected["emoji"] = json!("👍");
        assert_eq!(theirs[1][4], expected, "the activity plus message_id and emoji");
        assert_eq!(theirs[2][3], "message:edited");
        assert_eq!(theirs[2][4]["message_id"], json!(message.id));
        assert!(theirs[2][4].get("emoji").is_none(), "an edit has no emoji: {}", theirs[2][4]);
        assert_eq!(ours[2][4], serde_json::to_value(&edit).expect("json"), "Converger's push is the activity alone");
    }

    #[test]
    fn quckchat_signals_and_typing() {
        let conversation = new_id();
        let event = |e: Ephemeral| LocalEvent::new(conversation, Arc::new(e));
        let receipt = event(Ephemeral::Signal {
            signal: Signal::Receipt,
            data: json!({"sender": "bob", "read_seq": 3, "delivered_seq": 3}),
        });
        let f = frame(&encode_event(Naming::QuckChat, &receipt));
        assert_eq!(
            f,
            json!([null, null, format!("chat:{conversation}"), "message:read", {"sender": "bob", "read_seq": 3, "delivered_seq": 3}])
        );
        assert_eq!(frame(&encode_event(Naming::Converger, &receipt))[3], "receipt");
        let stop = event(Ephemeral::Typing { sender: "bob".into(), typing: false });
        assert_eq!(frame(&encode_event(Naming::QuckChat, &stop))[3], "typing:stop");
        assert_eq!(frame(&encode_event(Naming::Converger, &stop))[3], "typing");
    }

    #[test]
    fn each_naming_is_encoded_once_per_batch() {
        let batch = Rc::new(SharedBatch::new(Arc::from(vec![activity(kinds::MESSAGE, "hi", None)])));
        let a = batch.encoded(Naming::QuckChat.format(), |x| encode_activities(Naming::QuckChat, x));
        let b = batch.encoded(Naming::QuckChat.format(), |_| panic!("encoded twice"));
        assert!(Rc::ptr_eq(&a, &b), "the second socket shares the first one's bytes");
        let c = batch.encoded(Naming::Converger.format(), |x| encode_activities(Naming::Converger, x));
        assert_ne!(a[0], c[0]);
    }
}
