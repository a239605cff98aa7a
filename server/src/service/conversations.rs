//! Conversation operations: create on a channel, list, read, close.
//!
//! A channel-secret caller may create conversations only on its own channel;
//! any other channel id answers like a missing channel (404), never 403, so
//! the secret reveals nothing about the tenant's other channels.

use converger_storage::{
    Conversation, ConversationFilter, ConversationPatch, ConversationStatus, Entity, Id, Json, NewConversation, Page,
    PageRequest, Scope, StoreError,
};
use serde_json::{Map, Value};

use super::input::Fields;
use super::{Caller, Hub, ServiceError, ServiceResult};
use crate::engine::{Cause, Disconnect};

pub const MAX_EXTERNAL_ID_BYTES: usize = 255;

/// A validated conversation to create.
#[derive(Debug)]
pub struct NewConversationInput {
    pub channel_id: Id,
    pub metadata: Json,
    pub external_id: Option<String>,
    pub members_only: bool,
}

impl NewConversationInput {
    /// `{channel_id, metadata?, external_id?, members_only?}`.
    pub fn from_json(map: Map<String, Value>) -> ServiceResult<NewConversationInput> {
        let f = Fields::new(map, &["channel_id", "metadata", "external_id", "members_only"])?;
        Ok(NewConversationInput {
            channel_id: f.required_id("channel_id")?,
            metadata: f.object("metadata")?.unwrap_or_else(Json::empty_object),
            external_id: f.non_blank_string("external_id", MAX_EXTERNAL_ID_BYTES)?,
            members_only: f.boolean("members_only")?.unwrap_or(false),
        })
    }
}

/// `{metadata?, members_only?}`: what a conversation's PATCH may change.
pub fn patch_from_json(map: Map<String, Value>) -> ServiceResult<ConversationPatch> {
    let f = Fields::new(map, &["metadata", "members_only"])?;
    if f.is_empty() {
        return Err(ServiceError::invalid("metadata", "nothing to change: give `metadata` or `members_only`"));
    }
    Ok(ConversationPatch { metadata: f.object("metadata")?, members_only: f.boolean("members_only")? })
}

/// Parses a conversation status filter value.
pub fn parse_status(s: &str) -> ServiceResult<ConversationStatus> {
    ConversationStatus::parse(s)
        .ok_or_else(|| ServiceError::invalid("status", format!("unknown status `{s}` (expected active or closed)")))
}

impl Hub {
    /// The conversation a real-time client asks to follow, when its tenant is
    /// active (`TenantInactive` otherwise); another tenant's is not found.
    pub async fn conversation_to_follow(&self, tenant: Id, conversation: Id) -> ServiceResult<Conversation> {
        if !self.tenant_is_active(tenant).await? {
            return Err(crate::auth::AuthError::TenantInactive.into());
        }
        let c = self.store.get_conversation(Scope::Tenant(tenant), conversation).await?;
        // One rule for every socket: a closed conversation takes no writes,
        // so there is no live stream to follow (its history stays readable).
        if c.status == converger_storage::ConversationStatus::Closed {
            return Err(StoreError::ConversationClosed.into());
        }
        Ok(c)
    }

    /// Creates a conversation; 404 for another tenant's (or another channel
    /// secret's) channel, 409 `channel_inactive`, 409 `conflict` for a taken external_id.
    pub async fn create_conversation(
        &self,
        caller: Caller,
        input: NewConversationInput,
    ) -> ServiceResult<Conversation> {
        if caller.channel().is_some_and(|own| own != input.channel_id) {
            return Err(StoreError::NotFound(Entity::Channel).into());
        }
        let new = NewConversation {
            tenant_id: caller.tenant_id(),
            channel_id: input.channel_id,
            metadata: input.metadata,
            external_id: input.external_id,
            members_only: input.members_only,
        };
        self.store.create_conversation(new).await.map_err(|e| match e {
            StoreError::Conflict(_) => ServiceError::Conflict("external_id is already used on this channel".into()),
            e => e.into(),
        })
    }

    pub async fn list_conversations(
        &self,
        scope: Scope,
        filter: ConversationFilter,
        page: PageRequest,
    ) -> ServiceResult<Page<Conversation>> {
        Ok(self.store.list_conversations(scope, filter, page).await?)
    }

    pub async fn get_conversation(&self, scope: Scope, id: Id) -> ServiceResult<Conversation> {
        Ok(self.store.get_conversation(scope, id).await?)
    }

    /// Changes a conversation's metadata or `members_only`.
    pub async fn update_conversation(
        &self,
        scope: Scope,
        id: Id,
        patch: ConversationPatch,
    ) -> ServiceResult<Conversation> {
        Ok(self.store.update_conversation(scope, id, patch).await?)
    }

    /// Closes the conversation (closing a closed one changes nothing); later
    /// writes answer `conversation_closed`, and every client following it
    /// live is disconnected with `conversation_closed` (on every node).
    pub async fn close_conversation(&self, scope: Scope, id: Id) -> ServiceResult<Conversation> {
        let closed = self.store.close_conversation(scope, id).await?;
        let everyone =
            Disconnect { sender: None, reason: "conversation_closed".into(), cause: Cause::ConversationClosed };
        if let Err(e) = self.publisher.disconnect(id, everyone).await {
            // The close stands; its followers get nothing more (no writes are taken).
            tracing::warn!(conversation = %id, error = %e, "closed, but its live clients were not all disconnected");
        }
        Ok(closed)
    }
}
