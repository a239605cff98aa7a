//! Tenants' signing keys: create, look up by kid (whatever the tenant), list
//! per tenant, delete within the tenant only.

use std::sync::Arc;

use converger_storage::{new_id, Entity, KeyMaterial, SigningKey, Store, StoreError, Timestamp};

use crate::harness::{assert_not_found, tenant};

fn key(kid: &str, tenant_id: converger_storage::Id, material: KeyMaterial, micros: i64) -> SigningKey {
    SigningKey { kid: kid.into(), tenant_id, material, created_at: Timestamp::from_micros(micros) }
}

pub async fn signing_keys_round_trip_by_kid_and_by_tenant(store: Arc<dyn Store>) {
    let s = &*store;
    let (a, b) = (tenant(s, "Acme").await, tenant(s, "Globex").await);
    let hs = key("k1", a.id, KeyMaterial::Hs256 { secret: "cvk_secret".into() }, 1_000_000);
    let jwks = key("k2", a.id, KeyMaterial::Jwks { url: "https://idp.example/jwks.json".into() }, 2_000_000);
    let theirs = key("k3", b.id, KeyMaterial::Hs256 { secret: "cvk_other".into() }, 1_500_000);
    for k in [&jwks, &hs, &theirs] {
        assert_eq!(&s.create_signing_key(k.clone()).await.expect("create key"), k);
    }
    assert_eq!(s.signing_key("k1").await.expect("by kid"), hs);
    assert_eq!(s.signing_key("k2").await.expect("by kid"), jwks);
    assert_eq!(s.signing_key("k3").await.expect("another tenant's, by kid"), theirs);
    assert_not_found(s.signing_key("nope").await, Entity::SigningKey, "an unknown kid");
    assert_eq!(s.list_signing_keys(a.id).await.expect("list"), vec![hs.clone(), jwks.clone()], "oldest first");
    assert_eq!(s.list_signing_keys(b.id).await.expect("list"), vec![theirs.clone()]);
    assert_eq!(s.list_signing_keys(new_id()).await.expect("list of nobody"), vec![]);
}

pub async fn signing_keys_are_deleted_only_by_their_tenant(store: Arc<dyn Store>) {
    let s = &*store;
    let (a, b) = (tenant(s, "Acme").await, tenant(s, "Globex").await);
    let k = key("ka", a.id, KeyMaterial::Hs256 { secret: "cvk_a".into() }, 1_000_000);
    s.create_signing_key(k.clone()).await.expect("create");
    assert_not_found(s.delete_signing_key(b.id, "ka").await, Entity::SigningKey, "another tenant's key");
    assert_eq!(s.signing_key("ka").await.expect("still there"), k);
    assert_eq!(s.delete_signing_key(a.id, "ka").await.expect("delete"), k);
    assert_not_found(s.signing_key("ka").await, Entity::SigningKey, "a deleted key");
    assert_not_found(s.delete_signing_key(a.id, "ka").await, Entity::SigningKey, "deleted twice");
    assert_eq!(s.list_signing_keys(a.id).await.expect("list"), vec![]);
}

pub async fn signing_key_kids_are_unique_and_tenants_must_exist(store: Arc<dyn Store>) {
    let s = &*store;
    let (a, b) = (tenant(s, "Acme").await, tenant(s, "Globex").await);
    s.create_signing_key(key("dup", a.id, KeyMaterial::Hs256 { secret: "x".into() }, 1)).await.expect("create");
    let again = s.create_signing_key(key("dup", b.id, KeyMaterial::Hs256 { secret: "y".into() }, 2)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "a kid is unique across tenants: {again:?}");
    assert_eq!(s.signing_key("dup").await.expect("the first stays").tenant_id, a.id);
    let orphan = s.create_signing_key(key("o", new_id(), KeyMaterial::Hs256 { secret: "z".into() }, 3)).await;
    assert_not_found(orphan, Entity::Tenant, "a key of an unknown tenant");
}
