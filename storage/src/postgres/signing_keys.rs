//! Tenants' signing keys (see `crate::signing_key`).

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::PgStore;
use crate::{Entity, Id, KeyMaterial, SigningKey, StoreError, StoreResult};

const COLS: &str = "kid, tenant_id, kind, secret, jwks_url, created_at";

fn row(r: &Row) -> StoreResult<SigningKey> {
    let col = |e: tokio_postgres::Error| StoreError::Schema(format!("signing_keys: {e}"));
    let kind: String = r.try_get(2).map_err(col)?;
    let material = KeyMaterial::from_columns(&kind, r.try_get(3).map_err(col)?, r.try_get(4).map_err(col)?)
        .ok_or_else(|| StoreError::Schema(format!("signing_keys: a {kind:?} key without its material")))?;
    Ok(SigningKey {
        kid: r.try_get(0).map_err(col)?,
        tenant_id: r.try_get(1).map_err(col)?,
        material,
        created_at: r.try_get(5).map_err(col)?,
    })
}

impl PgStore {
    pub(super) async fn create_signing_key_impl(&self, key: SigningKey) -> StoreResult<SigningKey> {
        // The tenant first, so an unknown one answers NotFound like everywhere else.
        self.get_tenant_impl(key.tenant_id).await?;
        let sql = format!("INSERT INTO signing_keys ({COLS}) VALUES ($1, $2, $3, $4, $5, $6)");
        let (kind, secret, url) = (key.material.kind(), key.material.secret(), key.material.jwks_url());
        let params: [&(dyn ToSql + Sync); 6] = [&key.kid, &key.tenant_id, &kind, &secret, &url, &key.created_at];
        self.pool.get().await?.query(&sql, &params).await?;
        Ok(key)
    }

    pub(super) async fn signing_key_impl(&self, kid: &str) -> StoreResult<SigningKey> {
        let sql = format!("SELECT {COLS} FROM signing_keys WHERE kid = $1");
        self.pool.get().await?.one(&sql, &[&kid], row, Entity::SigningKey).await
    }

    pub(super) async fn list_signing_keys_impl(&self, tenant_id: Id) -> StoreResult<Vec<SigningKey>> {
        let sql = format!("SELECT {COLS} FROM signing_keys WHERE tenant_id = $1 ORDER BY created_at, kid");
        let found = self.pool.get().await?.query(&sql, &[&tenant_id]).await?;
        found.iter().map(row).collect()
    }

    pub(super) async fn delete_signing_key_impl(&self, tenant_id: Id, kid: &str) -> StoreResult<SigningKey> {
        let sql = format!("DELETE FROM signing_keys WHERE kid = $1 AND tenant_id = $2 RETURNING {COLS}");
        let params: [&(dyn ToSql + Sync); 2] = [&kid, &tenant_id];
        self.pool.get().await?.one(&sql, &params, row, Entity::SigningKey).await
    }
}
