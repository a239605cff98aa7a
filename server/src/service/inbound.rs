//! Inbound webhooks: a provider (WhatsApp, Infobip, a tenant's own system)
//! posts to `…/channels/{id}/inbound`. The channel's adapter verifies the
//! request first (signature or channel secret) and parses it; each message
//! becomes an activity in the conversation found or created by its
//! `external_id`, through the normal write path (persisted, ordered, broadcast),
//! keyed by the provider's message id so a repeated webhook writes nothing new,
//! and marked as coming from this channel so it is not delivered back to it.
//!
//! Status reports (WhatsApp `statuses[]`, Infobip delivery and seen reports)
//! update the delivery they name: it is found by the channel and the
//! provider's message id, which the delivery worker recorded as
//! `provider_message_id` in the delivery's metadata when the provider accepted
//! the send, and the report's keys ([`StatusUpdate::metadata_patch`]) are merged
//! into that metadata. One code path for every adapter: Infobip's reports name
//! the `messageId` Converger sent, which is the delivery's id, but its send
//! answer echoes that id and the worker records it as `provider_message_id`
//! like Meta's wamid, so both are looked up the same way (and the lookup is
//! scoped by the channel by construction). A report that names no delivery of
//! this channel is acknowledged and counted as unmatched: another system's
//! message, a delivery of another channel, or a report that arrived before the
//! worker recorded the send's answer (the provider may report within
//! milliseconds of accepting a message; such a report is not kept for later).
//!
//! On WhatsApp channels the contact is a member of their conversation, and
//! `delivered` / `read` reports are their receipts (see [`super::contacts`]).
//!
//! [`StatusUpdate::metadata_patch`]: crate::adapters::StatusUpdate::metadata_patch

use converger_storage::{Id, Json, NewConversation, Scope, Status, Timestamp, Written};
use serde::Serialize;

use super::activities::{ActivityInput, Parts};
use super::{json, Caller, Hub, ServiceError, ServiceResult};
use crate::adapters::{self, ChannelView, Inbound, InboundError, InboundRequest};
use crate::auth::AuthError;

/// What an inbound request came to.
#[derive(Debug)]
pub enum InboundAnswer {
    /// A verification handshake: answer this text.
    Challenge(String),
    Accepted(InboundSummary),
}

#[derive(Debug, Default, Serialize)]
pub struct InboundSummary {
    /// Activities written now.
    pub created: usize,
    /// Messages seen before (same provider message id): nothing written.
    pub replayed: usize,
    /// Status reports merged into the metadata of the delivery they name.
    pub statuses_applied: usize,
    /// Status reports naming no delivery of this channel: acknowledged, ignored.
    pub statuses_unmatched: usize,
}

impl Hub {
    pub async fn receive_inbound(&self, channel_id: Id, request: InboundRequest) -> ServiceResult<InboundAnswer> {
        // No tenant credential here: the adapter's verification is the authentication.
        let channel = self.store.get_channel(Scope::Admin, channel_id).await?;
        if channel.status != Status::Active {
            return Err(AuthError::ChannelInactive.into());
        }
        let adapter = adapters::adapter_for(&channel.kind)
            .ok_or_else(|| ServiceError::invalid("type", format!("no adapter for `{}`", channel.kind)))?;
        let config = channel.config.to_value();
        let now = Timestamp::now().as_micros() / 1_000_000;
        let parsed = adapter.parse_inbound(&request, &ChannelView::new(&channel, &config), now)?;
        let (messages, statuses) = match parsed {
            Inbound::Challenge(text) => return Ok(InboundAnswer::Challenge(text)),
            Inbound::Events(events) => (events.messages, events.statuses),
        };
        // The adapter verified the request, then read the body; what is stored
        // of it (`metadata.inbound.payload`) passes the strict check every
        // client JSON passes, so a repeated key is refused, not read as its last value.
        strict_body(&request.body)?;
        let caller = Caller::Tenant(channel.tenant_id);
        let contacts = adapter.contact_receipts();
        let mut summary = InboundSummary::default();
        for m in messages {
            let new = NewConversation {
                tenant_id: channel.tenant_id,
                channel_id: channel.id,
                metadata: Json::empty_object(),
                external_id: Some(m.external_id.clone()),
                members_only: false,
            };
            let (conversation, created) = self.store.find_or_create_conversation(new).await?;
            if contacts && conversation.external_id.as_deref() == Some(m.sender.as_str()) {
                let profile_name = m.metadata["inbound"]["profile_name"].as_str();
                self.ensure_contact(caller, &conversation, created, &m.message_id, profile_name).await?;
            }
            let input = ActivityInput::from_parts(Parts {
                kind: Some(m.kind),
                text: m.text,
                sender: m.sender,
                metadata: Some(m.metadata.to_string()),
                idempotency_key: Some(m.message_id),
                ..Parts::default()
            })?;
            match self.create_activity_via(caller, conversation.id, input, Some(channel.id)).await? {
                Written::New(_) => summary.created += 1,
                Written::Replay(_) => summary.replayed += 1,
            }
        }
        let scope = Scope::Tenant(channel.tenant_id);
        for status in statuses {
            let Some(delivery) =
                self.store.find_delivery_by_provider_id(channel.id, &status.provider_message_id).await?
            else {
                summary.statuses_unmatched += 1;
                continue;
            };
            let patch = Json::from_value(&status.metadata_patch());
            self.store.merge_delivery_metadata(scope, delivery.id, patch).await?;
            summary.statuses_applied += 1;
            if contacts {
                let cause = format!("{}:{}", status.status, status.provider_message_id);
                self.contact_receipt(channel.tenant_id, &delivery, status.status, &cause).await?;
            }
        }
        Ok(InboundAnswer::Accepted(summary))
    }
}

/// An inbound body that is not strict JSON (docs/api.md "Strict JSON") is
/// 400 `bad_request`, as a body that is not JSON at all (docs/webhooks.md).
fn strict_body(body: &[u8]) -> Result<(), InboundError> {
    let text = std::str::from_utf8(body).map_err(|e| json::JsonError::NotUtf8 { at: e.valid_up_to() });
    text.and_then(json::check).map_err(|e| InboundError::BadRequest(format!("the body is not strict JSON: {e}")))
}
