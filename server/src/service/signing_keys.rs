//! Tenants' own keys for signing client tokens (SPEC "Tenant signing keys"):
//! create one (an HS256 secret shown once, or a registered JWKS URL), list
//! them (never a secret), revoke one. Verifying tokens with them is
//! [`super::token_keys`].
//!
//! Every change bumps the tenant epoch before it answers, so a revoked key
//! stops verifying on every shard of this node at once, and on other nodes
//! within the auth cache's TTL (or at once, when the cluster's notice arrives).

use converger_storage::{KeyMaterial, SigningKey, SigningKeyInfo, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};

use super::input::Fields;
use super::jwks::Want;
use super::{Caller, Hub, ServiceError, ServiceResult};
use crate::auth::keys;

/// Keys a tenant may hold at once (HS256 and JWKS together).
pub const MAX_KEYS_PER_TENANT: usize = 20;
/// The longest JWKS URL taken.
pub const MAX_URL_BYTES: usize = 2048;

/// What `POST /api/v1/signing-keys` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum NewKeyInput {
    /// An HS256 secret, generated here (an empty body).
    Hs256,
    /// Public keys published at this URL.
    Jwks { url: String },
}

impl NewKeyInput {
    /// `{}` (or no body) for an HS256 key; `{"jwks_url": "https://…"}` for a JWKS.
    pub fn from_json(map: Map<String, Value>) -> ServiceResult<NewKeyInput> {
        let f = Fields::new(map, &["jwks_url"])?;
        Ok(match f.string("jwks_url", MAX_URL_BYTES)? {
            None => NewKeyInput::Hs256,
            Some(url) => NewKeyInput::Jwks { url },
        })
    }
}

/// A created key: its listing, plus the secret of an HS256 key (this once).
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: SigningKeyInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl Hub {
    /// A new signing key of the caller's tenant. A JWKS URL is fetched once
    /// now: one that does not answer a usable key set is refused (422), so a
    /// typo shows at once rather than as every token refused.
    pub async fn create_signing_key(&self, caller: Caller, input: NewKeyInput) -> ServiceResult<CreatedKey> {
        let tenant = caller.tenant_id();
        if self.store.list_signing_keys(tenant).await?.len() >= MAX_KEYS_PER_TENANT {
            return Err(ServiceError::Conflict(format!(
                "a tenant holds at most {MAX_KEYS_PER_TENANT} signing keys: revoke one first"
            )));
        }
        let material = match input {
            NewKeyInput::Hs256 => KeyMaterial::Hs256 { secret: keys::generate_signing_secret()? },
            NewKeyInput::Jwks { url } => {
                self.check_jwks_url(&url)?;
                KeyMaterial::Jwks { url }
            }
        };
        if let KeyMaterial::Jwks { url } = &material {
            let Some(jwks) = &self.jwks else {
                return Err(ServiceError::invalid("jwks_url", "JWKS keys are not available on this server"));
            };
            jwks.get(url, Want::Now)
                .await
                .map_err(|why| ServiceError::invalid("jwks_url", format!("cannot use the key set at {url}: {why}")))?;
        }
        let key = SigningKey { kid: keys::generate_kid()?, tenant_id: tenant, material, created_at: Timestamp::now() };
        let key = self.store.create_signing_key(key).await?;
        self.auth_cache.epoch().bump();
        Ok(CreatedKey { info: key.info(), secret: key.material.secret().map(str::to_string) })
    }

    /// The caller's tenant's keys, oldest first, without their secrets.
    pub async fn list_signing_keys(&self, caller: Caller) -> ServiceResult<Vec<SigningKeyInfo>> {
        Ok(self.store.list_signing_keys(caller.tenant_id()).await?.iter().map(SigningKey::info).collect())
    }

    /// Revokes (deletes) the caller's tenant's key `kid`: tokens it signed
    /// are refused from now on. Another tenant's kid answers 404.
    pub async fn revoke_signing_key(&self, caller: Caller, kid: &str) -> ServiceResult<SigningKeyInfo> {
        let key = self.store.delete_signing_key(caller.tenant_id(), kid).await?;
        self.auth_cache.epoch().bump();
        Ok(key.info())
    }

    /// https only, unless `--delivery-allow-private` (on-premise and test
    /// setups, where plain http on a private network is the norm). Which
    /// addresses the URL may reach is the fetcher's check (the delivery guard).
    fn check_jwks_url(&self, url: &str) -> ServiceResult<()> {
        let lower = url.to_ascii_lowercase();
        let https = lower.starts_with("https://");
        if https || (self.config.delivery_allow_private && lower.starts_with("http://")) {
            return Ok(());
        }
        let why = if lower.starts_with("http://") {
            "must be an https URL (plain http only with --delivery-allow-private)"
        } else {
            "must be an https URL"
        };
        Err(ServiceError::invalid("jwks_url", why))
    }
}
