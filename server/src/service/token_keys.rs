//! Which key verifies a client token, and the check itself: the one
//! [`Hub::verify_token`] every transport calls (Phoenix socket, binary
//! Hello and Reauth, the `/socket/binary` upgrade, token refresh).
//!
//! By the token's header:
//! - no `kid`: the server's own token, HS256 with `--jwt-secret`;
//! - `HS256` with a `kid`: a tenant's HS256 key, looked up by kid (unique
//!   across tenants). The tenant is the key's: a token whose `tenant_id`
//!   claim names another is refused;
//! - `RS256`/`ES256` (a `kid` required): a key of a JWKS the tenant
//!   registered. The IdP's kids are not unique across tenants, so the
//!   `tenant_id` claim says *whose* JWKS to look in — and nothing more: the
//!   signature must verify with a key that tenant published, so a token
//!   naming tenant B verifies only if B's keys signed it.
//!
//! Either way the `alg` must be the key's (`none` is never one), and the
//! claims and time checks are the server-issued tokens' (`auth::jwt`).
//!
//! Lookups are remembered per shard like API keys ([`super::auth_cache`]):
//! under the tenant epoch, which every key change bumps, and for the auth
//! cache's TTL. Only keys found are remembered; an unknown kid reaches
//! storage every time (random kids cannot fill the memory).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use converger_storage::{Id, KeyMaterial, SigningKey, StoreError};
use serde::Deserialize;

use super::caller::unix_now;
use super::jwks::{JwksMemory, KeySet, Want};
use super::limits_cache::EpochMap;
use super::{Hub, ServiceResult};
use crate::auth::jwt::{self, JwtError, Verifier};
use crate::auth::{AuthError, Claims};

/// This shard's memory of tenants' keys.
#[derive(Default)]
pub struct KeyCache {
    /// HS256 keys (and JWKS registrations), by kid.
    by_kid: RefCell<EpochMap<String, Rc<SigningKey>>>,
    /// Each tenant's registered JWKS URLs.
    jwks_urls: RefCell<EpochMap<Id, Rc<Vec<String>>>>,
    /// The key sets themselves (fresh by their own max-age, not the epoch).
    pub sets: JwksMemory,
}

/// Who signed a token, as its header says.
enum Signer {
    Server,
    TenantKey(String),
    TenantJwks(String),
}

impl Hub {
    /// The claims of a valid, unexpired client token, signed by the server or
    /// by a key of the tenant it names.
    pub async fn verify_token(&self, token: &str) -> ServiceResult<Claims> {
        Ok(self.verify(token).await?)
    }

    async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let header = jwt::header(token)?;
        let signer = match (header.alg.as_str(), header.kid) {
            (_, None) => Signer::Server,
            ("HS256", Some(kid)) => Signer::TenantKey(kid),
            ("RS256" | "ES256", Some(kid)) => Signer::TenantJwks(kid),
            (other, Some(_)) => return Err(JwtError::UnsupportedAlgorithm(other.to_string()).into()),
        };
        let now = unix_now();
        match signer {
            Signer::Server => {
                if header.alg != jwt::ALG {
                    // A public-key token names its key: without one it has none here.
                    return Err(JwtError::UnsupportedAlgorithm(header.alg).into());
                }
                let key = self.config.jwt_secret.key.expose().as_bytes();
                Ok(jwt::verify(token, key, now)?)
            }
            Signer::TenantKey(kid) => {
                let key = self.key_by_kid(&kid).await?;
                let claims = match &key.material {
                    KeyMaterial::Hs256 { secret } => jwt::verify_with(token, Verifier::Hs256(secret.as_bytes()), now)?,
                    KeyMaterial::Jwks { .. } => {
                        return Err(JwtError::KeyMismatch { alg: header.alg, key: "a JWKS registration" }.into())
                    }
                };
                if claims.tenant_id != key.tenant_id {
                    return Err(JwtError::WrongTenant.into());
                }
                Ok(claims)
            }
            Signer::TenantJwks(kid) => {
                let tenant = claimed_tenant(token)?;
                let set = self.key_set_with(tenant, &kid).await?;
                let Some(jwk) = set.as_ref().and_then(|s| s.find(&kid)) else {
                    return Err(JwtError::UnknownKey(kid).into());
                };
                let claims = jwt::verify_with(token, Verifier::Public(&jwk.key), now)?;
                // The claim chose whose keys to try, and they verified it: the
                // same bytes, so the same tenant (checked all the same).
                if claims.tenant_id != tenant {
                    return Err(JwtError::WrongTenant.into());
                }
                Ok(claims)
            }
        }
    }

    /// The key named `kid` (any tenant's), remembered per shard.
    async fn key_by_kid(&self, kid: &str) -> Result<Rc<SigningKey>, VerifyError> {
        let epoch = self.auth_cache.epoch().current();
        if let Some(key) = self.token_keys.by_kid.borrow().get(kid.to_string(), epoch, Instant::now()) {
            return Ok(key);
        }
        match self.store.signing_key(kid).await {
            Ok(key) => {
                let key = Rc::new(key);
                self.token_keys.by_kid.borrow_mut().remember(kid.to_string(), key.clone(), epoch, Instant::now());
                Ok(key)
            }
            Err(StoreError::NotFound(_)) => Err(JwtError::UnknownKey(kid.to_string()).into()),
            Err(e) => Err(VerifyError::Service(e.into())),
        }
    }

    /// A key set of `tenant` holding `kid`, if any: the fresh sets first;
    /// then sets to refetch (stale ones, and — rate-limited — fresh ones that
    /// lack the kid, the tenant having rotated its keys).
    async fn key_set_with(&self, tenant: Id, kid: &str) -> Result<Option<KeySet>, VerifyError> {
        let urls = self.jwks_urls_of(tenant).await?;
        if urls.is_empty() {
            return Err(JwtError::UnknownKey(kid.to_string()).into());
        }
        let Some(client) = &self.jwks else {
            return Err(JwtError::KeySetUnavailable("JWKS keys are not available on this server".into()).into());
        };
        let sets = &self.token_keys.sets;
        let mut failure = None;
        for url in urls.iter() {
            let set = match sets.fresh(url, Instant::now()) {
                Some(set) => set,
                None => match client.get(url, Want::Fresh).await {
                    Ok(set) => {
                        sets.remember(url, set.clone(), Instant::now());
                        set
                    }
                    Err(why) => {
                        failure = Some(why);
                        continue;
                    }
                },
            };
            if set.find(kid).is_some() {
                return Ok(Some(set));
            }
            // The tenant may have rotated its keys since the set was fetched.
            if !sets.may_ask_for_kid(url, Instant::now()) {
                continue;
            }
            match client.get(url, Want::Kid(kid.to_string())).await {
                Ok(set) => {
                    sets.remember(url, set.clone(), Instant::now());
                    if set.find(kid).is_some() {
                        return Ok(Some(set));
                    }
                }
                Err(why) => failure = Some(why),
            }
        }
        match failure {
            // Only when no set could say: an unknown kid is a plain refusal.
            Some(why) if urls.len() == 1 => Err(JwtError::KeySetUnavailable(why).into()),
            _ => Ok(None),
        }
    }

    /// The JWKS URLs `tenant` registered, remembered per shard.
    async fn jwks_urls_of(&self, tenant: Id) -> Result<Rc<Vec<String>>, VerifyError> {
        let epoch = self.auth_cache.epoch().current();
        if let Some(urls) = self.token_keys.jwks_urls.borrow().get(tenant, epoch, Instant::now()) {
            return Ok(urls);
        }
        let keys = self.store.list_signing_keys(tenant).await.map_err(|e| VerifyError::Service(e.into()))?;
        let urls: Vec<String> = keys.iter().filter_map(|k| k.material.jwks_url().map(str::to_string)).collect();
        let urls = Rc::new(urls);
        self.token_keys.jwks_urls.borrow_mut().remember(tenant, urls.clone(), epoch, Instant::now());
        Ok(urls)
    }
}

/// Whether `token` names a key of its tenant's (not the server's secret).
pub fn is_tenant_signed(token: &str) -> bool {
    jwt::header(token).is_ok_and(|h| h.kid.is_some())
}

/// The `tenant_id` a token claims, read before its signature is checked:
/// only to choose whose keys to check it with.
fn claimed_tenant(token: &str) -> Result<Id, JwtError> {
    #[derive(Deserialize)]
    struct TenantOnly {
        tenant_id: Id,
    }
    let payload = token.split('.').nth(1).ok_or(JwtError::Malformed("expected three dot-separated parts"))?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| JwtError::Malformed("payload is not base64url"))?;
    let claims: TenantOnly = serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed("claims"))?;
    Ok(claims.tenant_id)
}

/// A refusal of the token, or a failure to find out (storage).
enum VerifyError {
    Token(JwtError),
    Service(super::ServiceError),
}

impl From<JwtError> for VerifyError {
    fn from(e: JwtError) -> VerifyError {
        VerifyError::Token(e)
    }
}

impl From<VerifyError> for super::ServiceError {
    fn from(e: VerifyError) -> super::ServiceError {
        match e {
            VerifyError::Token(t) => AuthError::Token(t).into(),
            VerifyError::Service(s) => s,
        }
    }
}

#[cfg(test)]
fn unix_now_for_tests() -> i64 {
    unix_now()
}

#[cfg(test)]
#[path = "token_keys_tests.rs"]
mod tests;
