//! Lifecycle events: endpoints, and events written with (and only with)
//! the change they report, in its transaction; the events queue's claims.

use std::sync::Arc;
use std::time::Duration;

use converger_storage::{
    ChannelPatch, DeliveryOutcome, DeliveryStatus, Entity, Event, EventEndpoint, EventEndpointPatch, EventFilter,
    EventType, Id, NewEventEndpoint, PageRequest, PresenceChange, Refusal, Scope, Status, Store, StoreError, Timestamp,
    ENDPOINT_DELETED,
};

use crate::harness::{
    assert_not_found, channel, conversation, join, leave, message, new_conversation, tenant, world, write, write_one,
};

const MAX_ATTEMPTS: i32 = 5;

async fn endpoint(s: &dyn Store, tenant_id: Id, events: &[EventType]) -> EventEndpoint {
    let new = NewEventEndpoint {
        tenant_id,
        url: "https://receiver.example/events".into(),
        events: events.to_vec(),
        secret: "whsec_c2VjcmV0".into(),
    };
    s.create_event_endpoint(new).await.expect("create endpoint")
}

async fn events_of(s: &dyn Store, tenant_id: Id) -> Vec<Event> {
    s.list_events(Scope::Tenant(tenant_id), EventFilter::default(), PageRequest::first(1000))
        .await
        .expect("list events")
        .items
}

fn kinds(events: &[Event]) -> Vec<EventType> {
    events.iter().map(|e| e.kind).collect()
}

pub async fn event_endpoints_round_trip_within_their_tenant(store: Arc<dyn Store>) {
    let s = &*store;
    let (a, b) = (tenant(s, "Acme").await, tenant(s, "Globex").await);
    let e1 = endpoint(s, a.id, &[EventType::MemberJoined, EventType::UserOnline]).await;
    let e2 = endpoint(s, a.id, &[EventType::MemberJoined, EventType::DeliveryFailed]).await;
    assert_eq!(s.get_event_endpoint(a.id, e1.id).await.expect("get"), e1);
    assert_not_found(s.get_event_endpoint(b.id, e1.id).await, Entity::EventEndpoint, "another tenant's endpoint");
    assert_eq!(s.list_event_endpoints(a.id, 20).await.expect("list"), vec![e1.clone(), e2.clone()]);
    assert_eq!(s.list_event_endpoints(b.id, 20).await.expect("list"), vec![]);
    assert_eq!(
        s.event_types(a.id).await.expect("types"),
        vec![EventType::MemberJoined, EventType::UserOnline, EventType::DeliveryFailed]
    );
    let patch = EventEndpointPatch { url: Some("https://other.example/e".into()), events: None };
    let changed = s.update_event_endpoint(a.id, e2.id, patch).await.expect("update");
    assert_eq!((changed.url.as_str(), changed.events.clone()), ("https://other.example/e", e2.events.clone()));
    let patch = EventEndpointPatch { url: None, events: Some(vec![EventType::ConversationClosed]) };
    let changed = s.update_event_endpoint(a.id, e2.id, patch).await.expect("update");
    assert_eq!(changed.events, vec![EventType::ConversationClosed]);
    assert_eq!(s.get_event_endpoint(a.id, e2.id).await.expect("get"), changed);
    assert_not_found(
        s.update_event_endpoint(b.id, e2.id, EventEndpointPatch::default()).await,
        Entity::EventEndpoint,
        "another tenant's update",
    );
    assert_not_found(s.delete_event_endpoint(b.id, e1.id).await, Entity::EventEndpoint, "another tenant's delete");
    assert_eq!(s.delete_event_endpoint(a.id, e1.id).await.expect("delete").id, e1.id);
    assert_not_found(s.get_event_endpoint(a.id, e1.id).await, Entity::EventEndpoint, "a deleted endpoint");
    assert_eq!(s.list_event_endpoints(a.id, 20).await.expect("list"), vec![changed]);
    assert_eq!(s.event_types(a.id).await.expect("types"), vec![EventType::ConversationClosed]);
    let unknown = s
        .create_event_endpoint(NewEventEndpoint {
            tenant_id: converger_storage::new_id(),
            url: "https://x.example/".into(),
            events: vec![EventType::MemberLeft],
            secret: "whsec_eA==".into(),
        })
        .await;
    assert_not_found(unknown, Entity::Tenant, "an unknown tenant");
}

pub async fn events_are_written_with_the_changes_they_report(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let t = w.tenant.id;
    let all = endpoint(s, t, EventType::ALL).await;
    let members_only = endpoint(s, t, &[EventType::MemberJoined]).await;
    // Another tenant's endpoint hears nothing of this one.
    let other = tenant(s, "Globex").await;
    endpoint(s, other.id, EventType::ALL).await;

    let c = conversation(s, &w.channel).await;
    let closed = s.close_conversation(Scope::Tenant(t), c.id).await.expect("close");
    s.close_conversation(Scope::Tenant(t), c.id).await.expect("close again: no new event");
    let mut joined = join(&w.conversation, "alice", Some("agent"), "{}");
    joined.announce = true;
    let joined = write_one(s, joined).await;
    let mut left = leave(&w.conversation, "alice");
    left.announce = true;
    write_one(s, left).await;
    // Not announced (the tenant's cache said no endpoint wants it): no event.
    write_one(s, join(&w.conversation, "bob", None, "{}")).await;
    let at = Timestamp::now();
    s.record_presence(t, "alice", PresenceChange { online: true, at, announce: true }).await.expect("online");
    s.record_presence(t, "alice", PresenceChange { online: false, at, announce: true }).await.expect("offline");
    let member = s.get_member(Scope::Tenant(t), w.conversation.id, "bob").await.expect("bob");
    assert_eq!(member.last_seen, None, "bob's last seen is his own");
    s.record_presence(t, "bob", PresenceChange { online: false, at, announce: false }).await.expect("bob offline");
    let member = s.get_member(Scope::Tenant(t), w.conversation.id, "bob").await.expect("bob");
    assert_eq!(member.last_seen, Some(at), "going offline records the last seen, events or not");

    let events: Vec<Event> = events_of(s, t).await.into_iter().filter(|e| e.endpoint_id == all.id).collect();
    assert_eq!(
        kinds(&events),
        vec![
            EventType::ConversationCreated,
            EventType::ConversationClosed,
            EventType::MemberJoined,
            EventType::MemberLeft,
            EventType::UserOnline,
            EventType::UserOffline,
        ]
    );
    for e in &events {
        assert_eq!((e.status, e.attempts, e.tenant_id), (DeliveryStatus::Pending, 0, t), "{e:?}");
    }
    let data = |i: usize| events[i].data.to_value();
    assert_eq!(data(0)["conversation_id"], c.id.to_string());
    assert_eq!(data(0)["channel_id"], w.channel.id.to_string());
    assert_eq!(data(0)["metadata"]["topic"], "support");
    assert_eq!(data(1)["conversation_id"], closed.id.to_string());
    assert_eq!(data(2)["sender"], "alice");
    assert_eq!(data(2)["role"], "agent");
    assert_eq!(data(2)["activity_id"], joined.activity().id.to_string());
    assert_eq!(data(2)["seq"], joined.activity().seq);
    assert_eq!(data(3)["sender"], "alice");
    assert_eq!(data(4)["sender"], "alice");
    assert_eq!(data(5)["sender"], "alice");
    assert!(data(5)["last_seen"].is_string(), "{}", data(5));
    let only_joins = events_of(s, t).await.into_iter().filter(|e| e.endpoint_id == members_only.id).count();
    assert_eq!(only_joins, 1, "the filter holds: one member.joined");
    assert_eq!(events_of(s, other.id).await.len(), 0);
    assert_eq!(events_of(s, t).await.len(), 7);
    let first = s.get_event(Scope::Tenant(t), events[0].id).await.expect("get event");
    assert_eq!(first, events[0]);
    assert_not_found(s.get_event(Scope::Tenant(other.id), events[0].id).await, Entity::Event, "another tenant's");
}

pub async fn no_event_without_its_change(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let t = w.tenant.id;
    endpoint(s, t, EventType::ALL).await;
    let before = events_of(s, t).await.len();

    // A conversation refused by an inactive channel.
    let inactive = channel(s, t, "off").await;
    let patch = ChannelPatch { status: Some(Status::Inactive), ..ChannelPatch::default() };
    s.update_channel(Scope::Tenant(t), inactive.id, patch).await.expect("deactivate");
    assert!(s.create_conversation(new_conversation(&inactive, None)).await.is_err());
    // A member change refused (leaving without being a member) or written to a closed conversation.
    let mut not_member = leave(&w.conversation, "nobody");
    not_member.announce = true;
    let refused = write(s, vec![not_member]).await;
    assert!(matches!(&refused[0], Err(StoreError::Refused(Refusal::NotMember))), "{refused:?}");
    // A batch that fails as a whole (an unknown delivery target) writes none of its events.
    let mut whole = join(&w.conversation, "carol", None, "{}");
    whole.announce = true;
    let mut bad = message(&w.conversation, "x");
    bad.deliver_to = vec![converger_storage::new_id()];
    assert!(s.write_batch(vec![whole, bad]).await.is_err(), "the batch fails as a whole");
    assert!(s.get_member(Scope::Tenant(t), w.conversation.id, "carol").await.is_err());
    // A replayed join writes nothing new.
    let c = conversation(s, &w.channel).await;
    s.close_conversation(Scope::Tenant(t), c.id).await.expect("close");
    let mut late = join(&c, "dave", None, "{}");
    late.announce = true;
    let closed = write(s, vec![late]).await;
    assert!(matches!(&closed[0], Err(StoreError::ConversationClosed)), "{closed:?}");
    let after = events_of(s, t).await;
    assert_eq!(
        kinds(&after[before..]),
        vec![EventType::ConversationCreated, EventType::ConversationClosed],
        "only the conversation that was created and closed"
    );
}

pub async fn a_delivery_failed_for_good_writes_its_event(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let t = w.tenant.id;
    endpoint(s, t, &[EventType::DeliveryFailed]).await;
    let mut batch = Vec::new();
    for text in ["a", "b", "c"] {
        let mut m = message(&w.conversation, text);
        m.deliver_to = vec![w.channel.id];
        batch.push(m);
    }
    for r in write(s, batch).await {
        r.expect("stored");
    }
    let lease = Duration::from_secs(60);
    let now = Timestamp::now().plus(Duration::from_secs(1));
    let claimed = s.claim_deliveries(now, 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    let retry = DeliveryOutcome::Retry { error: "HTTP 503".into(), next_attempt_at: now };
    s.complete_delivery(claimed[0].id, 1, retry).await.expect("retry: no event");
    s.complete_delivery(claimed[1].id, 1, DeliveryOutcome::Delivered { at: now, metadata: None })
        .await
        .expect("delivered: no event");
    let failed = DeliveryOutcome::Failed { error: "HTTP 410".into() };
    let d = s.complete_delivery(claimed[2].id, 1, failed.clone()).await.expect("failed");
    // A stale outcome changes nothing, and writes no event.
    assert!(s.complete_delivery(claimed[2].id, 1, failed).await.is_err());
    let events = events_of(s, t).await;
    assert_eq!(kinds(&events), vec![EventType::DeliveryFailed]);
    let data = events[0].data.to_value();
    assert_eq!(data["delivery_id"], d.id.to_string());
    assert_eq!(data["activity_id"], d.activity_id.to_string());
    assert_eq!(data["conversation_id"], w.conversation.id.to_string());
    assert_eq!(data["error"], "HTTP 410");
    // The first one runs out of attempts (never completed): failed by the claim, with its event.
    let mut at = now;
    for _ in 1..MAX_ATTEMPTS {
        at = at.plus(lease + Duration::from_secs(1));
        assert_eq!(s.claim_deliveries(at, 10, lease, MAX_ATTEMPTS).await.expect("claim").len(), 1);
    }
    at = at.plus(lease + Duration::from_secs(1));
    assert!(s.claim_deliveries(at, 10, lease, MAX_ATTEMPTS).await.expect("claim").is_empty());
    let events = events_of(s, t).await;
    assert_eq!(kinds(&events), vec![EventType::DeliveryFailed, EventType::DeliveryFailed]);
    assert_eq!(events[1].data.to_value()["delivery_id"], claimed[0].id.to_string());
    // A cancellation recorded by the worker (a delete erased the message) is no failure.
    let mut cancel = message(&w.conversation, "erased");
    cancel.deliver_to = vec![w.channel.id];
    write_one(s, cancel).await;
    let c = s.claim_deliveries(at.plus(Duration::from_secs(1)), 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(c.len(), 1);
    let outcome = DeliveryOutcome::Failed { error: converger_storage::CANCELLED_BY_DELETE.into() };
    s.complete_delivery(c[0].id, 1, outcome).await.expect("cancelled");
    assert_eq!(events_of(s, t).await.len(), 2, "no delivery.failed for a cancellation");
}

pub async fn event_claims_lease_fence_and_end(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let t = w.tenant.id;
    let keep = endpoint(s, t, &[EventType::ConversationCreated]).await;
    let gone = endpoint(s, t, &[EventType::ConversationCreated]).await;
    for _ in 0..2 {
        conversation(s, &w.channel).await;
    }
    assert_eq!(events_of(s, t).await.len(), 4);
    let lease = Duration::from_secs(60);
    let now = Timestamp::now().plus(Duration::from_secs(1));
    let claimed = s.claim_events(now, 3, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(claimed.len(), 3, "the limit holds");
    assert!(claimed.iter().all(|c| c.event.attempts == 1 && c.endpoint.is_some()));
    assert_eq!(s.claim_events(now, 10, lease, MAX_ATTEMPTS).await.expect("claim").len(), 1, "leased ones are not");
    let first = &claimed[0];
    let ep = first.endpoint.as_ref().expect("endpoint");
    assert_eq!((ep.id, ep.secret.as_str()), (first.event.endpoint_id, "whsec_c2VjcmV0"));
    let done = s
        .complete_event(first.event.id, 1, DeliveryOutcome::Delivered { at: now, metadata: None })
        .await
        .expect("delivered");
    assert_eq!((done.status, done.delivered_at), (DeliveryStatus::Delivered, Some(now)));
    let stale = s.complete_event(first.event.id, 1, DeliveryOutcome::Failed { error: "late".into() }).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let retry_at = now.plus(Duration::from_secs(3600));
    let second = &claimed[1];
    let r = s
        .complete_event(
            second.event.id,
            1,
            DeliveryOutcome::Retry { error: "HTTP 500".into(), next_attempt_at: retry_at },
        )
        .await
        .expect("retry");
    assert_eq!(
        (r.status, r.last_error.as_deref(), r.next_attempt_at),
        (DeliveryStatus::Pending, Some("HTTP 500"), retry_at)
    );
    // Deleting an endpoint fails its pending events in the same write.
    s.delete_event_endpoint(t, gone.id).await.expect("delete");
    let pending_of_gone = s
        .list_events(
            Scope::Tenant(t),
            EventFilter { endpoint_id: Some(gone.id), status: Some(DeliveryStatus::Pending), kind: None },
            PageRequest::first(10),
        )
        .await
        .expect("list");
    assert!(pending_of_gone.items.is_empty(), "{pending_of_gone:?}");
    let failed = s
        .list_events(
            Scope::Tenant(t),
            EventFilter { endpoint_id: Some(gone.id), status: Some(DeliveryStatus::Failed), kind: None },
            PageRequest::first(10),
        )
        .await
        .expect("list");
    assert!(failed.items.iter().all(|e| e.last_error.as_deref() == Some(ENDPOINT_DELETED)), "{failed:?}");
    assert!(!failed.items.is_empty());
    let by_type = s
        .list_events(
            Scope::Tenant(t),
            EventFilter { endpoint_id: Some(keep.id), status: None, kind: Some(EventType::ConversationCreated) },
            PageRequest::first(10),
        )
        .await
        .expect("list");
    assert_eq!(by_type.items.len(), 2);
}
