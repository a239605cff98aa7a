//! Client tokens: issue one for a conversation of the caller's tenant (or of
//! its channel, for a channel-secret caller), and refresh a still-valid one.
//!
//! A refreshed token keeps the claims and the lifetime of the one it replaces,
//! with a new `jti`. Both operations check that the tenant is still active and
//! the conversation still exists, so a disabled tenant cannot keep its clients
//! alive by refreshing.

use converger_storage::{new_id, Entity, Id, Refusal, Scope, Status, StoreError, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};

use super::caller::unix_now;
use super::input::Fields;
use super::{Caller, Hub, ServiceResult};
use crate::auth::{jwt, AuthError, Claims};

pub const DEFAULT_TTL_SECS: i64 = 3600;
pub const MAX_TTL_SECS: i64 = 24 * 3600;

/// A validated token request.
#[derive(Debug)]
pub struct TokenInput {
    pub conversation_id: Id,
    pub sender: String,
    pub ttl_seconds: i64,
}

impl TokenInput {
    /// `{conversation_id, sender, ttl_seconds?}`.
    pub fn from_json(map: Map<String, Value>) -> ServiceResult<TokenInput> {
        let f = Fields::new(map, &["conversation_id", "sender", "ttl_seconds"])?;
        Ok(TokenInput {
            conversation_id: f.required_id("conversation_id")?,
            sender: f.required_string("sender", super::activities::MAX_SENDER_BYTES)?,
            ttl_seconds: f.integer("ttl_seconds", 1..=MAX_TTL_SECS)?.unwrap_or(DEFAULT_TTL_SECS),
        })
    }
}

/// A signed token and what it is for.
#[derive(Clone, Debug, Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: Timestamp,
    pub conversation_id: Id,
}

impl Hub {
    /// A token for `input.conversation_id`, which must be the caller's (and on
    /// a channel-secret caller's channel): else 404.
    pub async fn issue_token(&self, caller: Caller, input: TokenInput) -> ServiceResult<IssuedToken> {
        self.issue(caller, input, false).await
    }

    /// A watcher's token (the admin console's live tail): it joins the
    /// conversation's stream without showing in its presence.
    pub async fn issue_watch_token(&self, caller: Caller, input: TokenInput) -> ServiceResult<IssuedToken> {
        self.issue(caller, input, true).await
    }

    async fn issue(&self, caller: Caller, input: TokenInput, watch: bool) -> ServiceResult<IssuedToken> {
        let conversation = self.store.get_conversation(caller.scope(), input.conversation_id).await?;
        if caller.channel().is_some_and(|own| own != conversation.channel_id) {
            return Err(StoreError::NotFound(Entity::Conversation).into());
        }
        // A members-only conversation's tokens are for its members (a
        // watcher is the console, not a client).
        if conversation.members_only && !watch {
            match self.store.get_member(caller.scope(), conversation.id, &input.sender).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => return Err(StoreError::Refused(Refusal::NotMember).into()),
                Err(e) => return Err(e.into()),
            }
        }
        let now = unix_now();
        let claims = Claims {
            sub: input.sender,
            tenant_id: caller.tenant_id(),
            conversation_id: conversation.id,
            iat: now,
            exp: now + input.ttl_seconds,
            nbf: None,
            jti: new_id().to_string(),
            watch,
        };
        Ok(self.sign(claims))
    }

    /// A new token with the claims and lifetime of `token`, which must verify
    /// and be the server's: a tenant-signed token is refreshed by its signer
    /// (the server would have to sign it with its own secret, and the new
    /// token would outlive a revocation of the tenant's key).
    pub async fn refresh_token(&self, token: &str) -> ServiceResult<IssuedToken> {
        let old = self.verify_token(token).await?;
        if super::token_keys::is_tenant_signed(token) {
            return Err(AuthError::WrongKind(
                "a token signed with the tenant's own key is not refreshed here: sign a new one with that key",
            )
            .into());
        }
        let tenant = match self.store.get_tenant(old.tenant_id).await {
            Ok(t) => t,
            Err(StoreError::NotFound(_)) => {
                return Err(AuthError::Invalid("the token's tenant no longer exists").into())
            }
            Err(e) => return Err(e.into()),
        };
        if tenant.status != Status::Active {
            return Err(AuthError::TenantInactive.into());
        }
        let conversation = self.store.get_conversation(Scope::Tenant(tenant.id), old.conversation_id).await?;
        // A member removed since cannot keep a members-only conversation's token alive.
        if conversation.members_only && !old.watch {
            match self.store.get_member(Scope::Tenant(tenant.id), conversation.id, &old.sub).await {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => return Err(StoreError::Refused(Refusal::NotMember).into()),
                Err(e) => return Err(e.into()),
            }
        }
        let now = unix_now();
        let ttl = (old.exp - old.iat).clamp(1, MAX_TTL_SECS);
        Ok(self.sign(Claims { iat: now, exp: now + ttl, jti: new_id().to_string(), ..old }))
    }

    fn sign(&self, claims: Claims) -> IssuedToken {
        let token = jwt::sign(&claims, self.config.jwt_secret.key.expose().as_bytes());
        IssuedToken {
            token,
            expires_at: Timestamp::from_micros(claims.exp.saturating_mul(1_000_000)),
            conversation_id: claims.conversation_id,
        }
    }
}
