//! Tenants: admin-only, so no tenant scope here.

use tokio_postgres::types::ToSql;

use super::query::ListQuery;
use super::rows::{self, TENANT_COLS};
use super::PgStore;
use crate::{
    Entity, Id, NewTenant, Page, PageRequest, Status, StoreResult, Tenant, TenantLimits, TenantPatch, Timestamp,
};

impl PgStore {
    pub(super) async fn create_tenant_impl(&self, new: NewTenant) -> StoreResult<Tenant> {
        let now = Timestamp::now();
        let t = new.tenant(now);
        let mut conn = self.pool.get().await?;
        let sql = "INSERT INTO tenants (id, name, api_key_hash, status, created_at, updated_at, limits) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let limits = t.limits.to_stored();
        conn.query(sql, &[&t.id, &t.name, &&new.api_key_hash[..], &t.status.as_str(), &now, &now, &limits]).await?;
        Ok(t)
    }

    pub(super) async fn get_tenant_impl(&self, id: Id) -> StoreResult<Tenant> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1");
        self.pool.get().await?.one(&sql, &[&id], rows::tenant, Entity::Tenant).await
    }

    pub(super) async fn tenant_by_api_key_hash_impl(&self, hash: &[u8; 32]) -> StoreResult<Tenant> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE api_key_hash = $1");
        self.pool.get().await?.one(&sql, &[&&hash[..]], rows::tenant, Entity::Tenant).await
    }

    pub(super) async fn list_tenants_impl(&self, page: PageRequest) -> StoreResult<Page<Tenant>> {
        let mut conn = self.pool.get().await?;
        ListQuery::new(TENANT_COLS, "tenants").fetch(&mut conn, page, rows::tenant, |t| t.id).await
    }

    pub(super) async fn update_tenant_impl(&self, id: Id, patch: TenantPatch) -> StoreResult<Tenant> {
        let sql = format!(
            "UPDATE tenants SET name = COALESCE($2::text, name), status = COALESCE($3::text, status), \
             api_key_hash = COALESCE($4::bytea, api_key_hash), updated_at = $5, \
             limits = COALESCE($6::jsonb, limits), config = COALESCE($7::jsonb, config) \
             WHERE id = $1 RETURNING {TENANT_COLS}"
        );
        let status = patch.status.map(Status::as_str);
        let hash = patch.api_key_hash.as_ref().map(|h| &h[..]);
        let limits = patch.limits.map(TenantLimits::to_stored);
        let now = Timestamp::now();
        let params: [&(dyn ToSql + Sync); 7] = [&id, &patch.name, &status, &hash, &now, &limits, &patch.config];
        self.pool.get().await?.one(&sql, &params, rows::tenant, Entity::Tenant).await
    }
}
