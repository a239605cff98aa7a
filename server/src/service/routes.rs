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
use std::sync::Arc;

use converger_storage::{Channel, Id, Scope, Store, StoreError};

use super::ServiceResult;
use crate::adapters::pre_publish::HookConfig;
use crate::adapters::{adapter_for, standard_webhooks, Adapter};
use crate::engine::hook::HookRoute;

/// Conversations remembered per shard; past this the memory starts over.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Clone)]
struct Route {
    channel_id: Id,
    /// `None`: a type without an adapter, which delivers nothing.
    adapter: Option<&'static dyn Adapter>,
    /// The channel's pre-publish hook (its config may change: see `epoch`).
    hook: Option<Arc<HookRoute>>,
    /// [`super::channels::channels_epoch`] when read: a channel change since
    /// reads the channel again.
    epoch: u64,
}

/// Where a new activity goes: its delivery rows, and its pre-publish hook.
#[derive(Debug, Default)]
pub struct Targets {
    pub deliver_to: Vec<Id>,
    pub hook: Option<Arc<HookRoute>>,
}

fn hook_of(channel: &Channel) -> Option<Arc<HookRoute>> {
    let config = channel.config.to_value();
    // Checked when the channel was written; a config that no longer reads has no hook.
    let hook = HookConfig::parse(config.get("pre_publish"), "config.pre_publish").ok().flatten()?;
    let key = standard_webhooks::channel_key(&channel.secret);
    Some(Arc::new(HookRoute { channel_id: channel.id, config: hook, key }))
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
        Ok(self.resolve(store, scope, conversation, origin, kind).await?.deliver_to)
    }

    /// [`Routes::targets`] and the conversation's pre-publish hook. An
    /// activity that came in through the channel (`origin`) is not put to
    /// that channel's hook: it is what the outside world already said.
    pub async fn resolve(
        &self,
        store: &dyn Store,
        scope: Scope,
        conversation: Id,
        origin: Option<Id>,
        kind: &str,
    ) -> ServiceResult<Targets> {
        let epoch = super::channels::channels_epoch();
        let known = self.by_conversation.borrow().get(&conversation).filter(|r| r.epoch == epoch).cloned();
        let route = match known {
            Some(route) => route,
            None => {
                let c = match store.get_conversation(scope, conversation).await {
                    Ok(c) => c,
                    Err(StoreError::NotFound(_)) => return Ok(Targets::default()),
                    Err(e) => return Err(e.into()),
                };
                let channel = store.get_channel(scope, c.channel_id).await?;
                let route = Route {
                    channel_id: channel.id,
                    adapter: adapter_for(&channel.kind),
                    hook: hook_of(&channel),
                    epoch,
                };
                let mut remembered = self.by_conversation.borrow_mut();
                if remembered.len() >= MAX_REMEMBERED {
                    remembered.clear();
                }
                remembered.insert(conversation, route.clone());
                route
            }
        };
        let routed = route.adapter.is_some_and(|a| a.routes(kind));
        let outside = origin == Some(route.channel_id);
        Ok(Targets {
            deliver_to: if routed && !outside { vec![route.channel_id] } else { Vec::new() },
            hook: if outside { None } else { route.hook },
        })
    }
}
