//! Tenants: create, read, list, update, API key rotation, lookup by key hash
//! and the tenant's own rate limits.
//! Tenants are admin objects, so none of these calls take a scope.

use std::sync::Arc;

use converger_storage::{new_id, Entity, NewTenant, PageRequest, Status, Store, TenantLimits, TenantPatch};

use crate::harness::{assert_ascending, assert_not_found, key_hash, tenant};

pub async fn tenant_create_get_list_update_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    let hash = key_hash();
    let a = s.create_tenant(NewTenant { name: "Acme".into(), api_key_hash: hash }).await.expect("create tenant");
    assert_eq!(a.name, "Acme");
    assert_eq!(a.status, Status::Active, "a new tenant is active");
    assert!(a.updated_at >= a.created_at);
    assert_eq!(s.get_tenant(a.id).await.expect("get tenant"), a);

    let b = tenant(s, "Globex").await;
    let listed = s.list_tenants(PageRequest::first(100)).await.expect("list tenants");
    assert_eq!(listed.items, vec![a.clone(), b.clone()], "list is every tenant in id order");
    assert_eq!(listed.next, None);

    let renamed = s
        .update_tenant(a.id, TenantPatch { name: Some("Acme Corp".into()), ..Default::default() })
        .await
        .expect("rename tenant");
    assert_eq!((renamed.id, renamed.name.as_str(), renamed.status), (a.id, "Acme Corp", Status::Active));
    assert_eq!(renamed.created_at, a.created_at, "created_at never changes");
    assert!(renamed.updated_at >= a.updated_at);

    let disabled = s
        .update_tenant(a.id, TenantPatch { status: Some(Status::Inactive), ..Default::default() })
        .await
        .expect("disable tenant");
    assert_eq!(disabled.status, Status::Inactive);
    assert_eq!(disabled.name, "Acme Corp", "a patch leaves unnamed fields alone");
    assert_eq!(s.get_tenant(a.id).await.expect("get tenant"), disabled);
    assert_eq!(s.get_tenant(b.id).await.expect("get other tenant"), b, "the other tenant is untouched");
}

pub async fn tenant_key_rotation_moves_lookup_to_the_new_hash(store: Arc<dyn Store>) {
    let s = &*store;
    let old = key_hash();
    let t = s.create_tenant(NewTenant { name: "Acme".into(), api_key_hash: old }).await.expect("create tenant");
    let other = tenant(s, "Globex").await;
    assert_eq!(s.tenant_by_api_key_hash(&old).await.expect("lookup by hash"), t);

    let new = key_hash();
    let rotated =
        s.update_tenant(t.id, TenantPatch { api_key_hash: Some(new), ..Default::default() }).await.expect("rotate key");
    assert_eq!((rotated.id, rotated.name.as_str()), (t.id, "Acme"));
    assert_eq!(s.tenant_by_api_key_hash(&new).await.expect("lookup by new hash").id, t.id);
    assert_not_found(s.tenant_by_api_key_hash(&old).await, Entity::Tenant, "lookup by the rotated-out hash");
    assert_ne!(s.tenant_by_api_key_hash(&new).await.expect("lookup").id, other.id);

    // An inactive tenant is still found by its key: refusing it (403) is the caller's call.
    s.update_tenant(t.id, TenantPatch { status: Some(Status::Inactive), ..Default::default() })
        .await
        .expect("disable tenant");
    let found = s.tenant_by_api_key_hash(&new).await.expect("lookup inactive tenant");
    assert_eq!((found.id, found.status), (t.id, Status::Inactive));
}

pub async fn tenant_unknown_id_or_hash_is_not_found(store: Arc<dyn Store>) {
    let s = &*store;
    tenant(s, "Acme").await;
    assert_not_found(s.get_tenant(new_id()).await, Entity::Tenant, "get_tenant of an unknown id");
    assert_not_found(s.tenant_by_api_key_hash(&key_hash()).await, Entity::Tenant, "lookup of an unknown hash");
    assert_not_found(
        s.update_tenant(new_id(), TenantPatch { name: Some("x".into()), ..Default::default() }).await,
        Entity::Tenant,
        "update_tenant of an unknown id",
    );
    let ids: Vec<_> = s.list_tenants(PageRequest::first(10)).await.expect("list").items.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), 1);
    assert_ascending(&ids, "tenants");
}

/// A tenant's own limits: none when created, set by a patch, kept by patches
/// that do not name them, read back by every lookup, cleared by a patch.
pub async fn tenant_limits_are_set_read_back_and_cleared(store: Arc<dyn Store>) {
    let s = &*store;
    let hash = key_hash();
    let t = s.create_tenant(NewTenant { name: "Acme".into(), api_key_hash: hash }).await.expect("create tenant");
    assert_eq!(t.limits, TenantLimits::default(), "a new tenant has no limits of its own");
    assert_eq!(s.get_tenant(t.id).await.expect("get").limits, TenantLimits::default());
    let other = tenant(s, "Globex").await;

    let limits =
        TenantLimits { requests_per_second: Some(100), activities_per_second: None, deliveries_per_second: Some(5) };
    let set =
        s.update_tenant(t.id, TenantPatch { limits: Some(limits), ..Default::default() }).await.expect("set limits");
    assert_eq!((set.limits, set.name.as_str(), set.status), (limits, "Acme", Status::Active));
    assert_eq!(s.get_tenant(t.id).await.expect("get").limits, limits);
    assert_eq!(s.tenant_by_api_key_hash(&hash).await.expect("lookup").limits, limits);
    let listed = s.list_tenants(PageRequest::first(10)).await.expect("list").items;
    assert_eq!(listed.iter().map(|t| t.limits).collect::<Vec<_>>(), vec![limits, TenantLimits::default()]);

    let renamed = s
        .update_tenant(t.id, TenantPatch { name: Some("Acme Corp".into()), ..Default::default() })
        .await
        .expect("rename");
    assert_eq!(renamed.limits, limits, "a patch without limits keeps them");
    let max = TenantLimits {
        requests_per_second: Some(u32::MAX),
        activities_per_second: Some(1),
        deliveries_per_second: None,
    };
    s.update_tenant(t.id, TenantPatch { limits: Some(max), ..Default::default() }).await.expect("replace limits");
    assert_eq!(s.get_tenant(t.id).await.expect("get").limits, max, "all three replaced");

    let cleared = s
        .update_tenant(t.id, TenantPatch { limits: Some(TenantLimits::default()), ..Default::default() })
        .await
        .expect("clear limits");
    assert_eq!(cleared.limits, TenantLimits::default());
    assert_eq!(s.get_tenant(t.id).await.expect("get").limits, TenantLimits::default());
    assert_eq!(s.get_tenant(other.id).await.expect("get other").limits, TenantLimits::default(), "untouched");
}
