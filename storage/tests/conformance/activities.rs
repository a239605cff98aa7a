//! write_batch and read_range: exact round-trips, item order and per-conversation
//! seq, items that fail alone, last_seq, and gap-free seq under concurrent batches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use converger_storage::{
    new_id, Activity, ConversationStatus, DeliveryFilter, Entity, NewActivity, PageRequest, Scope, Store, StoreError,
    Timestamp, Written,
};

use crate::harness::{all_activities, assert_not_found, conversation, json, message, world, write, write_one};

/// The activity the store must hand back for `new` stored with `seq`.
fn expected(new: &NewActivity, seq: i64) -> Activity {
    Activity {
        id: new.id,
        tenant_id: new.tenant_id,
        conversation_id: new.conversation_id,
        seq,
        kind: new.kind.clone(),
        text: new.text.clone(),
        attachments: new.attachments.clone(),
        sender: new.sender.clone(),
        metadata: new.metadata.clone(),
        idempotency_key: new.idempotency_key.clone(),
        created_at: new.created_at,
        target_id: new.target_id,
        parent_id: new.parent_id,
        state: (new.kind == "message").then(Default::default),
    }
}

pub async fn write_batch_round_trips_every_field(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let full = NewActivity {
        kind: "event".into(),
        text: Some("héllo \"wörld\" ✓ 🚀\nline two".into()),
        attachments: Some(json(r#"[{"kind": "image", "name": "a.png", "size": 12345678901}, {"kind": "file"}]"#)),
        sender: "bot:echo".into(),
        metadata: json(r#"{"z": 1, "a": {"deep": [true, null, -2.5, "x"]}, "s": "quote \" and \\ backslash"}"#),
        idempotency_key: Some("key-1".into()),
        created_at: Timestamp::from_micros(1_700_000_000_123_457),
        ..message(&w.conversation, "")
    };
    let bare = NewActivity {
        text: None,
        created_at: Timestamp::from_micros(1_700_000_000_000_001),
        ..message(&w.conversation, "")
    };
    let results = write(s, vec![full.clone(), bare.clone()]).await;
    let got: Vec<Written> = results.into_iter().map(|r| r.expect("item stored")).collect();
    assert_eq!(got, vec![Written::New(expected(&full, 1)), Written::New(expected(&bare, 2))]);
    assert_eq!(all_activities(s, w.conversation.id).await, vec![expected(&full, 1), expected(&bare, 2)]);
    let scoped = s.read_range(Scope::Tenant(w.tenant.id), w.conversation.id, 0, 10, None).await.expect("scoped read");
    assert_eq!(scoped, vec![expected(&full, 1), expected(&bare, 2)]);

    let conv = s.get_conversation(Scope::Tenant(w.tenant.id), w.conversation.id).await.expect("get");
    assert_eq!(conv.last_seq, 2, "last_seq follows the writes");
    assert_eq!(conv.status, ConversationStatus::Active);
}

pub async fn write_batch_keeps_item_order_across_conversations(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let convs = [w.conversation.clone(), conversation(s, &w.channel).await, conversation(s, &w.channel).await];
    // Already has two activities: the batch continues at 3.
    write(s, vec![message(&convs[1], "before-1"), message(&convs[1], "before-2")]).await;

    let plan = [0, 1, 1, 2, 0, 0, 2, 1, 0, 2, 2, 1];
    let batch: Vec<_> = plan.iter().enumerate().map(|(i, &c)| message(&convs[c], &format!("item-{i}"))).collect();
    let results = write(s, batch.clone()).await;
    let mut next_seq = [1, 3, 1];
    for ((new, &c), result) in batch.iter().zip(&plan).zip(results) {
        let written = result.expect("item stored");
        assert!(!written.is_replay());
        assert_eq!(written.activity(), &expected(new, next_seq[c]), "answers come back in item order");
        next_seq[c] += 1;
    }
    for (c, conv) in convs.iter().enumerate() {
        let stored = all_activities(s, conv.id).await;
        let seqs: Vec<i64> = stored.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, (1..next_seq[c]).collect::<Vec<_>>(), "conversation {c}: seq 1..N in order");
        let texts: Vec<_> = stored.iter().filter_map(|a| a.text.clone()).filter(|t| t.starts_with("item")).collect();
        let planned: Vec<_> = (0..plan.len()).filter(|&i| plan[i] == c).map(|i| format!("item-{i}")).collect();
        assert_eq!(texts, planned, "conversation {c}: items keep the batch order");
        let conv = s.get_conversation(Scope::Admin, conv.id).await.expect("get");
        assert_eq!(conv.last_seq, next_seq[c] - 1);
    }
}

pub async fn write_batch_empty_batch_writes_nothing(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    assert!(write(s, Vec::new()).await.is_empty());
    assert_eq!(s.stats().await.expect("stats").activities, 0);
    assert_eq!(s.get_conversation(Scope::Admin, w.conversation.id).await.expect("get").last_seq, 0);
}

pub async fn write_batch_failing_items_fail_alone(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let open = w.conversation.clone();
    let closed = conversation(s, &w.channel).await;
    write_one(s, message(&closed, "before close")).await;
    s.close_conversation(Scope::Tenant(w.tenant.id), closed.id).await.expect("close");
    let mut unknown = message(&open, "nowhere");
    unknown.conversation_id = new_id();

    let with_delivery = |mut a: NewActivity| {
        a.deliver_to = vec![w.channel.id];
        a
    };
    let batch = vec![
        with_delivery(message(&open, "one")),
        with_delivery(message(&closed, "refused")),
        message(&open, "two"),
        with_delivery(unknown),
        message(&open, "three"),
    ];
    let results = write(s, batch.clone()).await;
    let seqs: Vec<_> = results.iter().map(|r| r.as_ref().ok().map(|w| w.activity().seq)).collect();
    assert_eq!(seqs, vec![Some(1), None, Some(2), None, Some(3)], "the good items commit with gap-free seq");
    assert!(
        matches!(results[1], Err(StoreError::ConversationClosed)),
        "item for a closed conversation: expected ConversationClosed, got {:?}",
        results[1]
    );
    assert!(
        matches!(results[3], Err(StoreError::NotFound(Entity::Conversation))),
        "item for an unknown conversation: expected NotFound(conversation), got {:?}",
        results[3]
    );
    assert_eq!(all_activities(s, open.id).await.len(), 3);
    let closed_now = all_activities(s, closed.id).await;
    assert_eq!(closed_now.len(), 1, "nothing was added to the closed conversation");
    assert_eq!(s.get_conversation(Scope::Admin, closed.id).await.expect("get").last_seq, 1);
    assert_eq!(s.get_conversation(Scope::Admin, open.id).await.expect("get").last_seq, 3);
    let deliveries = s.list_deliveries(Scope::Admin, DeliveryFilter::default(), PageRequest::first(100)).await;
    let activity_ids: Vec<_> = deliveries.expect("list").items.iter().map(|d| d.activity_id).collect();
    assert_eq!(activity_ids, vec![batch[0].id], "failed items leave no delivery behind");
}

pub async fn write_batch_item_of_another_tenant_is_not_found(store: Arc<dyn Store>) {
    let s = &*store;
    let a = world(s, "Acme").await;
    let b = world(s, "Globex").await;
    // Tenant A names B's conversation.
    let mut intruder = message(&b.conversation, "intrusion");
    intruder.tenant_id = a.tenant.id;
    let results = write(s, vec![message(&a.conversation, "mine"), intruder]).await;
    assert_eq!(results[0].as_ref().expect("own item").activity().seq, 1);
    assert_not_found(results.into_iter().nth(1).expect("two results"), Entity::Conversation, "B's conversation as A");
    assert!(all_activities(s, b.conversation.id).await.is_empty(), "B's conversation is untouched");
    assert_eq!(s.get_conversation(Scope::Admin, b.conversation.id).await.expect("get").last_seq, 0);
}

pub async fn get_activity_finds_one_by_id_within_its_tenant(store: Arc<dyn Store>) {
    let s = &*store;
    let a = world(s, "Acme").await;
    let b = world(s, "Globex").await;
    let new = message(&a.conversation, "hello");
    let stored = write_one(s, new.clone()).await.activity().clone();
    let got = s.get_activity(Scope::Tenant(a.tenant.id), new.id).await.expect("get");
    assert_eq!(got, stored);
    assert_eq!(s.get_activity(Scope::Admin, new.id).await.expect("admin"), stored);
    assert_not_found(s.get_activity(Scope::Tenant(b.tenant.id), new.id).await, Entity::Activity, "another tenant's");
    assert_not_found(s.get_activity(Scope::Admin, new_id()).await, Entity::Activity, "unknown id");
}

pub async fn read_range_pages_by_after_seq_in_seq_order(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let other = conversation(s, &w.channel).await;
    for chunk in 0..4 {
        let mut batch: Vec<_> = (0..5).map(|i| message(&w.conversation, &format!("m{}", chunk * 5 + i))).collect();
        batch.push(message(&other, "noise"));
        write(s, batch).await;
    }
    let scope = Scope::Tenant(w.tenant.id);
    let seqs = |after, limit| async move {
        let got = s.read_range(scope, w.conversation.id, after, limit, None).await.expect("read_range");
        assert!(got.iter().all(|a| a.conversation_id == w.conversation.id), "only this conversation");
        got.iter().map(|a| a.seq).collect::<Vec<_>>()
    };
    assert_eq!(seqs(0, 5).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(seqs(5, 5).await, vec![6, 7, 8, 9, 10]);
    assert_eq!(seqs(17, 100).await, vec![18, 19, 20]);
    assert_eq!(seqs(0, 100).await, (1..=20).collect::<Vec<_>>());
    assert_eq!(seqs(20, 100).await, Vec::<i64>::new(), "nothing after the last seq");
    assert_eq!(seqs(1000, 100).await, Vec::<i64>::new());
    let texts: Vec<_> = all_activities(s, w.conversation.id).await.into_iter().filter_map(|a| a.text).collect();
    assert_eq!(texts, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_not_found(
        s.read_range(scope, new_id(), 0, 10, None).await,
        Entity::Conversation,
        "read_range of an unknown id",
    );
}

/// `read_range` answers "at most `limit`": a limit of 0 asks for nothing.
/// Like every page, a range read's limit is clamped to 1..=`PageRequest::MAX_LIMIT`.
pub async fn read_range_limit_is_clamped(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    write(s, vec![message(&w.conversation, "a"), message(&w.conversation, "b")]).await;
    let got = s.read_range(Scope::Tenant(w.tenant.id), w.conversation.id, 0, 0, None).await.expect("read_range");
    let seqs: Vec<i64> = got.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, vec![1], "read_range(limit = 0) is clamped to 1");
}

/// 8 tasks × 25 batches × 4 items into the same 3 conversations at once.
pub async fn seq_is_gap_free_under_concurrent_batches(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const BATCHES: usize = 25;
    const ITEMS: usize = 4;
    let w = world(&*store, "Acme").await;
    let convs = Arc::new([
        w.conversation.clone(),
        conversation(&*store, &w.channel).await,
        conversation(&*store, &w.channel).await,
    ]);
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, convs, barrier) = (store.clone(), convs.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut written = Vec::new();
                for b in 0..BATCHES {
                    let batch: Vec<_> =
                        (0..ITEMS).map(|i| message(&convs[(t + b + i) % 3], &format!("t{t}-b{b}-i{i}"))).collect();
                    let results = store.write_batch(batch.clone()).await.expect("concurrent write_batch");
                    assert_eq!(results.len(), ITEMS);
                    let mut last_in_batch: HashMap<_, i64> = HashMap::new();
                    for (new, result) in batch.iter().zip(results) {
                        let a = result.expect("item stored").into_activity();
                        assert_eq!((a.id, a.conversation_id), (new.id, new.conversation_id));
                        let prev = last_in_batch.insert(a.conversation_id, a.seq).unwrap_or(0);
                        assert!(a.seq > prev, "items of one batch keep their order within a conversation");
                        written.push(a);
                    }
                }
                written
            })
        })
        .collect();
    let mut by_conv: BTreeMap<_, Vec<Activity>> = BTreeMap::new();
    for task in tasks {
        for a in task.await.expect("writer task") {
            by_conv.entry(a.conversation_id).or_default().push(a);
        }
    }
    let total: usize = by_conv.values().map(Vec::len).sum();
    assert_eq!(total, TASKS * BATCHES * ITEMS);
    for conv in convs.iter() {
        let mut answered = by_conv.remove(&conv.id).unwrap_or_default();
        answered.sort_by_key(|a| a.seq);
        let n = answered.len() as i64;
        let seqs: Vec<i64> = answered.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "answered seqs are exactly 1..N, once each");
        let stored = all_activities(&*store, conv.id).await;
        assert_eq!(stored, answered, "read_range holds every answered activity once, at its seq");
        let ids: HashSet<_> = stored.iter().map(|a| a.id).collect();
        assert_eq!(ids.len(), stored.len(), "no activity stored twice");
        assert_eq!(store.get_conversation(Scope::Admin, conv.id).await.expect("get").last_seq, n);
    }
    assert_eq!(store.stats().await.expect("stats").activities, (TASKS * BATCHES * ITEMS) as i64);
}
