//! What an acknowledged write leaves behind after the store is closed and opened
//! again (a restart): rows, last_seq, idempotency keys, the delivery queue.
//! This is a clean restart, not `kill -9`; it checks that nothing the backend
//! answers from memory is lost or forgotten.

use std::sync::Arc;
use std::time::Duration;

use converger_storage::{
    ConversationStatus, DeliveryFilter, DeliveryStatus, PageRequest, Scope, Store, StoreError, Timestamp, Written,
};

use crate::harness::{all_activities, conversation, keyed, message, world, write, Reopen};

/// Attempts a delivery may have (the server's retry policy).
const MAX_ATTEMPTS: i32 = 5;

pub async fn writes_survive_reopening_the_store(store: Arc<dyn Store>, reopen: Reopen) {
    let w = world(&*store, "Acme").await;
    let closed = conversation(&*store, &w.channel).await;
    let mut first = keyed(&w.conversation, "one", "k1");
    first.deliver_to = vec![w.channel.id];
    let batch = vec![first, message(&w.conversation, "two"), message(&closed, "last words")];
    let written: Vec<_> = write(&*store, batch).await.into_iter().map(|r| r.expect("stored").into_activity()).collect();
    store.close_conversation(Scope::Admin, closed.id).await.expect("close");
    let before = all_activities(&*store, w.conversation.id).await;
    let tenant = store.get_tenant(w.tenant.id).await.expect("tenant");
    let channel = store.get_channel(Scope::Admin, w.channel.id).await.expect("channel");
    drop(store);

    let store = reopen.reopen().await;
    let s = &*store;
    assert_eq!(s.get_tenant(w.tenant.id).await.expect("tenant after reopen"), tenant);
    assert_eq!(s.get_channel(Scope::Admin, w.channel.id).await.expect("channel after reopen"), channel);
    assert_eq!(all_activities(s, w.conversation.id).await, before, "activities after reopen");
    let conv = s.get_conversation(Scope::Admin, w.conversation.id).await.expect("conversation after reopen");
    assert_eq!(conv.last_seq, 2, "last_seq after reopen");
    let gone = s.get_conversation(Scope::Admin, closed.id).await.expect("closed conversation after reopen");
    assert_eq!(gone.status, ConversationStatus::Closed);
    assert!(matches!(
        write(s, vec![message(&closed, "too late")]).await.remove(0),
        Err(StoreError::ConversationClosed)
    ));

    // The idempotency key is remembered, and seq continues after the last one.
    let replay = write(s, vec![keyed(&w.conversation, "one again", "k1"), message(&w.conversation, "three")]).await;
    let replay: Vec<_> = replay.into_iter().map(|r| r.expect("stored")).collect();
    assert_eq!(replay[0], Written::Replay(written[0].clone()));
    assert_eq!(replay[1].activity().seq, 3, "seq continues after reopen, never reused");

    // The delivery is still queued.
    let filter = DeliveryFilter { activity_id: Some(written[0].id), ..Default::default() };
    let queued = s.list_deliveries(Scope::Admin, filter, PageRequest::first(10)).await.expect("deliveries");
    assert_eq!(queued.items.len(), 1);
    assert_eq!(queued.items[0].status, DeliveryStatus::Pending);
    let claimed = s
        .claim_deliveries(Timestamp::now().plus(Duration::from_secs(1)), 10, Duration::from_secs(60), MAX_ATTEMPTS)
        .await;
    assert_eq!(claimed.expect("claim").iter().map(|d| d.id).collect::<Vec<_>>(), vec![queued.items[0].id]);
}
