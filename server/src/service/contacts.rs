//! A provider's contact as a member of their conversation: on channels whose
//! adapter says so ([`Adapter::contact_receipts`]: WhatsApp), the person a
//! conversation's `external_id` names (also the `sender` of every message
//! they send) is a member, and the provider's `delivered` / `read` reports are
//! that member's receipts.
//!
//! - The contact becomes a member the first time Converger hears from or
//!   about them on the channel: their first inbound message (its
//!   `member_joined` comes just before that message in the log), or the first
//!   `delivered` / `read` report on a message sent to them (a conversation
//!   the business opened). Role `contact`; metadata `{"profile_name"}` when
//!   the provider told it.
//! - Once: the `member_joined` is keyed by the provider's id of the message or
//!   report that caused it, so a webhook the provider resends adds nothing,
//!   and a conversation this inbound message just created needs no lookup.
//!   Two first messages racing on a conversation that existed before (made
//!   over REST) may each write one; the member is the same.
//!   A contact removed over the API is a member again with their next message.
//! - Receipts: a report names a delivery, whose activity's `seq` becomes the
//!   contact's `delivered_seq` (`delivered`) or `read_seq` (`read`; delivered
//!   never trails read). Watermarks never move back (the store's rule), so a
//!   late `delivered` changes nothing. A moved watermark is told to the
//!   conversation's subscribers as a `receipt` signal, like any receipt.
//!
//! [`Adapter::contact_receipts`]: crate::adapters::Adapter::contact_receipts

use converger_storage::{Conversation, Delivery, Json, Receipts, Scope, StoreError};
use serde_json::json;

use super::members::MemberInput;
use super::{Caller, Hub, ServiceError, ServiceResult};

/// The role of a contact's member.
pub const CONTACT_ROLE: &str = "contact";

/// The idempotency key of the `member_joined` `cause` brings: within the
/// 255 bytes every key keeps (the binary protocol carries it with a u8
/// length), a long cause by its SHA-256.
fn join_key(cause: &str) -> String {
    let key = format!("member_joined:{cause}");
    if key.len() <= super::activities::MAX_IDEMPOTENCY_KEY_BYTES {
        return key;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(cause.as_bytes());
    format!("member_joined:sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// What a provider's report does to the contact's receipts.
fn receipts_for(status: &str, seq: i64) -> Option<Receipts> {
    match status {
        "delivered" => Some(Receipts { read_seq: None, delivered_seq: Some(seq) }),
        "read" => Some(Receipts { read_seq: Some(seq), delivered_seq: None }),
        _ => None,
    }
}

impl Hub {
    /// Makes the conversation's contact (its `external_id`) a member unless
    /// they are one; `absent`: the caller knows they are not (a conversation
    /// just created). `cause` is the provider's id of the message or report
    /// that brought them (the `member_joined`'s idempotency key).
    pub(crate) async fn ensure_contact(
        &self,
        caller: Caller,
        conversation: &Conversation,
        absent: bool,
        cause: &str,
        profile_name: Option<&str>,
    ) -> ServiceResult<()> {
        let Some(contact) = conversation.external_id.as_deref() else { return Ok(()) };
        if !absent {
            match self.store.get_member(caller.scope(), conversation.id, contact).await {
                Ok(_) => return Ok(()),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let metadata = match profile_name {
            Some(name) => json!({"profile_name": name}),
            None => json!({}),
        };
        let input = MemberInput {
            sender: contact.to_string(),
            role: Some(CONTACT_ROLE.into()),
            metadata: Json::from_value(&metadata),
        };
        self.add_member_once(caller, conversation.id, input, join_key(cause)).await?;
        Ok(())
    }

    /// Moves the contact's receipts for a `delivered` or `read` report on
    /// `delivery` (other statuses move nothing). Answers whether a receipt
    /// was applied. A report the conversation refuses (closed, the contact
    /// removed in between) is skipped with a note in the log: the provider
    /// must not resend it for ever; a storage failure is an error (the
    /// provider resends, and everything here is idempotent).
    pub(crate) async fn contact_receipt(
        &self,
        tenant: converger_storage::Id,
        delivery: &Delivery,
        status: &str,
        cause: &str,
    ) -> ServiceResult<bool> {
        let scope = Scope::Tenant(tenant);
        let activity = self.store.get_activity(scope, delivery.activity_id).await?;
        let Some(receipts) = receipts_for(status, activity.seq) else { return Ok(false) };
        let conversation = self.store.get_conversation(scope, activity.conversation_id).await?;
        let Some(contact) = conversation.external_id.clone() else { return Ok(false) };
        let applied = async {
            self.ensure_contact(Caller::Tenant(tenant), &conversation, false, cause, None).await?;
            self.update_receipts(scope, conversation.id, &contact, receipts).await
        };
        match applied.await {
            Ok(_) => Ok(true),
            Err(e) if e.status_code().0 < 500 && !matches!(e, ServiceError::RateLimited { .. }) => {
                tracing::info!(conversation = %conversation.id, %contact, error = %e, "status report: receipt not applied");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keys_stay_within_the_key_limit() {
        assert_eq!(join_key("wamid.1"), "member_joined:wamid.1");
        let long = join_key(&"x".repeat(300));
        assert!(long.starts_with("member_joined:sha256:") && long.len() <= 255, "{long}");
    }

    #[test]
    fn delivered_and_read_move_their_own_watermark_and_nothing_else_moves_any() {
        assert_eq!(receipts_for("delivered", 4), Some(Receipts { read_seq: None, delivered_seq: Some(4) }));
        assert_eq!(receipts_for("read", 4), Some(Receipts { read_seq: Some(4), delivered_seq: None }));
        assert_eq!(receipts_for("sent", 4), None);
        assert_eq!(receipts_for("failed", 4), None);
    }
}
