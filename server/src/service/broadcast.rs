//! The server API's broadcast: one activity written to many conversations
//! of the tenant (`POST /api/v1/broadcast`), one seq in each, through the one
//! write path ([`Hub::write_activities`]: every owner shard is crossed once
//! for all its conversations, and each commits in its group commit).
//!
//! - The activity is validated once, like a single write's body, its fields
//!   named `activity.<field>`.
//! - Idempotency: the request's key (the `Idempotency-Key` header or the
//!   top-level `idempotency_key`, equal if both) becomes one key per
//!   conversation, `<key>:<conversation id>`, so a retried broadcast writes
//!   nothing twice and answers each conversation's original activity. The
//!   activity itself may not carry a key.
//! - The ids are 1 to [`MAX_CONVERSATIONS`], each once: a repeated id is
//!   refused (422 naming it) rather than collapsed, so the results line up
//!   with the request one for one.
//! - The tenant's activity budget is taken for the whole broadcast at once
//!   (n activities), or the whole broadcast is refused (429).

use converger_storage::{Id, Written};
use serde_json::{Map, Value};

use super::activities::{ActivityInput, MAX_IDEMPOTENCY_KEY_BYTES};
use super::input::{parse_id, Fields};
use super::{Caller, Hub, ServiceError, ServiceResult};

/// Conversations one broadcast may name.
pub const MAX_CONVERSATIONS: usize = 1000;

/// What a derived key adds to the request's: `:` and a 36-character id.
const KEY_SUFFIX_BYTES: usize = 1 + 36;

/// The longest key a broadcast takes, so that each derived key fits.
pub const MAX_BROADCAST_KEY_BYTES: usize = MAX_IDEMPOTENCY_KEY_BYTES - KEY_SUFFIX_BYTES;

/// A validated broadcast.
#[derive(Debug)]
pub struct BroadcastInput {
    pub conversation_ids: Vec<Id>,
    pub activity: ActivityInput,
    pub idempotency_key: Option<String>,
}

impl BroadcastInput {
    /// `{conversation_ids, activity, idempotency_key?}`; `transport_key` is
    /// the key the transport carried beside the body (an HTTP header).
    pub fn from_json(map: Map<String, Value>, transport_key: Option<&str>) -> ServiceResult<BroadcastInput> {
        let f = Fields::new(map, &["conversation_ids", "activity", "idempotency_key"])?;
        let ids = f
            .array("conversation_ids")?
            .ok_or_else(|| ServiceError::invalid("conversation_ids", "`conversation_ids` is required"))?;
        if ids.is_empty() || ids.len() > MAX_CONVERSATIONS {
            let why = format!("`conversation_ids` must name 1 to {MAX_CONVERSATIONS} conversations");
            return Err(ServiceError::invalid("conversation_ids", why));
        }
        let mut conversation_ids = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for (i, v) in ids.iter().enumerate() {
            let field = format!("conversation_ids[{i}]");
            let id = v.as_str().and_then(parse_id).ok_or_else(|| {
                ServiceError::invalid(&field, format!("`{field}` must be a conversation id (a canonical UUID)"))
            })?;
            if !seen.insert(id) {
                return Err(ServiceError::invalid(
                    &field,
                    format!("`{field}` repeats {id}: name each conversation once"),
                ));
            }
            conversation_ids.push(id);
        }
        let field_key = f.non_blank_string("idempotency_key", MAX_IDEMPOTENCY_KEY_BYTES)?;
        let idempotency_key = match (transport_key, field_key) {
            (Some(h), Some(k)) if h != k => {
                let why = "the Idempotency-Key header and the `idempotency_key` field differ";
                return Err(ServiceError::invalid("idempotency_key", why));
            }
            (h, k) => h.map(str::to_string).or(k),
        };
        if let Some(key) = &idempotency_key {
            if key.trim().is_empty() || key.len() > MAX_BROADCAST_KEY_BYTES {
                let why = format!(
                    "a broadcast's idempotency key must be 1 to {MAX_BROADCAST_KEY_BYTES} bytes (each conversation's is `<key>:<conversation id>`)"
                );
                return Err(ServiceError::invalid("idempotency_key", why));
            }
        }
        let activity = f.map("activity")?.ok_or_else(|| ServiceError::invalid("activity", "`activity` is required"))?;
        if activity.get("idempotency_key").is_some_and(|v| !v.is_null()) {
            let why = "give the key once for the broadcast (the Idempotency-Key header or `idempotency_key`): each conversation gets `<key>:<conversation id>`";
            return Err(ServiceError::invalid("activity.idempotency_key", why));
        }
        let activity = ActivityInput::from_json(activity.clone(), None).map_err(|e| nested("activity", e))?;
        Ok(BroadcastInput { conversation_ids, activity, idempotency_key })
    }
}

/// An error of a nested object's field, named `<outer>.<field>`.
fn nested(outer: &str, e: ServiceError) -> ServiceError {
    match e {
        ServiceError::Validation { field, message } => {
            ServiceError::Validation { field: format!("{outer}.{field}"), message }
        }
        ServiceError::InvalidJson { field: Some(field), error } => {
            ServiceError::InvalidJson { field: Some(format!("{outer}.{field}")), error }
        }
        other => other,
    }
}

/// The key of one conversation's write in a broadcast keyed `key`.
pub fn derived_key(key: &str, conversation: Id) -> String {
    format!("{key}:{conversation}")
}

impl Hub {
    /// Writes the broadcast's activity to each conversation; one result per
    /// conversation, in the request's order. The whole broadcast is refused
    /// (rate limited) when the tenant's budget has no room for all of it.
    pub async fn broadcast(
        &self,
        caller: Caller,
        input: BroadcastInput,
    ) -> ServiceResult<Vec<(Id, ServiceResult<Written>)>> {
        let BroadcastInput { conversation_ids, activity, idempotency_key } = input;
        self.admit_activities(caller.tenant_id(), conversation_ids.len()).await?;
        let items = conversation_ids
            .iter()
            .map(|&id| {
                let key = idempotency_key.as_deref().map(|k| derived_key(k, id));
                (id, ActivityInput { idempotency_key: key, ..activity.clone() })
            })
            .collect();
        let results = self.write_activities(caller, items).await;
        Ok(conversation_ids.into_iter().zip(results).collect())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(v: Value, header: Option<&str>) -> ServiceResult<BroadcastInput> {
        BroadcastInput::from_json(v.as_object().cloned().expect("object"), header)
    }

    fn field(r: ServiceResult<BroadcastInput>) -> String {
        match r {
            Err(ServiceError::Validation { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    const A: &str = "0190f0f0-0000-7000-8000-000000000001";
    const B: &str = "0190f0f0-0000-7000-8000-000000000002";

    #[test]
    fn reads_the_ids_the_activity_and_the_key() {
        let b = input(json!({"conversation_ids": [A, B], "activity": {"sender": "bot", "text": "hi"}}), Some("k"))
            .expect("ok");
        assert_eq!(b.conversation_ids.len(), 2);
        assert_eq!((b.activity.kind.as_str(), b.idempotency_key.as_deref()), ("message", Some("k")));
        assert_eq!(derived_key("k", b.conversation_ids[1]), format!("k:{B}"));
        let b = input(
            json!({"conversation_ids": [A], "activity": {"sender": "s", "text": "x"}, "idempotency_key": "k"}),
            Some("k"),
        )
        .expect("equal keys");
        assert_eq!(b.idempotency_key.as_deref(), Some("k"));
    }

    #[test]
    fn refuses_repeats_bad_ids_bad_counts_and_names_nested_fields() {
        let msg = json!({"sender": "s", "text": "x"});
        assert_eq!(field(input(json!({"conversation_ids": [A, B, A], "activity": msg}), None)), "conversation_ids[2]");
        assert_eq!(
            field(input(json!({"conversation_ids": [A, "nope"], "activity": msg}), None)),
            "conversation_ids[1]"
        );
        assert_eq!(field(input(json!({"conversation_ids": [], "activity": msg}), None)), "conversation_ids");
        let many: Vec<String> = (0..=MAX_CONVERSATIONS as u128)
            .map(|i| Id::from_u128(0x0190f0f0_0000_7000_8000_000000000000 + i).to_string())
            .collect();
        assert_eq!(field(input(json!({"conversation_ids": many, "activity": msg}), None)), "conversation_ids");
        assert_eq!(field(input(json!({"activity": msg}), None)), "conversation_ids");
        assert_eq!(field(input(json!({"conversation_ids": [A]}), None)), "activity");
        assert_eq!(field(input(json!({"conversation_ids": [A], "activity": {"text": "x"}}), None)), "activity.sender");
        let keyed = json!({"sender": "s", "text": "x", "idempotency_key": "k"});
        assert_eq!(field(input(json!({"conversation_ids": [A], "activity": keyed}), None)), "activity.idempotency_key");
        let long = "k".repeat(MAX_BROADCAST_KEY_BYTES + 1);
        assert_eq!(field(input(json!({"conversation_ids": [A], "activity": msg}), Some(&long))), "idempotency_key");
        assert_eq!(
            field(input(json!({"conversation_ids": [A], "activity": msg, "idempotency_key": "a"}), Some("b"))),
            "idempotency_key"
        );
        assert_eq!(field(input(json!({"conversation_ids": [A], "activity": msg, "extra": 1}), None)), "extra");
    }
}
