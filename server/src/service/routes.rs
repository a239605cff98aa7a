//! Where a new activity must be delivered: to its conversation's channel when
//! that channel's adapter sends activities of its type (webhook: all;
//! WhatsApp: messages and, on Meta, reactions; echo: messages), unless the
//! activity came in through that very channel (loop prevention). The delivery
//! row is then written in the same transaction as the activity (the store's
//! `deliver_to`), so a committed activity is never without its delivery.
//!
//! A conversation's channel and a channel's type never change, so each shard
//! remembers them (bounded) and reads storage once per conversation.

use std::cell::RefCell;
use std::collections::HashMap;

use converger_storage::{Id, Scope, Store, StoreError};

use super::ServiceResult;
use crate::adapters::{adapter_for, Adapter};

/// Conversations remembered per shard; past this the memory starts over.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Clone, Copy)]
struct Route {
    channel_id: Id,
    /// `None`: a type without an adapter, which delivers nothing.
    adapter: Option<&'static dyn Adapter>,
}

#[derive(Default)]
pub struct Routes {
    by_conversation: RefCell<HashMap<Id, Route>>,
}

impl Routes {
    /// The channels an activity of type `kind` in `conversation` goes to;
    /// `origin` is the channel it came in through, if any. A channel whose
    /// adapter does not send that kind ([`Adapter::routes`]: an edit to
    /// WhatsApp) gets no delivery row. A conversation outside `scope`
    /// answers no targets: the write itself then fails as not found.
    pub async fn targets(
        &self,
        store: &dyn Store,
        scope: Scope,
        conversation: Id,
        origin: Option<Id>,
        kind: &str,
    ) -> ServiceResult<Vec<Id>> {
        let known = self.by_conversation.borrow().get(&conversation).copied();
        let route = match known {
            Some(route) => route,
            None => {
                let c = match store.get_conversation(scope, conversation).await {
                    Ok(c) => c,
                    Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
                    Err(e) => return Err(e.into()),
                };
                let channel = store.get_channel(scope, c.channel_id).await?;
                let route = Route { channel_id: channel.id, adapter: adapter_for(&channel.kind) };
                let mut remembered = self.by_conversation.borrow_mut();
                if remembered.len() >= MAX_REMEMBERED {
                    remembered.clear();
                }
                remembered.insert(conversation, route);
                route
            }
        };
        let routed = route.adapter.is_some_and(|a| a.routes(kind));
        Ok(if routed && origin != Some(route.channel_id) { vec![route.channel_id] } else { Vec::new() })
    }
}
