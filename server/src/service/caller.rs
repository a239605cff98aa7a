//! Who is calling: [`Caller`], and the [`Hub`] operations that turn a
//! presented credential into one (storage lookups live here, the pure checks
//! in `crate::auth`).
//!
//! - API key: hashed, then the tenant is looked up by hash (no comparison of
//!   stored keys with input at all); an inactive tenant is refused (403). Active
//!   answers are remembered per shard (see [`super::auth_cache`]).
//! - Channel secret: the channel named by the request is read and its secret
//!   compared in constant time; an unknown channel and a wrong secret get the
//!   same answer, so a secret cannot be used to probe for channel ids.
//! - Client token: signature and expiry checked with the configured JWT key,
//!   or a key of the tenant's own ([`super::token_keys`]).

use converger_storage::{Id, Scope, Status, StoreError, Timestamp};

use super::{Hub, ServiceResult};
use crate::auth::{ct, keys, AuthError, Claims};

/// An authenticated caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A tenant's API key: everything of that tenant.
    Tenant(Id),
    /// A channel secret: create conversations on, and issue tokens for, that one channel.
    Channel { tenant_id: Id, channel_id: Id },
}

impl Caller {
    pub fn tenant_id(self) -> Id {
        match self {
            Caller::Tenant(id) | Caller::Channel { tenant_id: id, .. } => id,
        }
    }

    /// What the caller may read: its tenant.
    pub fn scope(self) -> Scope {
        Scope::Tenant(self.tenant_id())
    }

    /// The one channel a channel-secret caller is limited to.
    pub fn channel(self) -> Option<Id> {
        match self {
            Caller::Tenant(_) => None,
            Caller::Channel { channel_id, .. } => Some(channel_id),
        }
    }
}

const WRONG_SECRET: &str = "unknown channel or wrong channel secret";

/// Seconds since the Unix epoch, as JWT claims count time.
pub fn unix_now() -> i64 {
    Timestamp::now().as_micros().div_euclid(1_000_000)
}

/// The sender a client token writes as: its own `sub`. A write may name
/// it (or name none), never another sender.
pub fn token_sender(claims: &Claims, given: Option<&str>) -> ServiceResult<String> {
    match given {
        None | Some("") => Ok(claims.sub.clone()),
        Some(s) if s == claims.sub => Ok(claims.sub.clone()),
        Some(_) => Err(AuthError::WrongKind("a client token writes as its own sender").into()),
    }
}

impl Hub {
    /// The tenant whose API key this is.
    pub async fn caller_by_api_key(&self, key: &str) -> ServiceResult<Caller> {
        let hash = keys::hash_api_key(key);
        if let Some(tenant) = self.auth_cache.get(&hash) {
            return Ok(Caller::Tenant(tenant));
        }
        let epoch = self.auth_cache.epoch().current();
        match self.store.tenant_by_api_key_hash(&hash).await {
            Ok(t) if t.status == Status::Active => {
                self.auth_cache.remember(hash, t.id, epoch);
                Ok(Caller::Tenant(t.id))
            }
            Ok(_) => Err(AuthError::TenantInactive.into()),
            Err(StoreError::NotFound(_)) => Err(AuthError::Invalid("unknown API key").into()),
            Err(e) => Err(e.into()),
        }
    }

    /// The channel `channel_id`, when `secret` is its secret.
    pub async fn caller_by_channel_secret(&self, channel_id: Id, secret: &str) -> ServiceResult<Caller> {
        let channel = match self.store.get_channel(Scope::Admin, channel_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => return Err(AuthError::Invalid(WRONG_SECRET).into()),
            Err(e) => return Err(e.into()),
        };
        if !ct::eq(secret.as_bytes(), channel.secret.as_bytes()) {
            return Err(AuthError::Invalid(WRONG_SECRET).into());
        }
        if channel.status != Status::Active {
            return Err(AuthError::ChannelInactive.into());
        }
        if self.store.get_tenant(channel.tenant_id).await?.status != Status::Active {
            return Err(AuthError::TenantInactive.into());
        }
        Ok(Caller::Channel { tenant_id: channel.tenant_id, channel_id })
    }

    /// The channel of conversation `conversation_id`, when `secret` is that channel's secret.
    pub async fn caller_by_channel_secret_for_conversation(
        &self,
        conversation_id: Id,
        secret: &str,
    ) -> ServiceResult<Caller> {
        match self.store.get_conversation(Scope::Admin, conversation_id).await {
            Ok(c) => self.caller_by_channel_secret(c.channel_id, secret).await,
            Err(StoreError::NotFound(_)) => Err(AuthError::Invalid(WRONG_SECRET).into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `tenant` is active, remembered per shard like API keys (see
    /// [`super::auth_cache`]): a disable through this node is seen at once.
    pub async fn tenant_is_active(&self, tenant: Id) -> ServiceResult<bool> {
        if self.auth_cache.is_active(tenant) {
            return Ok(true);
        }
        let epoch = self.auth_cache.epoch().current();
        let active = self.store.get_tenant(tenant).await?.status == Status::Active;
        if active {
            self.auth_cache.remember_active(tenant, epoch);
        }
        Ok(active)
    }
}
