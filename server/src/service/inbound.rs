//! Inbound webhooks: a provider (WhatsApp, Infobip, a tenant's own system)
//! posts to `…/channels/{id}/inbound`. The channel's adapter verifies the
//! request first (signature or channel secret) and parses it; each message
//! becomes an activity in the conversation found or created by its
//! `external_id`, through the normal write path (persisted, ordered, broadcast),
//! keyed by the provider's message id so a repeated webhook writes nothing new,
//! and marked as coming from this channel so it is not delivered back to it.

use converger_storage::{Id, Json, NewConversation, Scope, Status, Timestamp, Written};
use serde::Serialize;

use super::activities::ActivityInput;
use super::{Caller, Hub, ServiceError, ServiceResult};
use crate::adapters::{self, ChannelView, Inbound, InboundRequest};
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
    /// Delivery status reports received (matching them to deliveries is not
    /// done yet: they are acknowledged and dropped).
    pub statuses_received: usize,
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
        let caller = Caller::Tenant(channel.tenant_id);
        let mut summary = InboundSummary { statuses_received: statuses.len(), ..InboundSummary::default() };
        for m in messages {
            let new = NewConversation {
                tenant_id: channel.tenant_id,
                channel_id: channel.id,
                metadata: Json::empty_object(),
                external_id: Some(m.external_id.clone()),
            };
            let (conversation, _) = self.store.find_or_create_conversation(new).await?;
            let input = ActivityInput::from_parts(
                Some(m.kind),
                m.text,
                None,
                m.sender,
                Some(m.metadata.to_string()),
                Some(m.message_id),
            )?;
            match self.create_activity_via(caller, conversation.id, input, Some(channel.id)).await? {
                Written::New(_) => summary.created += 1,
                Written::Replay(_) => summary.replayed += 1,
            }
        }
        Ok(InboundAnswer::Accepted(summary))
    }
}
