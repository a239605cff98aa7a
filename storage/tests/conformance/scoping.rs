//! Tenant isolation: with `Scope::Tenant(A)` every call on B's ids answers
//! `NotFound` and changes nothing; lists never show B's rows; `Scope::Admin`
//! sees both tenants. Also the admin stats counts.

use std::sync::Arc;

use converger_storage::{
    ChannelFilter, ChannelPatch, ConversationFilter, ConversationStatus, Delivery, DeliveryFilter, DeliveryOutcome,
    DeliveryStatus, Entity, PageRequest, Scope, Stats, Status, Store, StoreError, Timestamp,
};

use crate::harness::{
    assert_not_found, channel, conversation, json, keyed, message, tenant, world, write, write_one, World,
};

/// A world whose conversation holds one activity delivered to its channel.
async fn populated(store: &dyn Store, name: &str) -> (World, Delivery) {
    let w = world(store, name).await;
    let mut m = message(&w.conversation, "hello");
    m.deliver_to = vec![w.channel.id];
    write_one(store, m).await;
    let page = store.list_deliveries(Scope::Tenant(w.tenant.id), DeliveryFilter::default(), PageRequest::first(10));
    let delivery = page.await.expect("list deliveries").items.remove(0);
    (w, delivery)
}

pub async fn tenant_scope_hides_other_tenants_objects(store: Arc<dyn Store>) {
    let s = &*store;
    let (a, _) = populated(s, "Acme").await;
    let (b, b_delivery) = populated(s, "Globex").await;
    // Fail B's delivery so retry_delivery has something it could act on.
    let b_delivery = s
        .complete_delivery(b_delivery.id, 0, DeliveryOutcome::Failed { error: "boom".into() })
        .await
        .expect("fail B's delivery");
    let as_a = Scope::Tenant(a.tenant.id);
    let page = PageRequest::first(100);

    assert_not_found(s.get_channel(as_a, b.channel.id).await, Entity::Channel, "get B's channel as A");
    let patch = ChannelPatch { name: Some("hijacked".into()), status: Some(Status::Inactive), ..Default::default() };
    assert_not_found(s.update_channel(as_a, b.channel.id, patch).await, Entity::Channel, "update B's channel as A");
    assert_not_found(s.get_conversation(as_a, b.conversation.id).await, Entity::Conversation, "get B's conversation");
    assert_not_found(
        s.close_conversation(as_a, b.conversation.id).await,
        Entity::Conversation,
        "close B's conversation",
    );
    assert_not_found(
        s.read_range(as_a, b.conversation.id, 0, 100, None).await,
        Entity::Conversation,
        "read B's activities",
    );
    assert_not_found(s.get_delivery(as_a, b_delivery.id).await, Entity::Delivery, "get B's delivery");
    assert_not_found(
        s.merge_delivery_metadata(as_a, b_delivery.id, json(r#"{"x": 1}"#)).await,
        Entity::Delivery,
        "merge into B's delivery",
    );
    assert_not_found(s.retry_delivery(as_a, b_delivery.id).await, Entity::Delivery, "retry B's delivery");

    let channels = s.list_channels(as_a, ChannelFilter::default(), page).await.expect("list channels");
    assert_eq!(channels.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a.channel.id]);
    let conversations = s.list_conversations(as_a, ConversationFilter::default(), page).await.expect("list");
    assert_eq!(conversations.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a.conversation.id]);
    let deliveries = s.list_deliveries(as_a, DeliveryFilter::default(), page).await.expect("list deliveries");
    assert!(deliveries.items.iter().all(|d| d.tenant_id == a.tenant.id) && deliveries.items.len() == 1);
    // Filtering by B's ids lists nothing (or answers NotFound): never B's rows.
    let by_b_channel = ConversationFilter { channel_id: Some(b.channel.id), status: None };
    match s.list_conversations(as_a, by_b_channel, page).await {
        Ok(p) => assert!(p.items.is_empty(), "A listed B's conversations: {:?}", p.items),
        Err(StoreError::NotFound(Entity::Channel)) => {}
        Err(e) => panic!("list by B's channel as A: expected empty or NotFound(channel), got {e:?}"),
    }
    let by_b_activity = DeliveryFilter { activity_id: Some(b_delivery.activity_id), ..Default::default() };
    match s.list_deliveries(as_a, by_b_activity, page).await {
        Ok(p) => assert!(p.items.is_empty(), "A listed B's deliveries: {:?}", p.items),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => panic!("list by B's activity as A: expected empty or NotFound, got {e:?}"),
    }

    // B's objects are untouched, and the admin sees both tenants.
    let admin = Scope::Admin;
    assert_eq!(s.get_channel(admin, b.channel.id).await.expect("admin get channel"), b.channel);
    let conv = s.get_conversation(admin, b.conversation.id).await.expect("admin get conversation");
    assert_eq!((conv.status, conv.last_seq), (ConversationStatus::Active, 1));
    assert_eq!(s.read_range(admin, b.conversation.id, 0, 100, None).await.expect("admin read").len(), 1);
    assert_eq!(s.get_delivery(admin, b_delivery.id).await.expect("admin get delivery"), b_delivery);
    assert_eq!(s.list_channels(admin, ChannelFilter::default(), page).await.expect("list").items.len(), 2);
    assert_eq!(s.list_conversations(admin, ConversationFilter::default(), page).await.expect("list").items.len(), 2);
    assert_eq!(s.list_deliveries(admin, DeliveryFilter::default(), page).await.expect("list").items.len(), 2);
    // B still reaches its own objects through its own scope.
    let as_b = Scope::Tenant(b.tenant.id);
    assert_eq!(s.get_channel(as_b, b.channel.id).await.expect("B gets its channel"), b.channel);
    let retried = s.retry_delivery(as_b, b_delivery.id).await.expect("B retries its delivery");
    assert_eq!(retried.status, DeliveryStatus::Pending);
}

pub async fn stats_count_every_entity(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(s.stats().await.expect("stats of an empty store"), Stats::default());
    let a = world(s, "Acme").await;
    let b = tenant(s, "Globex").await;
    let b_channel = channel(s, b.id, "theirs").await;
    conversation(s, &b_channel).await;
    conversation(s, &a.channel).await;
    let batch: Vec<_> = (0..5)
        .map(|i| {
            let mut m = keyed(&a.conversation, &format!("m{i}"), &format!("k{i}"));
            m.deliver_to = vec![a.channel.id];
            m
        })
        .collect();
    write(s, batch.clone()).await;
    write(s, batch[..2].to_vec()).await; // replays count nothing
    let filter = DeliveryFilter { channel_id: Some(a.channel.id), ..Default::default() };
    let ids: Vec<_> = s.list_deliveries(Scope::Admin, filter, PageRequest::first(10)).await.expect("list").items;
    s.complete_delivery(ids[0].id, 0, DeliveryOutcome::Delivered { at: Timestamp::now(), metadata: None })
        .await
        .expect("deliver");
    s.complete_delivery(ids[1].id, 0, DeliveryOutcome::Delivered { at: Timestamp::now(), metadata: None })
        .await
        .expect("deliver");
    s.complete_delivery(ids[2].id, 0, DeliveryOutcome::Failed { error: "x".into() }).await.expect("fail");
    let want = Stats {
        tenants: 2,
        channels: 2,
        conversations: 3,
        activities: 5,
        deliveries_pending: 2,
        deliveries_delivered: 2,
        deliveries_failed: 1,
    };
    assert_eq!(s.stats().await.expect("stats"), want);
}
