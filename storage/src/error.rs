//! Storage errors: one typed enum for every backend, so callers map them to
//! HTTP statuses and protocol codes without knowing which database answered.

use thiserror::Error;

/// The kind of row an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    Tenant,
    Channel,
    Conversation,
    Activity,
    Delivery,
    Member,
    SigningKey,
    EventEndpoint,
    Event,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Tenant => "tenant",
            Entity::Channel => "channel",
            Entity::Conversation => "conversation",
            Entity::Activity => "activity",
            Entity::Delivery => "delivery",
            Entity::Member => "member",
            Entity::SigningKey => "signing key",
            Entity::EventEndpoint => "event endpoint",
            Entity::Event => "event",
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Error)]
pub enum StoreError {
    /// The row does not exist, or belongs to another tenant (callers cannot tell which).
    #[error("{0} not found")]
    NotFound(Entity),
    /// A uniqueness rule was broken (e.g. an external_id already used on the channel).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The channel is inactive and refuses new conversations.
    #[error("channel is inactive")]
    ChannelInactive,
    /// The conversation is closed and refuses writes.
    #[error("conversation is closed")]
    ConversationClosed,
    /// The write breaks a rule of the message lifecycle or of membership,
    /// judged against the stored state in the write's own transaction.
    #[error("{0}")]
    Refused(Refusal),
    /// The caller passed something the store cannot take (a bug above, not user input:
    /// the edge validates that).
    #[error("invalid: {0}")]
    Invalid(String),
    /// A foreign key named a row that does not exist.
    #[error("foreign key violation: {0}")]
    ForeignKey(String),
    /// The stored data is newer than this binary understands, or otherwise unusable.
    #[error("schema: {0}")]
    Schema(String),
    /// The database cannot be reached or failed underneath us (I/O, connection lost).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The storage has no space left (SQLite `SQLITE_FULL`, an I/O error whose
    /// cause is ENOSPC, PostgreSQL `disk_full`): the write was not stored, and
    /// nothing of it is. Writes succeed again once space is freed; reads go on.
    #[error("storage full: {0}")]
    Full(String),
    /// Anything else the database reported.
    #[error("storage error: {0}")]
    Internal(String),
}

impl StoreError {
    /// True when retrying later may succeed (the request itself was fine).
    /// A full disk counts: the write succeeds once space is freed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Full(_))
    }

    /// True when the storage refused the write for want of space.
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Full(_))
    }
}

/// Why a lifecycle or membership write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Refusal {
    /// `field` (`target_id` or `parent_id`) names no activity of the conversation.
    #[error("`{field}` names no activity of this conversation")]
    TargetNotFound { field: &'static str },
    /// `field` names an activity that is not a message (or, for a parent, a reply).
    #[error("`{field}` must name a message{}", if *.field == "parent_id" { " that is not itself a reply" } else { "" })]
    TargetNotMessage { field: &'static str },
    /// `field` names a deleted message.
    #[error("`{field}` names a deleted message")]
    TargetDeleted { field: &'static str },
    /// A client may edit or delete only its own messages.
    #[error("only the author (or the tenant's API key) may edit or delete a message")]
    NotAuthor,
    /// The sender has no such reaction to take back.
    #[error("the sender has not reacted with this emoji")]
    ReactionNotFound,
    /// The sender is not a member of the conversation.
    #[error("the sender is not a member of this conversation")]
    NotMember,
    /// A receipt beyond the conversation's last seq.
    #[error("a receipt may not pass the conversation's last seq")]
    ReceiptAhead,
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Why the outcome of claim `attempt` was not recorded: the delivery was
    /// claimed again since, or is no longer pending (`current`).
    pub(crate) fn stale_claim(current: &crate::Delivery, attempt: i32) -> StoreError {
        StoreError::Conflict(format!(
            "the outcome of attempt {attempt} comes too late: the delivery is {} at attempt {}",
            current.status.as_str(),
            current.attempts
        ))
    }
}
