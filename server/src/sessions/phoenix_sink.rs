//! The Phoenix wire side of a subscription: committed activities become
//! `activity` broadcasts, typing signals `typing`, presence changes
//! `presence_diff` — each encoded once per shard (the frame names the topic,
//! not the socket, so every subscriber can share it) and queued on the socket
//! without copying.

use std::ops::Range;
use std::rc::Rc;

use bytes::Bytes;
use converger_storage::{Activity, Id};
use serde_json::json;

use crate::engine::live::{Ephemeral, LocalEvent, SharedBatch, Sink};
use crate::net::ws::phoenix;
use crate::net::ws::WsSender;

const FORMAT: &str = "phoenix-v2";

/// The topic of a conversation.
pub fn topic(conversation: Id) -> String {
    format!("conversation:{conversation}")
}

pub struct PhoenixSink {
    pub sender: WsSender,
}

impl Sink for PhoenixSink {
    fn deliver(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool {
        let frames = batch.encoded(FORMAT, encode_activities);
        frames[range].iter().all(|f| self.sender.send_frame(f.clone()).is_ok())
    }

    fn event(&self, event: &Rc<LocalEvent>) -> bool {
        let frame = event.encoded(FORMAT, encode_event);
        frame.is_empty() || self.sender.send_frame(frame).is_ok()
    }

    fn poll_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.sender.poll_room(cx)
    }
}

fn encode_activities(activities: &[Activity]) -> Vec<Bytes> {
    activities
        .iter()
        .map(|a| phoenix::broadcast(&topic(a.conversation_id), "activity", a).unwrap_or_default())
        .collect()
}

fn encode_event(e: &LocalEvent) -> Bytes {
    let topic = topic(e.conversation);
    let frame = match &*e.event {
        Ephemeral::Typing { sender, typing } => {
            phoenix::broadcast(&topic, "typing", &json!({"sender": sender, "typing": typing}))
        }
        Ephemeral::Presence(diff) => phoenix::broadcast(&topic, "presence_diff", diff),
        Ephemeral::Signal { signal, data } => phoenix::broadcast(&topic, signal.as_str(), data),
    };
    // Serializing our own types cannot fail; an empty frame is skipped by the sink.
    frame.unwrap_or_default()
}
