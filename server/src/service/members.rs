//! Members of a conversation and their receipts.
//!
//! Joining and leaving are activities (`member_joined`, `member_left`)
//! written through the one write path, so a resuming client sees them in
//! order with everything else; the membership row changes in the same
//! transaction. Receipts are watermarks kept on the member (never moving
//! back) and announced to the conversation's subscribers as a `receipt`
//! signal; they are not logged.

use converger_storage::{
    kinds, new_id, Entity, Id, Json, Member, MemberChange, NewActivity, Page, PageRequest, Receipts, Refusal, Scope,
    StoreError, Timestamp, Written,
};
use serde_json::{json, Map, Value};

use super::activities::MAX_SENDER_BYTES;
use super::input::Fields;
use super::{Caller, Hub, ServiceError, ServiceResult};
use crate::engine::Signal;

pub const MAX_ROLE_BYTES: usize = 64;

/// A validated member to add.
#[derive(Debug)]
pub struct MemberInput {
    pub sender: String,
    pub role: Option<String>,
    pub metadata: Json,
}

impl MemberInput {
    /// `{sender, role?, metadata?}`.
    pub fn from_json(map: Map<String, Value>) -> ServiceResult<MemberInput> {
        let f = Fields::new(map, &["sender", "role", "metadata"])?;
        Ok(MemberInput {
            sender: f.required_string("sender", MAX_SENDER_BYTES)?,
            role: f.non_blank_string("role", MAX_ROLE_BYTES)?,
            metadata: f.object("metadata")?.unwrap_or_else(Json::empty_object),
        })
    }
}

/// `{read_seq?, delivered_seq?}`: at least one, each ≥ 0.
pub fn receipts_from_json(map: Map<String, Value>) -> ServiceResult<Receipts> {
    let f = Fields::new(map, &["read_seq", "delivered_seq"])?;
    let receipts = Receipts {
        read_seq: f.integer("read_seq", 0..=i64::MAX)?,
        delivered_seq: f.integer("delivered_seq", 0..=i64::MAX)?,
    };
    if receipts.read_seq.is_none() && receipts.delivered_seq.is_none() {
        return Err(ServiceError::invalid("read_seq", "give `read_seq`, `delivered_seq` or both"));
    }
    Ok(receipts)
}

impl Hub {
    /// Adds `input.sender` to the conversation (or updates its role and
    /// metadata): writes `member_joined` and answers the member and the activity.
    pub async fn add_member(
        &self,
        caller: Caller,
        conversation_id: Id,
        input: MemberInput,
    ) -> ServiceResult<(Member, Written)> {
        let metadata = Json::from_value(&json!({"role": input.role, "metadata": input.metadata.to_value()}));
        let change = MemberChange::Join { role: input.role, metadata: input.metadata };
        let written = self
            .member_activity(caller, conversation_id, &input.sender, kinds::MEMBER_JOINED, metadata, change, None)
            .await?;
        let member = self.store.get_member(caller.scope(), conversation_id, &input.sender).await?;
        Ok((member, written))
    }

    /// Removes `sender` from the conversation: writes `member_left`; 404 when it is not a member.
    pub async fn remove_member(&self, caller: Caller, conversation_id: Id, sender: &str) -> ServiceResult<Written> {
        let result = self
            .member_activity(
                caller,
                conversation_id,
                sender,
                kinds::MEMBER_LEFT,
                Json::empty_object(),
                MemberChange::Leave,
                None,
            )
            .await;
        match result {
            Err(ServiceError::Publish(crate::engine::PublishError::Store(StoreError::Refused(Refusal::NotMember)))) => {
                Err(StoreError::NotFound(Entity::Member).into())
            }
            other => other,
        }
    }

    /// Writes `member_joined` for `input.sender` keyed by `idempotency_key`:
    /// the same key again (a provider resending the webhook that made a
    /// contact a member) writes nothing new.
    pub(crate) async fn add_member_once(
        &self,
        caller: Caller,
        conversation_id: Id,
        input: MemberInput,
        idempotency_key: String,
    ) -> ServiceResult<Written> {
        let metadata = Json::from_value(&json!({"role": input.role, "metadata": input.metadata.to_value()}));
        let change = MemberChange::Join { role: input.role, metadata: input.metadata };
        let kind = kinds::MEMBER_JOINED;
        self.member_activity(caller, conversation_id, &input.sender, kind, metadata, change, Some(idempotency_key))
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn member_activity(
        &self,
        caller: Caller,
        conversation_id: Id,
        sender: &str,
        kind: &str,
        metadata: Json,
        change: MemberChange,
        idempotency_key: Option<String>,
    ) -> ServiceResult<Written> {
        self.admit_activities(caller.tenant_id(), 1).await?;
        let deliver_to = self.routes.targets(&*self.store, caller.scope(), conversation_id, None, kind).await?;
        // Cached: a tenant without event endpoints costs the write nothing more.
        let announce = match converger_storage::EventType::of_member_kind(kind) {
            Some(event) => crate::engine::event_types::wants(&*self.store, caller.tenant_id(), event).await,
            None => false,
        };
        let activity = NewActivity {
            id: new_id(),
            tenant_id: caller.tenant_id(),
            conversation_id,
            kind: kind.into(),
            text: None,
            attachments: None,
            sender: sender.to_string(),
            metadata,
            idempotency_key,
            created_at: Timestamp::now(),
            deliver_to,
            target_id: None,
            parent_id: None,
            author_only: false,
            member: Some(change),
            announce,
            traceparent: None,
        };
        // Membership changes are the integrator's own (API key): no hook.
        Ok(self.publisher.publish(activity, None).await?)
    }

    pub async fn list_members(
        &self,
        scope: Scope,
        conversation_id: Id,
        page: PageRequest,
    ) -> ServiceResult<Page<Member>> {
        Ok(self.store.list_members(scope, conversation_id, page).await?)
    }

    pub async fn get_member(&self, scope: Scope, conversation_id: Id, sender: &str) -> ServiceResult<Member> {
        Ok(self.store.get_member(scope, conversation_id, sender).await?)
    }

    /// Moves `sender`'s watermarks forward (a seq at or below the stored one
    /// changes nothing) and, when one moved, tells the conversation's
    /// subscribers with a `receipt` signal. 403 `not_a_member`, 422 past the last seq.
    pub async fn update_receipts(
        &self,
        scope: Scope,
        conversation_id: Id,
        sender: &str,
        receipts: Receipts,
    ) -> ServiceResult<Member> {
        let (member, moved) = match self.store.update_receipts(scope, conversation_id, sender, receipts).await {
            Err(StoreError::Refused(Refusal::ReceiptAhead)) => {
                return Err(self.receipt_ahead(scope, conversation_id, receipts).await)
            }
            other => other?,
        };
        if moved {
            let data = json!({
                "sender": member.sender,
                "read_seq": member.read_seq,
                "delivered_seq": member.delivered_seq,
            });
            // The receipt is stored: a full ring only costs the live signal.
            if self.publisher.signal(conversation_id, Signal::Receipt, data).is_err() {
                tracing::debug!(%conversation_id, "receipt signal dropped: owner ring full");
            }
        }
        Ok(member)
    }

    /// The refusal of a receipt past the last seq, naming the watermark that
    /// is (the store says only that one is): `delivered_seq` when `read_seq`
    /// is not past it.
    async fn receipt_ahead(&self, scope: Scope, conversation_id: Id, receipts: Receipts) -> ServiceError {
        let last_seq = self.store.get_conversation(scope, conversation_id).await.map(|c| c.last_seq).ok();
        // A write since may have moved the last seq: a lone watermark is the one.
        let read_ahead = match (receipts.read_seq, last_seq) {
            (None, _) => false,
            (Some(read), Some(last)) => read > last || receipts.delivered_seq.is_none(),
            (Some(_), None) => true,
        };
        let field = if read_ahead { "read_seq" } else { "delivered_seq" };
        let last = last_seq.map_or(String::new(), |l| format!(" ({l})"));
        ServiceError::invalid(field, format!("`{field}` may not pass the conversation's last seq{last}"))
    }
}
