//! Tenant operations (admin only): create with a fresh API key, list, read,
//! rename or enable/disable, rotate the key. The key is returned by create and
//! rotate and never again: only its SHA-256 is stored.

use converger_storage::{Id, NewTenant, Page, PageRequest, Status, Tenant, TenantPatch};
use serde_json::{Map, Value};

use super::input::Fields;
use super::{Hub, ServiceError, ServiceResult};
use crate::auth::keys;

pub const MAX_NAME_BYTES: usize = 200;

/// A tenant's new change: name and/or status.
#[derive(Debug, Default)]
pub struct TenantPatchInput {
    pub name: Option<String>,
    pub status: Option<Status>,
}

impl TenantPatchInput {
    pub fn from_json(map: Map<String, Value>) -> ServiceResult<TenantPatchInput> {
        let f = Fields::new(map, &["name", "status"])?;
        if f.is_empty() {
            return Err(ServiceError::invalid("status", "nothing to update: give name or status"));
        }
        let status = match f.string("status", 16)? {
            None => None,
            Some(s) => Some(Status::parse(&s).ok_or_else(|| {
                ServiceError::invalid("status", format!("unknown status `{s}` (expected active or inactive)"))
            })?),
        };
        Ok(TenantPatchInput { name: f.non_blank_string("name", MAX_NAME_BYTES)?, status })
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

    /// Renames or enables/disables; a disabled tenant's keys answer 403 at once.
    pub async fn update_tenant(&self, id: Id, patch: TenantPatchInput) -> ServiceResult<Tenant> {
        let patch = TenantPatch { name: patch.name, status: patch.status, api_key_hash: None, limits: None };
        let updated = self.store.update_tenant(id, patch).await;
        // Before answering: every shard's remembered keys are retired.
        self.auth_cache.epoch().bump();
        Ok(updated?)
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
