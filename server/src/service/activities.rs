//! Activity operations: create through the [`super::Publisher`] (the one
//! write path: owner shard, group commit, idempotency), and read a
//! conversation's activities in seq order after a watermark.
//!
//! Idempotency: the key may come from the transport (an HTTP header) and/or
//! the payload (`idempotency_key`); when both are given they must be equal,
//! so a client never gets a replay keyed differently from what it believes.

use converger_storage::{
    kinds, new_id, Activity, Id, Json, NewActivity, PageRequest, Scope, StoreError, Timestamp, Written,
};
use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value};

use super::input::Fields;
use super::json;
use super::{Caller, Hub, ServiceError, ServiceResult};

/// Activity types a client may persist; `typing` is ephemeral (WebSocket
/// only), and `member_joined` / `member_left` are written by the members
/// endpoints.
pub const PERSISTED_TYPES: &[&str] =
    &[kinds::MESSAGE, kinds::EVENT, kinds::EDIT, kinds::DELETE, kinds::REACTION_ADD, kinds::REACTION_REMOVE];
pub const MAX_TYPE_BYTES: usize = 32;
/// An emoji (in `text` of a reaction): a short token, e.g. `👍` or `:+1:`.
pub const MAX_EMOJI_BYTES: usize = 64;
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
pub const MAX_SENDER_BYTES: usize = 256;
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// A write at its owner ([`Hub::submit_activity`]): resolves once durable.
pub type PendingWrite = LocalBoxFuture<'static, ServiceResult<Written>>;

/// A validated activity to write.
#[derive(Clone, Debug)]
pub struct ActivityInput {
    pub kind: String,
    pub text: Option<String>,
    pub attachments: Option<Json>,
    pub sender: String,
    pub metadata: Json,
    pub idempotency_key: Option<String>,
    /// The message an edit, delete or reaction acts on.
    pub target_id: Option<Id>,
    /// The message a reply answers.
    pub parent_id: Option<Id>,
    /// Set by a transport whose caller is a client (a token): it may edit or
    /// delete only its own messages. An API key's writes may act on any.
    pub author_only: bool,
}

/// An activity's fields as they arrived separately (the binary protocol's
/// draft, an adapter's inbound message), the JSON ones as raw text.
#[derive(Debug, Default)]
pub struct Parts {
    pub kind: Option<String>,
    pub text: Option<String>,
    pub attachments: Option<String>,
    pub sender: String,
    pub metadata: Option<String>,
    pub idempotency_key: Option<String>,
    pub target_id: Option<Id>,
    pub parent_id: Option<Id>,
}

impl ActivityInput {
    /// `{type?, text?, attachments?, sender, metadata?, idempotency_key?,
    /// target_id?, parent_id?}`; `transport_key` is the key the transport
    /// carried beside the payload.
    pub fn from_json(map: Map<String, Value>, transport_key: Option<&str>) -> ServiceResult<ActivityInput> {
        let f = Fields::new(
            map,
            &["type", "text", "attachments", "sender", "metadata", "idempotency_key", "target_id", "parent_id"],
        )?;
        let kind = f.string("type", MAX_TYPE_BYTES)?;
        let text = f.string("text", MAX_TEXT_BYTES)?;
        let attachments = f.array_of_objects("attachments")?;
        let field_key = f.non_blank_string("idempotency_key", MAX_IDEMPOTENCY_KEY_BYTES)?;
        let idempotency_key = match (transport_key, field_key) {
            (Some(h), Some(f)) if h != f => {
                return Err(ServiceError::invalid(
                    "idempotency_key",
                    "the Idempotency-Key header and the `idempotency_key` field differ",
                ))
            }
            (Some(h), _) => Some(check_key(h)?),
            (None, f) => f,
        };
        let sender = f.required_string("sender", MAX_SENDER_BYTES)?;
        let metadata = f.object("metadata")?;
        let links = (f.id("target_id")?, f.id("parent_id")?);
        ActivityInput::checked(kind, text, attachments, sender, metadata, idempotency_key, links)
    }

    /// The same activity from fields that arrived separately, the JSON ones
    /// as raw text (the binary protocol's draft): the same rules as
    /// [`ActivityInput::from_json`] (strict JSON, [`json::check`]), and the
    /// JSON kept as the client wrote it.
    pub fn from_parts(parts: Parts) -> ServiceResult<ActivityInput> {
        let Parts { kind, text, attachments, sender, metadata, idempotency_key, target_id, parent_id } = parts;
        let too_long = |name: &str, value: &Option<String>, max: usize| match value {
            Some(v) if v.len() > max => {
                Err(ServiceError::invalid(name, format!("`{name}` is longer than {max} bytes")))
            }
            _ => Ok(()),
        };
        too_long("type", &kind, MAX_TYPE_BYTES)?;
        too_long("text", &text, MAX_TEXT_BYTES)?;
        let sender = Some(sender).filter(|s| !s.trim().is_empty());
        too_long("sender", &sender, MAX_SENDER_BYTES)?;
        let sender = sender.ok_or_else(|| ServiceError::invalid("sender", "`sender` is required"))?;
        let idempotency_key = idempotency_key.map(|k| check_key(&k)).transpose()?;
        let attachments = attachments
            .map(|a| {
                let doc = json::document(a).map_err(|e| ServiceError::bad_json("attachments", e))?;
                match serde_json::from_str::<Vec<Value>>(doc.as_str()) {
                    Ok(items) if items.iter().all(Value::is_object) => Ok(doc),
                    _ => Err(ServiceError::invalid("attachments", "`attachments` must be an array of JSON objects")),
                }
            })
            .transpose()?;
        let metadata = metadata
            .map(|m| match json::document(m) {
                Ok(doc) if doc.is_object() => Ok(doc),
                Ok(_) => Err(ServiceError::invalid("metadata", "`metadata` must be a JSON object")),
                Err(e) => Err(ServiceError::bad_json("metadata", e)),
            })
            .transpose()?;
        ActivityInput::checked(kind, text, attachments, sender, metadata, idempotency_key, (target_id, parent_id))
    }

    /// The rules across fields, once the fields themselves are well-formed
    /// (docs/api.md "Message lifecycle"); the rules against stored state
    /// (the target exists, is a message, is not deleted …) are the store's.
    fn checked(
        kind: Option<String>,
        text: Option<String>,
        attachments: Option<Json>,
        sender: String,
        metadata: Option<Json>,
        idempotency_key: Option<String>,
        (target_id, parent_id): (Option<Id>, Option<Id>),
    ) -> ServiceResult<ActivityInput> {
        let kind = kind.unwrap_or_else(|| kinds::MESSAGE.into());
        if kind == "typing" {
            return Err(ServiceError::invalid("type", "`typing` is ephemeral: send it over a real-time connection"));
        }
        if kind == kinds::MEMBER_JOINED || kind == kinds::MEMBER_LEFT {
            return Err(ServiceError::invalid(
                "type",
                format!("`{kind}` is written by the members endpoints (POST/DELETE …/members)"),
            ));
        }
        if !PERSISTED_TYPES.contains(&kind.as_str()) {
            return Err(ServiceError::invalid(
                "type",
                format!("unknown activity type `{kind}` (expected one of: {})", PERSISTED_TYPES.join(", ")),
            ));
        }
        let has_target = kinds::has_target(&kind);
        match (has_target, target_id) {
            (true, None) => return Err(ServiceError::invalid("target_id", format!("a {kind} needs `target_id`"))),
            (false, Some(_)) => {
                return Err(ServiceError::invalid("target_id", format!("a {kind} takes no `target_id`")))
            }
            _ => {}
        }
        if parent_id.is_some() && kind != kinds::MESSAGE {
            return Err(ServiceError::invalid("parent_id", "only a message may reply (`parent_id`)"));
        }
        let metadata = metadata.unwrap_or_else(Json::empty_object);
        let empty_metadata = metadata.to_value().as_object().is_none_or(|m| m.is_empty());
        match kind.as_str() {
            kinds::MESSAGE if text.is_none() && attachments.is_none() => {
                return Err(ServiceError::invalid("text", "a message needs `text` or `attachments`"))
            }
            kinds::EDIT if text.is_none() && attachments.is_none() && empty_metadata => {
                return Err(ServiceError::invalid("text", "an edit needs new `text`, `attachments` or `metadata`"))
            }
            kinds::DELETE if text.is_some() || attachments.is_some() => {
                let field = if text.is_some() { "text" } else { "attachments" };
                return Err(ServiceError::invalid(field, "a delete carries no content"));
            }
            kinds::REACTION_ADD | kinds::REACTION_REMOVE => {
                if attachments.is_some() {
                    return Err(ServiceError::invalid("attachments", "a reaction carries no attachments"));
                }
                check_emoji(text.as_deref())?;
            }
            _ => {}
        }
        Ok(ActivityInput {
            kind,
            text,
            attachments,
            sender,
            metadata,
            idempotency_key,
            target_id,
            parent_id,
            author_only: false,
        })
    }

    /// The same activity written by a client (see [`ActivityInput::author_only`]).
    pub fn by_client(self) -> ActivityInput {
        ActivityInput { author_only: true, ..self }
    }
}

/// A reaction's emoji: 1 to [`MAX_EMOJI_BYTES`] bytes, no whitespace or control characters.
fn check_emoji(text: Option<&str>) -> ServiceResult<()> {
    match text {
        None => Err(ServiceError::invalid("text", "a reaction needs its emoji in `text`")),
        Some(e) if e.is_empty() || e.len() > MAX_EMOJI_BYTES => {
            Err(ServiceError::invalid("text", format!("a reaction's emoji must be 1 to {MAX_EMOJI_BYTES} bytes")))
        }
        Some(e) if e.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(ServiceError::invalid("text", "a reaction's emoji may not contain spaces or control characters"))
        }
        Some(_) => Ok(()),
    }
}

/// Whether an ephemeral `typing` payload (`{"typing": bool}`, true when
/// absent) says the sender is typing; anything else is refused, on every
/// transport alike.
pub fn typing_state(payload: Map<String, Value>) -> ServiceResult<bool> {
    let f = Fields::new(payload, &["typing"])?;
    Ok(f.boolean("typing")?.unwrap_or(true))
}

fn check_key(key: &str) -> ServiceResult<String> {
    if key.trim().is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(ServiceError::invalid(
            "idempotency_key",
            format!("an idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes"),
        ));
    }
    Ok(key.to_string())
}

/// Answers decided early (`Some`) keep their places; the others (`None`) take
/// the answers of the items sent on, in order (`missing` if there are too few).
pub fn fill_in_order<T>(
    slots: Vec<Option<T>>,
    answers: impl IntoIterator<Item = T>,
    missing: impl Fn() -> T,
) -> Vec<T> {
    let mut answers = answers.into_iter();
    slots.into_iter().map(|slot| slot.unwrap_or_else(|| answers.next().unwrap_or_else(&missing))).collect()
}

fn new_activity(caller: Caller, conversation_id: Id, input: ActivityInput, deliver_to: Vec<Id>) -> NewActivity {
    NewActivity {
        id: new_id(),
        tenant_id: caller.tenant_id(),
        conversation_id,
        kind: input.kind,
        text: input.text,
        attachments: input.attachments,
        sender: input.sender,
        metadata: input.metadata,
        idempotency_key: input.idempotency_key,
        created_at: Timestamp::now(),
        deliver_to,
        announce: false,
        target_id: input.target_id,
        parent_id: input.parent_id,
        author_only: input.author_only,
        member: None,
        traceparent: None,
    }
}

impl Hub {
    /// Writes one activity; answers once it is durable. A repeated idempotency
    /// key answers `Written::Replay` with the original, even if the
    /// conversation closed since.
    pub async fn create_activity(
        &self,
        caller: Caller,
        conversation_id: Id,
        input: ActivityInput,
    ) -> ServiceResult<Written> {
        self.create_activity_via(caller, conversation_id, input, None).await
    }

    /// [`Hub::create_activity`] for an activity that came in through channel
    /// `origin` (an inbound message, an echo reply): it is not delivered back
    /// out to that channel.
    pub async fn create_activity_via(
        &self,
        caller: Caller,
        conversation_id: Id,
        input: ActivityInput,
        origin: Option<Id>,
    ) -> ServiceResult<Written> {
        self.submit_activity(caller, conversation_id, input, origin).await?.await
    }

    /// [`Hub::create_activity_via`] in two steps, for a transport that keeps
    /// several writes in flight: once this returns, the activity is admitted
    /// and at its owner (writes submitted one after another take their
    /// conversation's seqs in that order); the returned future answers once
    /// it is durable.
    pub async fn submit_activity(
        &self,
        caller: Caller,
        conversation_id: Id,
        input: ActivityInput,
        origin: Option<Id>,
    ) -> ServiceResult<PendingWrite> {
        self.admit_activities(caller.tenant_id(), 1).await?;
        let targets = self.routes.resolve(&*self.store, caller.scope(), conversation_id, origin, &input.kind).await?;
        let activity = new_activity(caller, conversation_id, input, targets.deliver_to);
        let submitted = self.publisher.submit(activity, targets.hook)?;
        Ok(Box::pin(async move { Ok(submitted.await?) }))
    }

    /// Writes many activities (a batched publish); each answers on its own, in
    /// order, and activities of one conversation take seqs in that order.
    pub async fn create_activities(
        &self,
        caller: Caller,
        items: Vec<(Id, ActivityInput)>,
    ) -> Vec<ServiceResult<Written>> {
        // The whole batch passes the tenant's activity budget or none of it does.
        if let Err(e) = self.admit_activities(caller.tenant_id(), items.len()).await {
            return items.iter().map(|_| Err(e.again())).collect();
        }
        self.write_activities(caller, items).await
    }

    /// [`Hub::create_activities`] once the tenant's budget admitted them.
    pub(super) async fn write_activities(
        &self,
        caller: Caller,
        items: Vec<(Id, ActivityInput)>,
    ) -> Vec<ServiceResult<Written>> {
        // An item whose delivery targets cannot be looked up is not written (it
        // would lack its delivery row); the others go to their owners together.
        let mut results: Vec<Option<ServiceResult<Written>>> = Vec::with_capacity(items.len());
        let mut new = Vec::with_capacity(items.len());
        for (conversation, input) in items {
            match self.routes.resolve(&*self.store, caller.scope(), conversation, None, &input.kind).await {
                Ok(targets) => {
                    new.push((new_activity(caller, conversation, input, targets.deliver_to), targets.hook));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let written = self.publisher.publish_many(new).await.into_iter().map(|w| w.map_err(ServiceError::from));
        fill_in_order(
            results,
            written,
            || Err(StoreError::Internal("the publisher answered fewer items".into()).into()),
        )
    }

    /// Activities with seq > `after_seq` (at most `limit`), messages in
    /// their current state (`reader`: whose reactions count as `me`), and
    /// the conversation's last seq (never below the last one returned).
    pub async fn list_activities(
        &self,
        scope: Scope,
        conversation_id: Id,
        after_seq: i64,
        limit: u32,
        reader: Option<&str>,
    ) -> ServiceResult<(Vec<Activity>, i64)> {
        let conversation = self.store.get_conversation(scope, conversation_id).await?;
        let limit = PageRequest::clamp(limit);
        let activities = self.store.read_range(scope, conversation_id, after_seq, limit, reader).await?;
        // A write may commit between the two reads: last_seq must still cover the page.
        let last_seq = activities.last().map_or(conversation.last_seq, |a| a.seq.max(conversation.last_seq));
        Ok((activities, last_seq))
    }

    /// The replies to message `parent_id` with seq > `after_seq`, like
    /// [`Hub::list_activities`]; 404 when the parent is not a message of the
    /// conversation.
    pub async fn list_replies(
        &self,
        scope: Scope,
        conversation_id: Id,
        parent_id: Id,
        after_seq: i64,
        limit: u32,
        reader: Option<&str>,
    ) -> ServiceResult<Vec<Activity>> {
        Ok(self
            .store
            .read_replies(scope, conversation_id, parent_id, after_seq, PageRequest::clamp(limit), reader)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(v: Value, header: Option<&str>) -> ServiceResult<ActivityInput> {
        ActivityInput::from_json(v.as_object().cloned().expect("object"), header)
    }

    fn field(r: ServiceResult<ActivityInput>) -> String {
        match r {
            Err(ServiceError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_to_a_message_and_takes_the_key_from_header_or_field() {
        let a = input(json!({"sender": "s", "text": "hi"}), Some("k1")).expect("ok");
        assert_eq!((a.kind.as_str(), a.idempotency_key.as_deref()), ("message", Some("k1")));
        let a = input(json!({"sender": "s", "text": "hi", "idempotency_key": "k2"}), None).expect("ok");
        assert_eq!(a.idempotency_key.as_deref(), Some("k2"));
        let a = input(json!({"sender": "s", "text": "hi", "idempotency_key": "k"}), Some("k")).expect("equal");
        assert_eq!(a.idempotency_key.as_deref(), Some("k"));
        let a = input(json!({"sender": "s", "type": "event"}), None).expect("an event needs no text");
        assert_eq!(a.metadata.as_str(), "{}");
    }

    #[test]
    fn refuses_typing_unknown_types_mismatched_keys_and_missing_fields() {
        assert_eq!(field(input(json!({"sender": "s", "type": "typing"}), None)), "type");
        assert_eq!(field(input(json!({"sender": "s", "type": "shout", "text": "x"}), None)), "type");
        assert_eq!(
            field(input(json!({"sender": "s", "text": "x", "idempotency_key": "a"}), Some("b"))),
            "idempotency_key"
        );
        assert_eq!(field(input(json!({"text": "x"}), None)), "sender");
        assert_eq!(field(input(json!({"sender": "s"}), None)), "text");
        assert_eq!(field(input(json!({"sender": "s", "text": "x", "attachments": [1]}), None)), "attachments");
        assert_eq!(field(input(json!({"sender": "s", "text": "x", "metadata": "m"}), None)), "metadata");
        assert_eq!(field(input(json!({"sender": "s", "text": "x"}), Some(" "))), "idempotency_key");
    }
}
