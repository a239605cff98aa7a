//! Tenant operations. The admin's: create with a fresh API key, list, read,
//! rename, enable/disable or set its own rate limits, rotate the key. The key
//! is returned by create and rotate and never again: only its SHA-256 is
//! stored. The tenant's own (its API key): read itself, and set its config
//! (its default pre-publish hook).

use converger_storage::{Id, Json, NewTenant, Page, PageRequest, Status, Tenant, TenantLimits, TenantPatch};
use serde_json::{Map, Value};

use super::input::Fields;
use super::{Caller, Hub, ServiceError, ServiceResult};
use crate::adapters::pre_publish::HookConfig;
use crate::auth::keys;

pub const MAX_NAME_BYTES: usize = 200;
/// The highest per-second limit a tenant may be given (per node).
pub const MAX_RATE_PER_SECOND: u32 = 1_000_000_000;

/// A tenant's new change: any of name, status, limits and config.
#[derive(Debug, Default)]
pub struct TenantPatchInput {
    pub name: Option<String>,
    pub status: Option<Status>,
    pub limits: Option<LimitsPatch>,
    /// Replaces the whole config (checked by [`tenant_config`]).
    pub config: Option<Json>,
}

/// The keys a tenant's config may have.
const CONFIG_KEYS: &[&str] = &["pre_publish"];

/// A tenant's `config` as given: an object of [`CONFIG_KEYS`], its
/// `pre_publish` a hook config like a channel's (`null` or absent: none).
pub fn tenant_config(config: Map<String, Value>) -> ServiceResult<Json> {
    if let Some(k) = config.keys().find(|k| !CONFIG_KEYS.contains(&k.as_str())) {
        let field = format!("config.{k}");
        return Err(ServiceError::invalid(field, format!("unknown key `{k}` (expected: {})", CONFIG_KEYS.join(", "))));
    }
    HookConfig::parse(config.get("pre_publish"), "config.pre_publish")
        .map_err(|e| ServiceError::invalid(e.field, e.message))?;
    Ok(Json::from_value(&Value::Object(config)))
}

/// The tenant's default pre-publish hook, if its config has one. A config
/// that no longer reads (written by a newer binary) has none.
pub fn default_hook(tenant: &Tenant) -> Option<HookConfig> {
    HookConfig::parse(tenant.config.to_value().get("pre_publish"), "config.pre_publish").ok().flatten()
}

/// `PATCH /api/v1/tenant` by the tenant itself: `{config}` only (its name,
/// status and limits are the admin's).
pub fn own_config_from_json(map: Map<String, Value>) -> ServiceResult<Json> {
    let f = Fields::new(map, &["config"])?;
    let config = f.map("config")?.cloned().ok_or_else(|| ServiceError::invalid("config", "`config` is required"))?;
    tenant_config(config)
}

/// A change of a tenant's own limits, key by key: `None` keeps the current
/// value (the key was not given), `Some(None)` clears it (`null`: the
/// server's default applies again), `Some(Some(n))` sets it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitsPatch {
    pub requests_per_second: Option<Option<u32>>,
    pub activities_per_second: Option<Option<u32>>,
    pub deliveries_per_second: Option<Option<u32>>,
}

const LIMIT_KEYS: [&str; 3] = ["requests_per_second", "activities_per_second", "deliveries_per_second"];

impl LimitsPatch {
    /// The `limits` object of a PATCH: only the three keys, each an integer
    /// from 1 to [`MAX_RATE_PER_SECOND`] or `null`; a refusal names
    /// `limits.<key>`.
    pub fn from_json(map: &Map<String, Value>) -> ServiceResult<LimitsPatch> {
        if let Some(unknown) = map.keys().find(|k| !LIMIT_KEYS.contains(&k.as_str())) {
            let field = format!("limits.{unknown}");
            let message = format!("unknown field `{field}` (expected one of: {})", LIMIT_KEYS.join(", "));
            return Err(ServiceError::invalid(field, message));
        }
        let read = |key: &str| -> ServiceResult<Option<Option<u32>>> {
            match map.get(key) {
                None => Ok(None),
                Some(Value::Null) => Ok(Some(None)),
                Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) if (1..=MAX_RATE_PER_SECOND).contains(&n) => Ok(Some(Some(n))),
                    _ => {
                        let field = format!("limits.{key}");
                        let message = format!(
                            "`{field}` must be an integer from 1 to {MAX_RATE_PER_SECOND}, or null for the server's default"
                        );
                        Err(ServiceError::invalid(field, message))
                    }
                },
            }
        };
        Ok(LimitsPatch {
            requests_per_second: read(LIMIT_KEYS[0])?,
            activities_per_second: read(LIMIT_KEYS[1])?,
            deliveries_per_second: read(LIMIT_KEYS[2])?,
        })
    }

    /// Whether every key was given (the current limits are not needed).
    pub fn is_whole(&self) -> bool {
        self.requests_per_second.is_some()
            && self.activities_per_second.is_some()
            && self.deliveries_per_second.is_some()
    }

    /// `current` with this change laid over it.
    pub fn apply(self, current: TenantLimits) -> TenantLimits {
        TenantLimits {
            requests_per_second: self.requests_per_second.unwrap_or(current.requests_per_second),
            activities_per_second: self.activities_per_second.unwrap_or(current.activities_per_second),
            deliveries_per_second: self.deliveries_per_second.unwrap_or(current.deliveries_per_second),
        }
    }
}

impl TenantPatchInput {
    pub fn from_json(map: Map<String, Value>) -> ServiceResult<TenantPatchInput> {
        let f = Fields::new(map, &["name", "status", "limits", "config"])?;
        if f.is_empty() {
            return Err(ServiceError::invalid("status", "nothing to update: give name, status, limits or config"));
        }
        let limits = f.map("limits")?.map(LimitsPatch::from_json).transpose()?;
        let config = f.map("config")?.cloned().map(tenant_config).transpose()?;
        let status = match f.string("status", 16)? {
            None => None,
            Some(s) => Some(Status::parse(&s).ok_or_else(|| {
                ServiceError::invalid("status", format!("unknown status `{s}` (expected active or inactive)"))
            })?),
        };
        Ok(TenantPatchInput { name: f.non_blank_string("name", MAX_NAME_BYTES)?, status, limits, config })
    }
}

/// `{name}` of a tenant to create.
pub fn tenant_name_from_json(map: Map<String, Value>) -> ServiceResult<String> {
    Fields::new(map, &["name"])?.required_string("name", MAX_NAME_BYTES)
}

impl Hub {
    /// A new active tenant and its API key (shown this once).
    pub async fn create_tenant(&self, name: String) -> ServiceResult<(Tenant, String)> {
        let (key, api_key_hash) = keys::generate_api_key()?;
        let tenant = self.store.create_tenant(NewTenant { name, api_key_hash }).await?;
        Ok((tenant, key))
    }

    pub async fn list_tenants(&self, page: PageRequest) -> ServiceResult<Page<Tenant>> {
        Ok(self.store.list_tenants(page).await?)
    }

    pub async fn get_tenant(&self, id: Id) -> ServiceResult<Tenant> {
        Ok(self.store.get_tenant(id).await?)
    }

    /// Renames, enables/disables or sets the tenant's own limits; a disabled
    /// tenant's keys answer 403 at once, new limits hold at once on every
    /// shard of this node and the delivery worker (and within the caches'
    /// TTL on other nodes).
    pub async fn update_tenant(&self, id: Id, patch: TenantPatchInput) -> ServiceResult<Tenant> {
        // The store replaces all three limits: a key left out keeps the value
        // read here. Two admins changing different keys of one tenant at the
        // same instant can lose one change; each answer shows what was stored.
        let limits = match patch.limits {
            None => None,
            Some(change) if change.is_whole() => Some(change.apply(TenantLimits::default())),
            Some(change) => Some(change.apply(self.store.get_tenant(id).await?.limits)),
        };
        let patch =
            TenantPatch { name: patch.name, status: patch.status, api_key_hash: None, limits, config: patch.config };
        let updated = self.store.update_tenant(id, patch).await;
        // Before answering: every shard's remembered keys and limits are retired.
        self.auth_cache.epoch().bump();
        Ok(updated?)
    }

    /// The caller's own tenant.
    pub async fn own_tenant(&self, caller: Caller) -> ServiceResult<Tenant> {
        Ok(self.store.get_tenant(caller.tenant_id()).await?)
    }

    /// Sets the caller's own config; its default pre-publish hook holds for
    /// the next publish on every shard of this node (and within the caches'
    /// TTL on other nodes).
    pub async fn configure_own_tenant(&self, caller: Caller, config: Json) -> ServiceResult<Tenant> {
        let patch = TenantPatchInput { config: Some(config), ..TenantPatchInput::default() };
        self.update_tenant(caller.tenant_id(), patch).await
    }

    /// Replaces the API key; the old one stops working at once.
    pub async fn rotate_tenant_key(&self, id: Id) -> ServiceResult<(Tenant, String)> {
        let (key, hash) = keys::generate_api_key()?;
        let patch = TenantPatch { api_key_hash: Some(hash), ..TenantPatch::default() };
        let updated = self.store.update_tenant(id, patch).await;
        self.auth_cache.epoch().bump();
        Ok((updated?, key))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patch(v: Value) -> ServiceResult<TenantPatchInput> {
        TenantPatchInput::from_json(v.as_object().cloned().expect("object"))
    }

    fn refused_field(v: Value) -> String {
        match patch(v.clone()) {
            Err(ServiceError::Validation { field, .. }) => field,
            other => panic!("{v}: expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn limits_are_read_key_by_key_null_clearing_and_absent_keeping() {
        let p = patch(json!({"limits": {"requests_per_second": 1, "deliveries_per_second": null}})).expect("patch");
        let limits = p.limits.expect("limits given");
        assert_eq!(
            limits,
            LimitsPatch {
                requests_per_second: Some(Some(1)),
                activities_per_second: None,
                deliveries_per_second: Some(None)
            }
        );
        assert!(!limits.is_whole());
        let current = TenantLimits {
            requests_per_second: Some(9),
            activities_per_second: Some(8),
            deliveries_per_second: Some(7),
        };
        let applied = limits.apply(current);
        assert_eq!(
            applied,
            TenantLimits { requests_per_second: Some(1), activities_per_second: Some(8), deliveries_per_second: None }
        );
        let max = json!({"limits": {"requests_per_second": 1_000_000_000, "activities_per_second": null,
                                    "deliveries_per_second": 80}});
        assert!(patch(max).expect("patch").limits.expect("limits").is_whole());
        let empty = patch(json!({"limits": {}})).expect("an empty object changes nothing");
        assert_eq!(empty.limits.map(|l| l.apply(current)), Some(current));
        assert!(patch(json!({"limits": null, "name": "n"})).expect("null is absent").limits.is_none());
    }

    #[test]
    fn bad_limits_are_refused_naming_the_field() {
        assert_eq!(refused_field(json!({"limits": 5})), "limits");
        assert_eq!(refused_field(json!({"limits": [1]})), "limits");
        assert_eq!(refused_field(json!({"limits": {"requests": 5}})), "limits.requests");
        assert_eq!(refused_field(json!({"limits": {"deliveries_per_second": 5, "x": null}})), "limits.x");
        for bad in [json!(0), json!(-1), json!(1_000_000_001u64), json!(1.5), json!(5.0), json!("5"), json!(true)] {
            let body = json!({"limits": {"activities_per_second": bad}});
            assert_eq!(refused_field(body), "limits.activities_per_second", "{bad}");
        }
        assert_eq!(
            refused_field(json!({"limits": {"deliveries_per_second": u64::MAX}})),
            "limits.deliveries_per_second"
        );
        assert_eq!(refused_field(json!({"limits": null})), "status", "nothing to update");
    }
}
