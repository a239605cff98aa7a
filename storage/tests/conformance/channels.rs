//! Channels: create, read, list with a status filter, update every patchable
//! field, and the typed error for a tenant that does not exist.

use std::sync::Arc;

use converger_storage::{new_id, ChannelFilter, ChannelPatch, Entity, PageRequest, Scope, Status, Store, StoreError};

use crate::harness::{assert_not_found, channel, json, new_channel, tenant};

pub async fn channel_create_get_list_update_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    let scope = Scope::Tenant(t.id);
    let new = new_channel(t.id, "support");
    let c = s.create_channel(new.clone()).await.expect("create channel");
    assert_eq!(c.tenant_id, t.id);
    assert_eq!((c.name.as_str(), c.kind.as_str(), c.secret.as_str()), ("support", "webhook", new.secret.as_str()));
    assert_eq!(c.config, new.config, "config round-trips by value");
    assert_eq!(c.status, Status::Active, "a new channel is active");
    assert!(c.updated_at >= c.created_at);
    assert_eq!(s.get_channel(scope, c.id).await.expect("get channel"), c);
    assert_eq!(s.get_channel(Scope::Admin, c.id).await.expect("admin get channel"), c);

    let page = s.list_channels(scope, ChannelFilter::default(), PageRequest::first(10)).await.expect("list");
    assert_eq!(page.items, vec![c.clone()]);
    assert_eq!(page.next, None);

    let config = json(r#"{"url": "http://127.0.0.1:9/other", "method": "PUT", "nested": {"a": [1, 2.5, "é✓"]}}"#);
    let patches = [
        ChannelPatch { name: Some("sales".into()), ..Default::default() },
        ChannelPatch { config: Some(config.clone()), ..Default::default() },
        ChannelPatch { status: Some(Status::Inactive), ..Default::default() },
        ChannelPatch { secret: Some("rotated-secret".into()), ..Default::default() },
    ];
    let mut last = c.clone();
    for patch in patches {
        let updated = s.update_channel(scope, c.id, patch.clone()).await.expect("update channel");
        assert_eq!(updated.name, patch.name.clone().unwrap_or(last.name.clone()), "{patch:?}");
        assert_eq!(updated.config, patch.config.clone().unwrap_or(last.config.clone()), "{patch:?}");
        assert_eq!(updated.status, patch.status.unwrap_or(last.status), "{patch:?}");
        assert_eq!(updated.secret, patch.secret.clone().unwrap_or(last.secret.clone()), "{patch:?}");
        assert_eq!((updated.id, updated.tenant_id, &updated.kind), (c.id, t.id, &c.kind));
        assert_eq!(updated.created_at, c.created_at, "created_at never changes");
        assert!(updated.updated_at >= last.updated_at);
        assert_eq!(s.get_channel(scope, c.id).await.expect("get channel"), updated, "the update is stored");
        last = updated;
    }
    assert_eq!((last.name.as_str(), last.status, last.secret.as_str()), ("sales", Status::Inactive, "rotated-secret"));
    assert_eq!(last.config, config);
}

pub async fn channel_list_filters_by_status(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    let scope = Scope::Tenant(t.id);
    let a = channel(s, t.id, "a").await;
    let b = channel(s, t.id, "b").await;
    let c = channel(s, t.id, "c").await;
    s.update_channel(scope, b.id, ChannelPatch { status: Some(Status::Inactive), ..Default::default() })
        .await
        .expect("disable b");
    let ids = |status| async move {
        let filter = ChannelFilter { status };
        let page = s.list_channels(scope, filter, PageRequest::first(100)).await.expect("list channels");
        page.items.iter().map(|c| c.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(None).await, vec![a.id, b.id, c.id]);
    assert_eq!(ids(Some(Status::Active)).await, vec![a.id, c.id]);
    assert_eq!(ids(Some(Status::Inactive)).await, vec![b.id]);
}

pub async fn channel_unknown_tenant_or_id_is_a_typed_error(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    match s.create_channel(new_channel(new_id(), "orphan")).await {
        Err(StoreError::NotFound(Entity::Tenant)) | Err(StoreError::ForeignKey(_)) => {}
        other => panic!("create_channel for a missing tenant: expected NotFound(tenant) or ForeignKey, got {other:?}"),
    }
    let page = s.list_channels(Scope::Admin, ChannelFilter::default(), PageRequest::first(10)).await.expect("list");
    assert!(page.items.is_empty(), "nothing was created: {:?}", page.items);

    let scope = Scope::Tenant(t.id);
    assert_not_found(s.get_channel(scope, new_id()).await, Entity::Channel, "get_channel of an unknown id");
    assert_not_found(
        s.update_channel(scope, new_id(), ChannelPatch { name: Some("x".into()), ..Default::default() }).await,
        Entity::Channel,
        "update_channel of an unknown id",
    );
}
