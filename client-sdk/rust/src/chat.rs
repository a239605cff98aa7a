//! The chat methods of [`Client`] (protocol version 2, docs/protocol.md
//! "Chat"): edit, delete, react and unreact act on a message by publishing
//! an activity that names it (`target_id`); reply publishes a message in a
//! message's thread (`parent_id`); mark_read and mark_delivered move the
//! sender's receipts with a Receipt frame.
//!
//! They are for token clients (the token's sender acts). An API-key client
//! names the sender: build the draft with [`Draft::edit`], [`Draft::delete`],
//! [`Draft::reaction`] or [`Draft::parent`] and `.sender(…)`, publish it, and
//! move receipts with [`Client::receipt`]. On a version-1 connection (an
//! older server) each of them fails with
//! [`WireError::NotInVersion`](converger_protocol::WireError::NotInVersion),
//! before anything is sent.

use converger_protocol::{self as proto, Frame};
use uuid::Uuid;

use crate::client::unexpected;
use crate::error::Result;
use crate::types::{Draft, Edit, Written};
use crate::Client;

/// A member's new watermarks ([`Client::receipt`]): `None` leaves one as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Read up to and including this seq.
    pub read_seq: Option<u64>,
    /// Delivered up to and including this seq.
    pub delivered_seq: Option<u64>,
    /// The member: empty for a token client (the token's sender); required
    /// with an API key.
    pub sender: String,
}

impl Client {
    /// Replaces the text, attachments or metadata of message `target` (your
    /// own, for a token client). Answers the `edit` activity's ack.
    pub async fn edit(&self, conversation: Uuid, target: Uuid, edit: Edit) -> Result<Written> {
        self.publish(Draft::edit(conversation, target, edit)).await
    }

    /// Deletes message `target` (your own, for a token client): its text,
    /// attachments and metadata are erased; a tombstone stays in the log.
    pub async fn delete(&self, conversation: Uuid, target: Uuid) -> Result<Written> {
        self.publish(Draft::delete(conversation, target)).await
    }

    /// Reacts to message `target` with `emoji` (at most once per sender and
    /// emoji: a repeat changes nothing).
    pub async fn react(&self, conversation: Uuid, target: Uuid, emoji: &str) -> Result<Written> {
        self.publish(Draft::reaction(conversation, target, emoji, true)).await
    }

    /// Takes back a reaction of `emoji` to message `target`.
    pub async fn unreact(&self, conversation: Uuid, target: Uuid, emoji: &str) -> Result<Written> {
        self.publish(Draft::reaction(conversation, target, emoji, false)).await
    }

    /// Publishes `draft` in `conversation` as a reply in the thread of
    /// message `parent`.
    pub async fn reply(&self, conversation: Uuid, parent: Uuid, draft: Draft) -> Result<Written> {
        self.publish(Draft { conversation_id: conversation, ..draft }.parent(parent)).await
    }

    /// Marks everything up to and including `seq` as read by you; a
    /// watermark never moves back (a lower seq is accepted and changes
    /// nothing). The conversation's subscribers get a receipt event.
    pub async fn mark_read(&self, conversation: Uuid, seq: u64) -> Result<()> {
        self.receipt(conversation, Receipt { read_seq: Some(seq), ..Receipt::default() }).await
    }

    /// Marks everything up to and including `seq` as delivered to you.
    pub async fn mark_delivered(&self, conversation: Uuid, seq: u64) -> Result<()> {
        self.receipt(conversation, Receipt { delivered_seq: Some(seq), ..Receipt::default() }).await
    }

    /// Moves a member's watermarks (both at once, or an API key's member):
    /// returns once stored.
    pub async fn receipt(&self, conversation: Uuid, receipt: Receipt) -> Result<()> {
        let frame = |request_id| {
            Frame::Receipt(proto::Receipt {
                request_id,
                conversation_id: conversation.into_bytes(),
                read_seq: receipt.read_seq,
                delivered_seq: receipt.delivered_seq,
                sender: receipt.sender,
            })
        };
        match self.call(frame).await? {
            Frame::Ack(_) => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}
