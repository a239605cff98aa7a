//! The Phoenix socket's two vocabularies (docs/api.md "Event names"):
//! Converger's own and QuckChat's (seed 004).
//!
//! **Client events**: either naming is accepted on any joined topic.
//! [`client_event`] turns an event and its payload into one [`Command`] of
//! the service layer: a write (an activity payload as `activity:create`
//! takes it), a typing signal or a receipt. It checks only what the alias
//! itself adds (`message_id`, `emoji`, `seq`); the activity's own rules stay
//! [`ActivityInput::from_json`]'s, so both namings refuse the same things.
//!
//! **Server events**: the topic a client joined picks the naming
//! ([`Naming::of_topic`]): `conversation:{id}` pushes Converger's names,
//! `chat:{id}` QuckChat's. Each naming is its own wire format of the shared
//! encodings ([`Naming::format`]): a broadcast is encoded once per naming and
//! shard, however many sockets receive it.
//!
//! [`ActivityInput::from_json`]: crate::service::activities::ActivityInput::from_json

use converger_storage::{kinds, Id, Receipts};
use serde_json::{Map, Value};

use crate::engine::Signal;
use crate::service::activities::{typing_state, MAX_EMOJI_BYTES};
use crate::service::input::Fields;
use crate::service::members::receipts_from_json;
use crate::service::{ServiceError, ServiceResult};

/// Which names the server pushes on a joined topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    /// `conversation:{id}`: `activity`, `typing`, `receipt`, `user_online` …
    Converger,
    /// `chat:{id}`: `message:new`, `message:edited`, `message:read`, `user:online` …
    QuckChat,
}

impl Naming {
    /// The naming a topic asks for, and the text of its conversation id.
    pub fn of_topic(topic: &str) -> Option<(Naming, &str)> {
        if let Some(id) = topic.strip_prefix("conversation:") {
            Some((Naming::Converger, id))
        } else {
            topic.strip_prefix("chat:").map(|id| (Naming::QuckChat, id))
        }
    }

    /// The topic the server's pushes name.
    pub fn topic(self, conversation: Id) -> String {
        match self {
            Naming::Converger => format!("conversation:{conversation}"),
            Naming::QuckChat => format!("chat:{conversation}"),
        }
    }

    /// The key of this naming's frames in the shared encodings: the frames
    /// differ in topic and event names, so each naming is a format of its own.
    pub fn format(self) -> &'static str {
        match self {
            Naming::Converger => "phoenix-v2",
            Naming::QuckChat => "phoenix-v2-quckchat",
        }
    }

    /// The event a committed activity of `kind` is pushed as. QuckChat has
    /// no name for `event`, `member_joined` and `member_left`: they stay `activity`.
    pub fn activity_event(self, kind: &str) -> &'static str {
        match (self, kind) {
            (Naming::QuckChat, kinds::MESSAGE) => "message:new",
            (Naming::QuckChat, kinds::EDIT) => "message:edited",
            (Naming::QuckChat, kinds::DELETE) => "message:deleted",
            (Naming::QuckChat, kinds::REACTION_ADD) => "message:reaction:added",
            (Naming::QuckChat, kinds::REACTION_REMOVE) => "message:reaction:removed",
            _ => "activity",
        }
    }

    pub fn signal_event(self, signal: Signal) -> &'static str {
        match (self, signal) {
            (Naming::Converger, s) => s.as_str(),
            (Naming::QuckChat, Signal::Receipt) => "message:read",
            (Naming::QuckChat, Signal::UserOnline) => "user:online",
            (Naming::QuckChat, Signal::UserOffline) => "user:offline",
        }
    }

    pub fn typing_event(self, typing: bool) -> &'static str {
        match (self, typing) {
            (Naming::Converger, _) => "typing",
            (Naming::QuckChat, true) => "typing:start",
            (Naming::QuckChat, false) => "typing:stop",
        }
    }
}

/// What a client event asks of the service layer.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// An activity to write: the payload `activity:create` takes (`sender`,
    /// when given, still to be checked against the token).
    Write(Map<String, Value>),
    Typing(bool),
    /// The token's sender's receipts move forward.
    Receipt(Receipts),
}

/// A client event understood: its command, and the fields the client named
/// differently from Converger (`(converger, client)`), so that a refusal
/// from the service names the field the client wrote.
#[derive(Debug, PartialEq)]
pub struct ClientEvent {
    pub command: Command,
    pub renames: Vec<(&'static str, &'static str)>,
}

impl ClientEvent {
    fn plain(command: Command) -> ClientEvent {
        ClientEvent { command, renames: Vec::new() }
    }
}

/// A refusal's `response` (`{reason, code, field?}`) with Converger's field
/// names replaced by the client's (`renames`: see [`ClientEvent::renames`]).
pub fn rename_fields(renames: &[(&str, &str)], response: &mut Value) {
    for (ours, theirs) in renames {
        if response["field"] == *ours {
            response["field"] = Value::from(*theirs);
        }
        if let Some(reason) = response["reason"].as_str() {
            let reason = reason.replace(&format!("`{ours}`"), &format!("`{theirs}`"));
            response["reason"] = Value::from(reason);
        }
    }
}

/// The command of a client event on a joined topic; `None` when the event
/// is in neither naming. A refusal names the fields as the client wrote them.
pub fn client_event(event: &str, payload: Map<String, Value>) -> Option<ServiceResult<ClientEvent>> {
    let mapped = match event {
        "activity:create" => Ok(ClientEvent::plain(Command::Write(payload))),
        "typing" => typing_state(payload).map(|t| ClientEvent::plain(Command::Typing(t))),
        "receipt" => receipts_from_json(payload).map(|r| ClientEvent::plain(Command::Receipt(r))),
        "message:send" => message_send(payload),
        "message:edit" => {
            let fields = &["text", "attachments", "metadata", "idempotency_key", "sender"];
            on_message(event, kinds::EDIT, payload, fields)
        }
        "message:delete" => on_message(event, kinds::DELETE, payload, &["metadata", "idempotency_key", "sender"]),
        "message:reaction:add" => reaction(event, kinds::REACTION_ADD, payload),
        "message:reaction:remove" => reaction(event, kinds::REACTION_REMOVE, payload),
        "message:read" => message_read(payload),
        "typing:start" | "typing:stop" => {
            Fields::only(&payload, &[]).map(|_| ClientEvent::plain(Command::Typing(event == "typing:start")))
        }
        _ => return None,
    };
    Some(mapped)
}

/// `message:send`: `activity:create`'s payload, always a message (`parent_id` for a reply).
fn message_send(mut payload: Map<String, Value>) -> ServiceResult<ClientEvent> {
    match payload.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == kinds::MESSAGE => {}
        Some(_) => {
            return Err(ServiceError::invalid(
                "type",
                "`message:send` sends a message; other types go through `activity:create`",
            ))
        }
    }
    payload.insert("type".into(), Value::from(kinds::MESSAGE));
    Ok(ClientEvent::plain(Command::Write(payload)))
}

/// An edit or delete of `{message_id | target_id, …fields}`.
fn on_message(event: &str, kind: &str, mut payload: Map<String, Value>, fields: &[&str]) -> ServiceResult<ClientEvent> {
    let renames = take_target(event, &mut payload)?;
    let allowed: Vec<&str> = ["message_id", "target_id"].iter().chain(fields).copied().collect();
    // Only the fields this event takes; `target_id` is back under its own name by now.
    Fields::only(&payload, &allowed)?;
    payload.insert("type".into(), Value::from(kind));
    Ok(ClientEvent { command: Command::Write(payload), renames })
}

/// `{message_id | target_id, emoji, metadata?, idempotency_key?, sender?}`: the emoji goes in `text`.
fn reaction(event: &str, kind: &str, mut payload: Map<String, Value>) -> ServiceResult<ClientEvent> {
    let emoji = match payload.remove("emoji") {
        Some(Value::String(e)) => e,
        None | Some(Value::Null) => return Err(ServiceError::invalid("emoji", format!("`{event}` needs `emoji`"))),
        Some(_) => return Err(ServiceError::invalid("emoji", "`emoji` must be a string")),
    };
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return Err(ServiceError::invalid("emoji", format!("`emoji` must be 1 to {MAX_EMOJI_BYTES} bytes")));
    }
    // `text` is where Converger keeps the emoji: a client of this event names it `emoji` only.
    let mut event = on_message(event, kind, payload, &["metadata", "idempotency_key", "sender"])?;
    if let Command::Write(payload) = &mut event.command {
        payload.insert("text".into(), Value::String(emoji));
    }
    event.renames.push(("text", "emoji"));
    Ok(event)
}

/// Moves `message_id` to `target_id` (exactly one of them, required).
fn take_target(event: &str, payload: &mut Map<String, Value>) -> ServiceResult<Vec<(&'static str, &'static str)>> {
    let message_id = payload.remove("message_id").filter(|v| !v.is_null());
    let target_id = payload.get("target_id").is_some_and(|v| !v.is_null());
    match (message_id, target_id) {
        (Some(_), true) => Err(ServiceError::invalid("message_id", "give `message_id` or `target_id`, not both")),
        (None, false) => Err(ServiceError::invalid("message_id", format!("`{event}` needs `message_id`"))),
        (Some(id), false) => {
            payload.insert("target_id".into(), id);
            Ok(vec![("target_id", "message_id")])
        }
        (None, true) => Ok(Vec::new()),
    }
}

/// `message:read`: `{seq}` or `{read_seq}`, the token's sender has read up to it.
fn message_read(payload: Map<String, Value>) -> ServiceResult<ClientEvent> {
    let f = Fields::new(payload, &["seq", "read_seq"])?;
    let (seq, read_seq) = (f.integer("seq", 0..=i64::MAX)?, f.integer("read_seq", 0..=i64::MAX)?);
    let (read_seq, renames) = match (seq, read_seq) {
        (Some(_), Some(_)) => return Err(ServiceError::invalid("seq", "give `seq` or `read_seq`, not both")),
        (None, None) => return Err(ServiceError::invalid("seq", "`message:read` needs `seq`")),
        (Some(seq), None) => (seq, vec![("read_seq", "seq")]),
        (None, Some(read_seq)) => (read_seq, Vec::new()),
    };
    let receipts = Receipts { read_seq: Some(read_seq), delivered_seq: None };
    Ok(ClientEvent { command: Command::Receipt(receipts), renames })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    fn command(event: &str, payload: Value) -> Command {
        client_event(event, map(payload)).expect("known event").expect("accepted").command
    }

    /// The refused field and the reason.
    fn refusal(event: &str, payload: Value) -> (String, String) {
        match client_event(event, map(payload)).expect("known event") {
            Err(ServiceError::Validation { field, message }) => (field, message),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    const ID: &str = "0190f0f0-0000-7000-8000-000000000000";

    #[test]
    fn message_send_is_activity_create_of_a_message() {
        assert_eq!(
            command("message:send", json!({"text": "hi", "parent_id": ID})),
            Command::Write(map(json!({"type": "message", "text": "hi", "parent_id": ID})))
        );
        assert_eq!(
            command("message:send", json!({"type": "message", "text": "hi"})),
            command("message:send", json!({"text": "hi"}))
        );
        assert_eq!(refusal("message:send", json!({"type": "event", "text": "hi"})).0, "type");
        assert_eq!(
            command("activity:create", json!({"type": "reaction_add", "target_id": ID, "text": "👍"})),
            Command::Write(map(json!({"type": "reaction_add", "target_id": ID, "text": "👍"}))),
            "Converger's own event passes the payload through"
        );
    }

    #[test]
    fn edit_and_delete_take_message_id_or_target_id() {
        let edit = client_event("message:edit", map(json!({"message_id": ID, "text": "new"}))).unwrap().unwrap();
        assert_eq!(edit.command, Command::Write(map(json!({"type": "edit", "target_id": ID, "text": "new"}))));
        assert_eq!(edit.renames, vec![("target_id", "message_id")]);
        let edit = client_event("message:edit", map(json!({"target_id": ID, "metadata": {"a": 1}}))).unwrap().unwrap();
        assert_eq!(edit.command, Command::Write(map(json!({"type": "edit", "target_id": ID, "metadata": {"a": 1}}))));
        assert!(edit.renames.is_empty(), "the client wrote Converger's name");
        assert_eq!(
            command("message:delete", json!({"message_id": ID})),
            Command::Write(map(json!({"type": "delete", "target_id": ID})))
        );
        assert_eq!(
            refusal("message:delete", json!({})),
            ("message_id".into(), "`message:delete` needs `message_id`".into())
        );
        assert_eq!(refusal("message:delete", json!({"message_id": ID, "target_id": ID})).0, "message_id");
        assert_eq!(refusal("message:delete", json!({"message_id": ID, "text": "x"})).0, "text", "a delete has no text");
        assert_eq!(refusal("message:edit", json!({"message_id": ID, "emoji": "x"})).0, "emoji");
    }

    #[test]
    fn reactions_carry_the_emoji_in_text() {
        let add = client_event("message:reaction:add", map(json!({"message_id": ID, "emoji": "👍"}))).unwrap().unwrap();
        assert_eq!(add.command, Command::Write(map(json!({"type": "reaction_add", "target_id": ID, "text": "👍"}))));
        assert_eq!(add.renames, vec![("target_id", "message_id"), ("text", "emoji")]);
        assert_eq!(
            command("message:reaction:remove", json!({"target_id": ID, "emoji": "👍"})),
            Command::Write(map(json!({"type": "reaction_remove", "target_id": ID, "text": "👍"})))
        );
        assert_eq!(refusal("message:reaction:add", json!({"message_id": ID})).0, "emoji");
        assert_eq!(refusal("message:reaction:add", json!({"message_id": ID, "emoji": 1})).0, "emoji");
        assert_eq!(refusal("message:reaction:add", json!({"message_id": ID, "emoji": ""})).0, "emoji");
        assert_eq!(
            refusal("message:reaction:add", json!({"message_id": ID, "emoji": "👍", "text": "x"})).0,
            "text",
            "the emoji has one name here"
        );
    }

    #[test]
    fn read_receipts_and_typing() {
        let read = |read_seq| Command::Receipt(Receipts { read_seq: Some(read_seq), delivered_seq: None });
        assert_eq!(command("message:read", json!({"seq": 4})), read(4));
        assert_eq!(command("message:read", json!({"read_seq": 5})), read(5));
        assert_eq!(
            client_event("message:read", map(json!({"seq": 4}))).unwrap().unwrap().renames,
            vec![("read_seq", "seq")]
        );
        assert_eq!(refusal("message:read", json!({})).0, "seq");
        assert_eq!(refusal("message:read", json!({"seq": 1, "read_seq": 1})).0, "seq");
        assert_eq!(refusal("message:read", json!({"seq": -1})).0, "seq");
        assert_eq!(refusal("message:read", json!({"delivered_seq": 1})).0, "delivered_seq");
        assert_eq!(
            command("receipt", json!({"delivered_seq": 3})),
            Command::Receipt(Receipts { read_seq: None, delivered_seq: Some(3) })
        );
        assert_eq!(refusal("receipt", json!({})).0, "read_seq");

        assert_eq!(command("typing:start", json!({})), Command::Typing(true));
        assert_eq!(command("typing:stop", json!({})), Command::Typing(false));
        assert_eq!(command("typing", json!({"typing": false})), Command::Typing(false));
        assert_eq!(refusal("typing:start", json!({"typing": false})).0, "typing");
        assert!(client_event("message:sent", Map::new()).is_none(), "not an event of either naming");
    }

    #[test]
    fn refusals_from_the_service_name_the_clients_fields() {
        let add =
            client_event("message:reaction:add", map(json!({"message_id": ID, "emoji": "a b"}))).unwrap().unwrap();
        let mut response =
            json!({"reason": "`text` may not contain spaces", "code": "validation_failed", "field": "text"});
        rename_fields(&add.renames, &mut response);
        assert_eq!(
            response,
            json!({"reason": "`emoji` may not contain spaces", "code": "validation_failed", "field": "emoji"})
        );
        let mut response = json!({"reason": "`target_id` names no activity of this conversation", "code": "target_not_found", "field": "target_id"});
        rename_fields(&add.renames, &mut response);
        assert_eq!(response["field"], "message_id");
        assert_eq!(response["reason"], "`message_id` names no activity of this conversation");
        let mut response = json!({"reason": "only the author may edit", "code": "not_author"});
        rename_fields(&add.renames, &mut response);
        assert_eq!(
            response,
            json!({"reason": "only the author may edit", "code": "not_author"}),
            "no field, nothing renamed"
        );
    }

    #[test]
    fn the_topic_picks_the_naming_of_pushes() {
        assert_eq!(Naming::of_topic(&format!("conversation:{ID}")), Some((Naming::Converger, ID)));
        assert_eq!(Naming::of_topic(&format!("chat:{ID}")), Some((Naming::QuckChat, ID)));
        assert_eq!(Naming::of_topic("room:lobby"), None);
        let id: Id = ID.parse().expect("id");
        assert_eq!(Naming::QuckChat.topic(id), format!("chat:{ID}"));
        assert_ne!(Naming::QuckChat.format(), Naming::Converger.format());
        let quck: Vec<_> = [kinds::MESSAGE, kinds::EDIT, kinds::DELETE, kinds::REACTION_ADD, kinds::REACTION_REMOVE]
            .iter()
            .map(|k| Naming::QuckChat.activity_event(k))
            .collect();
        assert_eq!(
            quck,
            ["message:new", "message:edited", "message:deleted", "message:reaction:added", "message:reaction:removed"]
        );
        assert_eq!(Naming::QuckChat.activity_event(kinds::MEMBER_JOINED), "activity");
        assert_eq!(Naming::Converger.activity_event(kinds::EDIT), "activity");
        assert_eq!(Naming::QuckChat.signal_event(Signal::Receipt), "message:read");
        assert_eq!(Naming::QuckChat.signal_event(Signal::UserOnline), "user:online");
        assert_eq!(Naming::QuckChat.signal_event(Signal::UserOffline), "user:offline");
        assert_eq!(Naming::Converger.signal_event(Signal::UserOffline), "user_offline");
        assert_eq!(Naming::QuckChat.typing_event(true), "typing:start");
        assert_eq!(Naming::Converger.typing_event(false), "typing");
    }
}
