//! Where a new activity must be delivered: to its conversation's channel when
//! that channel's adapter sends activities of its type (webhook: all;
//! WhatsApp: messages and, on Meta, reactions; echo: messages), unless the
//! activity came in through that very channel (loop prevention). The delivery
//! row is then written in the same transaction as the activity (the store's
//! `deliver_to`), so a committed activity is never without its delivery.
//!
//! A conversation's channel and a channel's type never change, so each shard
//! remembers them (bounded) and reads storage once per conversation.
//!
//! The pre-publish hook is the channel's own (`config.pre_publish`), else the
//! tenant's default (its `config.pre_publish`); either way the request is
//! signed with the channel's key, like the channel's deliveries. A tenant's
//! default is remembered under the [`TenantEpoch`] (see `limits_cache`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use converger_storage::{Channel, Id, Scope, Store, StoreError};

use super::limits_cache::EpochMap;
use super::{ServiceResult, TenantEpoch};
use crate::adapters::pre_publish::HookConfig;
use crate::adapters::{adapter_for, standard_webhooks, Adapter};
use crate::engine::hook::HookRoute;

/// Conversations remembered per shard; past this the memory starts over.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Clone)]
struct Route {
    channel_id: Id,
    tenant_id: Id,
    /// `None`: a type without an adapter, which delivers nothing.
    adapter: Option<&'static dyn Adapter>,
    /// The channel's own pre-publish hook (its config may change: see `epoch`).
    hook: Option<Arc<HookRoute>>,
    /// The channel's Standard Webhooks key (signs a tenant default's calls too).
    key: [u8; 32],
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

fn hook_of(channel: &Channel, key: [u8; 32]) -> Option<Arc<HookRoute>> {
    let config = channel.config.to_value();
    // Checked when the channel was written; a config that no longer reads has no hook.
    let hook = HookConfig::parse(config.get("pre_publish"), "config.pre_publish").ok().flatten()?;
    Some(Arc::new(HookRoute { channel_id: channel.id, config: hook, key }))
}

pub struct Routes {
    by_conversation: RefCell<HashMap<Id, Route>>,
    /// Tenants' default hooks, by tenant.
    defaults: RefCell<EpochMap<Id, Option<HookConfig>>>,
    epoch: TenantEpoch,
}

impl Routes {
    pub fn new(epoch: TenantEpoch) -> Routes {
        Routes { by_conversation: RefCell::default(), defaults: RefCell::default(), epoch }
    }

    /// The tenant's default hook, remembered under the tenant epoch.
    async fn default_hook(&self, store: &dyn Store, tenant: Id) -> ServiceResult<Option<HookConfig>> {
        let epoch = self.epoch.current();
        if let Some(known) = self.defaults.borrow().get(tenant, epoch, Instant::now()) {
            return Ok(known);
        }
        let hook = super::tenants::default_hook(&store.get_tenant(tenant).await?);
        self.defaults.borrow_mut().remember(tenant, hook.clone(), epoch, Instant::now());
        Ok(hook)
    }

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
                let key = standard_webhooks::channel_key(&channel.secret);
                let route = Route {
                    channel_id: channel.id,
                    tenant_id: channel.tenant_id,
                    adapter: adapter_for(&channel.kind),
                    hook: hook_of(&channel, key),
                    key,
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
        let hook = match route.hook {
            _ if outside => None,
            Some(own) => Some(own),
            None => self
                .default_hook(store, route.tenant_id)
                .await?
                .map(|config| Arc::new(HookRoute { channel_id: route.channel_id, config, key: route.key })),
        };
        Ok(Targets { deliver_to: if routed && !outside { vec![route.channel_id] } else { Vec::new() }, hook })
    }
}
