//! Idempotent replay: a key seen before in a conversation answers the original
//! activity (same id and seq) and writes nothing — across batches, inside one
//! batch, and when the same key races from many batches at once.

use std::sync::Arc;

use converger_storage::{DeliveryFilter, PageRequest, Scope, Store, Written};

use crate::harness::{all_activities, conversation, keyed, message, world, write, write_one};

pub async fn replay_in_a_later_batch_returns_the_original(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let original = write_one(s, keyed(&w.conversation, "first", "k1")).await;
    assert!(!original.is_replay());
    let original = original.into_activity();
    write_one(s, message(&w.conversation, "after")).await;
    let before = all_activities(s, w.conversation.id).await;

    let mut retry = keyed(&w.conversation, "second text, same key", "k1");
    retry.sender = "someone-else".into();
    let again = write_one(s, retry).await;
    assert_eq!(again, Written::Replay(original.clone()), "the original activity, unchanged");
    assert_eq!(all_activities(s, w.conversation.id).await, before, "nothing new written");
    let conv = s.get_conversation(Scope::Admin, w.conversation.id).await.expect("get");
    assert_eq!(conv.last_seq, 2, "last_seq unchanged by a replay");

    // The next new write continues the sequence without a gap.
    assert_eq!(write_one(s, message(&w.conversation, "next")).await.activity().seq, 3);
}

pub async fn replay_inside_one_batch_answers_the_first(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let batch = vec![
        keyed(&w.conversation, "a", "dup"),
        message(&w.conversation, "b"),
        keyed(&w.conversation, "a again", "dup"),
        keyed(&w.conversation, "c", "other"),
    ];
    let results: Vec<Written> = write(s, batch).await.into_iter().map(|r| r.expect("item")).collect();
    let first = results[0].activity().clone();
    assert!(!results[0].is_replay());
    assert_eq!(results[2], Written::Replay(first.clone()), "the second use of the key replays the first");
    let seqs: Vec<_> = results.iter().map(|w| w.activity().seq).collect();
    assert_eq!(seqs, vec![1, 2, 1, 3], "a replayed item takes no seq");
    assert_eq!(all_activities(s, w.conversation.id).await.len(), 3);
    assert_eq!(s.get_conversation(Scope::Admin, w.conversation.id).await.expect("get").last_seq, 3);
}

pub async fn same_key_in_another_conversation_is_independent(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let other = conversation(s, &w.channel).await;
    write_one(s, message(&other, "filler")).await;
    let results = write(s, vec![keyed(&w.conversation, "here", "k"), keyed(&other, "there", "k")]).await;
    let here = results[0].as_ref().expect("first");
    let there = results[1].as_ref().expect("second");
    assert!(!here.is_replay() && !there.is_replay(), "keys are per conversation");
    assert_ne!(here.activity().id, there.activity().id);
    assert_eq!((here.activity().seq, there.activity().seq), (1, 2));
    let later = write_one(s, keyed(&other, "there again", "k")).await;
    assert_eq!(later, Written::Replay(there.activity().clone()));
}

/// 16 batches carrying the same key start together: one activity, one delivery,
/// and every answer names its id and seq.
pub async fn same_key_raced_from_concurrent_batches_writes_once(store: Arc<dyn Store>) {
    const RACERS: usize = 16;
    let w = world(&*store, "Acme").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, barrier, conv, channel_id) =
                (store.clone(), barrier.clone(), w.conversation.clone(), w.channel.id);
            tokio::spawn(async move {
                let mut contested = keyed(&conv, &format!("racer {i}"), "contested");
                contested.deliver_to = vec![channel_id];
                let batch = vec![message(&conv, &format!("own {i}")), contested];
                barrier.wait().await;
                let mut results = store.write_batch(batch).await.expect("racing write_batch");
                results.pop().expect("two results").expect("contested item")
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("racer task"));
    }
    assert_eq!(answers.iter().filter(|w| !w.is_replay()).count(), 1, "exactly one racer writes it");
    let winner = answers.iter().find(|w| !w.is_replay()).expect("one new").activity().clone();
    for answer in &answers {
        assert_eq!(answer.activity(), &winner, "every answer is the stored activity");
    }
    let stored = all_activities(&*store, w.conversation.id).await;
    let keyed: Vec<_> = stored.iter().filter(|a| a.idempotency_key.as_deref() == Some("contested")).collect();
    assert_eq!(keyed, vec![&winner]);
    assert_eq!(stored.len(), RACERS + 1, "every racer's own item plus one contested item");
    let seqs: Vec<i64> = stored.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (1..=(RACERS as i64 + 1)).collect::<Vec<_>>(), "no seq lost to the losers");
    let filter = DeliveryFilter { activity_id: Some(winner.id), ..Default::default() };
    let deliveries = store.list_deliveries(Scope::Admin, filter, PageRequest::first(100)).await.expect("list");
    assert_eq!(deliveries.items.len(), 1, "replays create no delivery");
    let all = store.list_deliveries(Scope::Admin, DeliveryFilter::default(), PageRequest::first(100)).await;
    assert_eq!(all.expect("list").items.len(), 1);
}

/// A retried write whose first attempt succeeded gets its activity back even if the
/// conversation closed in between; a new write to the closed conversation does not.
pub async fn replay_after_close_returns_the_original(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let original = write_one(s, keyed(&w.conversation, "before close", "k")).await.into_activity();
    s.close_conversation(Scope::Tenant(w.tenant.id), w.conversation.id).await.expect("close");
    let results = write(s, vec![keyed(&w.conversation, "retry", "k"), keyed(&w.conversation, "new", "k2")]).await;
    assert_eq!(results[0].as_ref().expect("replay"), &Written::Replay(original));
    assert!(
        matches!(results[1], Err(converger_storage::StoreError::ConversationClosed)),
        "a new key on a closed conversation: {:?}",
        results[1]
    );
}
