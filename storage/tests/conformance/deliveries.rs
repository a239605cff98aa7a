//! Delivery rows: written in the activity's transaction, one per (activity,
//! channel), listed and read with filters, metadata merged; a `deliver_to`
//! channel that does not exist fails the whole batch with a typed error.

use std::collections::HashSet;
use std::sync::Arc;

use converger_storage::{
    new_id, DeliveryFilter, DeliveryStatus, Entity, Id, PageRequest, Scope, Store, StoreError, Timestamp,
};

use crate::harness::{all_activities, assert_not_found, channel, json, keyed, message, world, write_one, World};

pub async fn deliveries_are_written_with_their_activity(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let second = channel(s, w.tenant.id, "second").await;
    let mut new = keyed(&w.conversation, "deliver me", "k");
    new.deliver_to = vec![w.channel.id, second.id];
    let activity = write_one(s, new.clone()).await.into_activity();
    let written_by = Timestamp::now();

    let filter = DeliveryFilter { activity_id: Some(activity.id), ..Default::default() };
    let page = s.list_deliveries(Scope::Tenant(w.tenant.id), filter, PageRequest::first(10)).await.expect("list");
    assert_eq!(page.next, None);
    let mut channels: Vec<_> = page.items.iter().map(|d| d.channel_id).collect();
    channels.sort();
    let mut wanted = vec![w.channel.id, second.id];
    wanted.sort();
    assert_eq!(channels, wanted, "one row per (activity, channel)");
    for d in &page.items {
        assert_eq!((d.activity_id, d.tenant_id), (activity.id, w.tenant.id));
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 0));
        assert_eq!((&d.last_error, d.delivered_at), (&None, None));
        assert!(d.metadata.is_object(), "metadata is a JSON object: {}", d.metadata);
        assert!(d.next_attempt_at <= written_by, "a new delivery is due at once");
        assert_eq!(s.get_delivery(Scope::Tenant(w.tenant.id), d.id).await.expect("get"), *d);
    }

    // A replay of the same key creates no new delivery.
    let again = write_one(s, new).await;
    assert!(again.is_replay());
    let all = s.list_deliveries(Scope::Admin, DeliveryFilter::default(), PageRequest::first(100)).await;
    assert_eq!(all.expect("list").items.len(), 2, "a replay writes no delivery");
    assert_eq!(s.stats().await.expect("stats").deliveries_pending, 2);
}

/// Writes a good item and one delivered to `target`, which the writer may not
/// use: the call must fail as a whole with a typed error and write nothing.
async fn assert_deliver_to_refused(s: &dyn Store, w: &World, target: Id, what: &str) {
    let mut good = message(&w.conversation, "good");
    good.deliver_to = vec![w.channel.id];
    let mut bad = message(&w.conversation, "bad");
    bad.deliver_to = vec![target];
    match s.write_batch(vec![good, bad]).await {
        Err(StoreError::ForeignKey(_)) | Err(StoreError::NotFound(Entity::Channel)) => {}
        other => panic!(
            "deliver_to naming {what}: expected the call to fail with ForeignKey or NotFound(channel), got {other:?}"
        ),
    }
    assert!(all_activities(s, w.conversation.id).await.is_empty(), "{what}: nothing of the batch was written");
    let all = s.list_deliveries(Scope::Admin, DeliveryFilter::default(), PageRequest::first(100)).await;
    assert!(all.expect("list").items.is_empty(), "{what}: no delivery was written");
    assert_eq!(s.get_conversation(Scope::Admin, w.conversation.id).await.expect("get").last_seq, 0);
}

pub async fn unknown_deliver_to_channel_fails_the_whole_batch(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    assert_deliver_to_refused(s, &w, new_id(), "a missing channel").await;
    // The failed batch consumed no seq.
    assert_eq!(write_one(s, message(&w.conversation, "after")).await.activity().seq, 1);
}

/// "Every read and write is scoped": another tenant's channel id in `deliver_to`
/// is answered like an id that does not exist, and nothing lands in B's queue.
pub async fn deliver_to_another_tenants_channel_is_refused_like_a_missing_one(store: Arc<dyn Store>) {
    let s = &*store;
    let a = world(s, "Acme").await;
    let b = world(s, "Globex").await;
    assert_deliver_to_refused(s, &a, b.channel.id, "another tenant's channel").await;
}

pub async fn deliveries_list_filters_and_get(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let other = channel(s, w.tenant.id, "other").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut new = message(&w.conversation, &format!("m{i}"));
        new.deliver_to = vec![w.channel.id, other.id];
        ids.push(write_one(s, new).await.activity().id);
    }
    let scope = Scope::Tenant(w.tenant.id);
    let list = |filter| async move {
        s.list_deliveries(scope, filter, PageRequest::first(100)).await.expect("list deliveries").items
    };
    let all = list(DeliveryFilter::default()).await;
    assert_eq!(all.len(), 6);
    let unique: HashSet<_> = all.iter().map(|d| d.id).collect();
    assert_eq!(unique.len(), 6);
    let by_activity = list(DeliveryFilter { activity_id: Some(ids[1]), ..Default::default() }).await;
    assert_eq!(by_activity.len(), 2);
    assert!(by_activity.iter().all(|d| d.activity_id == ids[1]));
    let by_channel = list(DeliveryFilter { channel_id: Some(other.id), ..Default::default() }).await;
    assert_eq!(by_channel.iter().map(|d| d.activity_id).collect::<Vec<_>>(), ids, "id order = activity order");
    assert!(by_channel.iter().all(|d| d.channel_id == other.id));

    let failed = by_channel[0].id;
    let reason = converger_storage::DeliveryOutcome::Failed { error: "HTTP 410".into() };
    s.complete_delivery(failed, 0, reason).await.expect("fail one");
    let pending = list(DeliveryFilter { status: Some(DeliveryStatus::Pending), ..Default::default() }).await;
    assert_eq!(pending.len(), 5);
    let failed_rows = list(DeliveryFilter { status: Some(DeliveryStatus::Failed), ..Default::default() }).await;
    assert_eq!(failed_rows.iter().map(|d| d.id).collect::<Vec<_>>(), vec![failed]);
    let combined = DeliveryFilter { activity_id: Some(ids[0]), channel_id: Some(other.id), status: None };
    assert_eq!(list(combined).await.iter().map(|d| d.id).collect::<Vec<_>>(), vec![failed]);
    let none = DeliveryFilter {
        activity_id: Some(ids[0]),
        channel_id: Some(other.id),
        status: Some(DeliveryStatus::Delivered),
    };
    assert!(list(none).await.is_empty());
    assert!(list(DeliveryFilter { activity_id: Some(new_id()), ..Default::default() }).await.is_empty());

    let got = s.get_delivery(scope, failed).await.expect("get");
    assert_eq!((got.status, got.last_error.as_deref()), (DeliveryStatus::Failed, Some("HTTP 410")));
    assert_not_found(s.get_delivery(scope, new_id()).await, Entity::Delivery, "get_delivery of an unknown id");
}

pub async fn merge_delivery_metadata_merges_top_level_keys(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let mut new = message(&w.conversation, "m");
    new.deliver_to = vec![w.channel.id];
    let activity = write_one(s, new).await.into_activity();
    let filter = DeliveryFilter { activity_id: Some(activity.id), ..Default::default() };
    let scope = Scope::Tenant(w.tenant.id);
    let d = s.list_deliveries(scope, filter, PageRequest::first(1)).await.expect("list").items.remove(0);

    let step1 = s.merge_delivery_metadata(scope, d.id, json(r#"{"provider_id": "wamid.1", "n": 1}"#)).await;
    assert_eq!(step1.expect("merge").metadata, json(r#"{"provider_id": "wamid.1", "n": 1}"#));
    let step2 = s.merge_delivery_metadata(scope, d.id, json(r#"{"status": {"read": true}, "n": 2}"#)).await;
    let merged = json(r#"{"provider_id": "wamid.1", "n": 2, "status": {"read": true}}"#);
    assert_eq!(step2.expect("merge").metadata, merged, "keys are added and replaced, others kept");
    let step3 = s.merge_delivery_metadata(Scope::Admin, d.id, json("{}")).await;
    assert_eq!(step3.expect("admin merge").metadata, merged, "an empty patch changes nothing");
    let stored = s.get_delivery(scope, d.id).await.expect("get");
    assert_eq!(stored.metadata, merged);
    assert_eq!((stored.status, stored.attempts, stored.next_attempt_at), (d.status, d.attempts, d.next_attempt_at));
    assert_not_found(
        s.merge_delivery_metadata(scope, new_id(), json(r#"{"a": 1}"#)).await,
        Entity::Delivery,
        "merge into an unknown delivery",
    );
}

pub async fn deliver_to_naming_a_channel_twice_writes_one_row(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let mut new = message(&w.conversation, "twice");
    new.deliver_to = vec![w.channel.id, w.channel.id];
    let activity = write_one(s, new).await.into_activity();
    let filter = DeliveryFilter { activity_id: Some(activity.id), ..Default::default() };
    let page = s.list_deliveries(Scope::Admin, filter, PageRequest::first(10)).await.expect("list");
    assert_eq!(page.items.len(), 1, "one row per (activity, channel)");
}

pub async fn merge_delivery_metadata_rejects_a_non_object(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let mut new = message(&w.conversation, "m");
    new.deliver_to = vec![w.channel.id];
    let activity = write_one(s, new).await.into_activity();
    let filter = DeliveryFilter { activity_id: Some(activity.id), ..Default::default() };
    let d = s.list_deliveries(Scope::Admin, filter, PageRequest::first(1)).await.expect("list").items.remove(0);
    let got = s.merge_delivery_metadata(Scope::Admin, d.id, json("[1]")).await;
    assert!(matches!(got, Err(StoreError::Invalid(_))), "got {got:?}");
}

/// The delivery of `activity` on `channel`.
async fn delivery_of(s: &dyn Store, activity: Id, channel: Id) -> converger_storage::Delivery {
    let filter = DeliveryFilter { activity_id: Some(activity), channel_id: Some(channel), status: None };
    s.list_deliveries(Scope::Admin, filter, PageRequest::first(1)).await.expect("list").items.remove(0)
}

pub async fn find_delivery_by_provider_id_finds_the_one_that_recorded_it(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let scope = Scope::Tenant(w.tenant.id);
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut new = message(&w.conversation, &format!("m{i}"));
        new.deliver_to = vec![w.channel.id];
        let activity = write_one(s, new).await.into_activity();
        let d = delivery_of(s, activity.id, w.channel.id).await;
        let patch = json(&format!(r#"{{"provider_message_id": "wamid.{i}", "wa_id": "16505551234"}}"#));
        s.merge_delivery_metadata(scope, d.id, patch).await.expect("record the provider id");
        ids.push(d.id);
    }
    // One without the key at all: never matched.
    let mut bare = message(&w.conversation, "bare");
    bare.deliver_to = vec![w.channel.id];
    write_one(s, bare).await;

    let found = s.find_delivery_by_provider_id(w.channel.id, "wamid.1").await.expect("find");
    let found = found.expect("the delivery that recorded wamid.1");
    assert_eq!(found, s.get_delivery(scope, ids[1]).await.expect("get"), "the whole row, as get_delivery reads it");

    // The match follows the metadata as it changes.
    s.merge_delivery_metadata(scope, ids[1], json(r#"{"provider_status": "read"}"#)).await.expect("merge");
    let again = s.find_delivery_by_provider_id(w.channel.id, "wamid.1").await.expect("find").expect("still found");
    assert_eq!((again.id, again.metadata.to_value()["provider_status"].as_str()), (ids[1], Some("read")));
    s.merge_delivery_metadata(scope, ids[2], json(r#"{"provider_message_id": "wamid.9"}"#)).await.expect("merge");
    let moved = s.find_delivery_by_provider_id(w.channel.id, "wamid.9").await.expect("find");
    assert_eq!(moved.map(|d| d.id), Some(ids[2]), "the id as now recorded");
    assert_eq!(s.find_delivery_by_provider_id(w.channel.id, "wamid.2").await.expect("find"), None);
}

pub async fn find_delivery_by_provider_id_answers_none_for_an_unknown_id(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let mut new = message(&w.conversation, "m");
    new.deliver_to = vec![w.channel.id];
    let activity = write_one(s, new).await.into_activity();
    let d = delivery_of(s, activity.id, w.channel.id).await;
    s.merge_delivery_metadata(Scope::Admin, d.id, json(r#"{"provider_message_id": "wamid.A", "other": "wamid.B"}"#))
        .await
        .expect("merge");

    for unknown in ["wamid.B", "wamid.a", "wamid.", "", "provider_message_id", "wamid.A' OR '1'='1"] {
        let got = s.find_delivery_by_provider_id(w.channel.id, unknown).await.expect("find");
        assert_eq!(got, None, "{unknown:?} is no delivery's provider_message_id");
    }
    assert_eq!(s.find_delivery_by_provider_id(new_id(), "wamid.A").await.expect("find"), None, "unknown channel");
    assert!(s.find_delivery_by_provider_id(w.channel.id, "wamid.A").await.expect("find").is_some());
}

/// The channel scopes the lookup: the same provider id recorded by a delivery
/// of another channel (the tenant's own or another tenant's) is not found.
pub async fn find_delivery_by_provider_id_ignores_other_channels(store: Arc<dyn Store>) {
    let s = &*store;
    let a = world(s, "Acme").await;
    let b = world(s, "Globex").await;
    let a2 = channel(s, a.tenant.id, "second").await;
    let mut new = message(&a.conversation, "m");
    new.deliver_to = vec![a.channel.id];
    let activity = write_one(s, new).await.into_activity();
    let d = delivery_of(s, activity.id, a.channel.id).await;
    let patch = json(r#"{"provider_message_id": "wamid.SHARED"}"#);
    s.merge_delivery_metadata(Scope::Tenant(a.tenant.id), d.id, patch).await.expect("merge");

    for (other, what) in [(a2.id, "the tenant's other channel"), (b.channel.id, "another tenant's channel")] {
        let got = s.find_delivery_by_provider_id(other, "wamid.SHARED").await.expect("find");
        assert_eq!(got, None, "{what} has no delivery with that id");
    }
    let got = s.find_delivery_by_provider_id(a.channel.id, "wamid.SHARED").await.expect("find");
    assert_eq!(got.map(|d| d.id), Some(d.id));
}
