//! Tenants' signing keys (see `crate::signing_key`).

use rusqlite::{params, Connection, Row};

use super::crud::get_tenant;
use super::rows::{found, sql_err};
use crate::{Entity, Id, KeyMaterial, SigningKey, StoreResult};

const COLS: &str = "kid, tenant_id, kind, secret, jwks_url, created_at";

fn row(r: &Row<'_>) -> rusqlite::Result<SigningKey> {
    let kind: String = r.get(2)?;
    let material = KeyMaterial::from_columns(&kind, r.get(3)?, r.get(4)?).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, format!("bad key {kind:?}").into())
    })?;
    Ok(SigningKey { kid: r.get(0)?, tenant_id: r.get(1)?, material, created_at: r.get(5)? })
}

pub(crate) fn create(conn: &Connection, key: SigningKey) -> StoreResult<SigningKey> {
    get_tenant(conn, key.tenant_id)?;
    conn.prepare_cached(&format!("INSERT INTO signing_keys ({COLS}) VALUES (?, ?, ?, ?, ?, ?)"))
        .and_then(|mut s| {
            s.execute(params![
                key.kid,
                key.tenant_id,
                key.material.kind(),
                key.material.secret(),
                key.material.jwks_url(),
                key.created_at
            ])
        })
        .map_err(sql_err)?;
    Ok(key)
}

pub(crate) fn get(conn: &Connection, kid: &str) -> StoreResult<SigningKey> {
    let sql = format!("SELECT {COLS} FROM signing_keys WHERE kid = ?");
    found(Entity::SigningKey, conn.prepare_cached(&sql).and_then(|mut s| s.query_row([kid], row)))
}

pub(crate) fn list(conn: &Connection, tenant_id: Id) -> StoreResult<Vec<SigningKey>> {
    let sql = format!("SELECT {COLS} FROM signing_keys WHERE tenant_id = ? ORDER BY created_at, kid");
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_map([tenant_id], row)?.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(sql_err)
}

pub(crate) fn delete(conn: &Connection, tenant_id: Id, kid: &str) -> StoreResult<SigningKey> {
    let sql = format!("DELETE FROM signing_keys WHERE kid = ? AND tenant_id = ? RETURNING {COLS}");
    found(Entity::SigningKey, conn.prepare_cached(&sql).and_then(|mut s| s.query_row(params![kid, tenant_id], row)))
}
