//! The delivery queue: leases (never two claimers for one row, expiry returns a
//! row), oldest-due-first, the three outcomes of `complete_delivery`, and
//! `retry_delivery`. Time is moved by passing `now`, never by sleeping.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use converger_storage::{
    new_id, Delivery, DeliveryFilter, DeliveryOutcome, DeliveryStatus, Entity, Id, Json, PageRequest, Scope, Store,
    StoreError, Timestamp,
};

use crate::harness::{assert_not_found, channel, message, world, write, World};

const HOUR: Duration = Duration::from_secs(3600);

/// Attempts a delivery may have (the server's retry policy).
const MAX_ATTEMPTS: i32 = 5;

/// `activities` messages, each delivered to the world's channel and `extra` more channels.
async fn queue(store: &dyn Store, w: &World, activities: usize, extra: usize) -> Vec<Id> {
    let mut targets = vec![w.channel.id];
    for i in 0..extra {
        targets.push(channel(store, w.tenant.id, &format!("extra-{i}")).await.id);
    }
    let batch: Vec<_> = (0..activities)
        .map(|i| {
            let mut m = message(&w.conversation, &format!("m{i}"));
            m.deliver_to = targets.clone();
            m
        })
        .collect();
    for r in write(store, batch).await {
        r.expect("item stored");
    }
    let page = store.list_deliveries(Scope::Admin, DeliveryFilter::default(), PageRequest::first(1000)).await;
    let ids: Vec<Id> = page.expect("list deliveries").items.iter().map(|d| d.id).collect();
    assert_eq!(ids.len(), activities * targets.len());
    ids
}

async fn get(store: &dyn Store, id: Id) -> Delivery {
    store.get_delivery(Scope::Admin, id).await.expect("get delivery")
}

/// 16 claimers race over 200 due rows: each row is handed out exactly once.
pub async fn claim_never_hands_a_row_to_two_claimers(store: Arc<dyn Store>) {
    const CLAIMERS: usize = 16;
    let w = world(&*store, "Acme").await;
    let ids = queue(&*store, &w, 50, 3).await;
    let now = Timestamp::now().plus(Duration::from_secs(1));
    let lease = Duration::from_secs(300);
    let barrier = Arc::new(tokio::sync::Barrier::new(CLAIMERS));
    let tasks: Vec<_> = (0..CLAIMERS)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut mine = Vec::new();
                loop {
                    let got = store.claim_deliveries(now, 7, lease, MAX_ATTEMPTS).await.expect("claim");
                    assert!(got.len() <= 7, "at most `limit` rows per claim");
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got);
                }
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("claimer task"));
    }
    let unique: HashSet<Id> = claimed.iter().map(|d| d.id).collect();
    assert_eq!(
        claimed.len(),
        ids.len(),
        "{} claims for {} rows: some row was handed out twice",
        claimed.len(),
        ids.len()
    );
    assert_eq!(unique, ids.iter().copied().collect::<HashSet<_>>(), "every due row was claimed");
    for d in &claimed {
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 1), "a claim counts an attempt");
        assert_eq!(d.next_attempt_at, now.plus(lease), "leased until now + lease");
        assert_eq!(get(&*store, d.id).await, *d, "the claim answer is what is stored");
    }
    let during =
        store.claim_deliveries(now.plus(Duration::from_secs(299)), 1000, lease, MAX_ATTEMPTS).await.expect("claim");
    assert!(during.is_empty(), "nothing is claimable while the leases run: got {}", during.len());
}

pub async fn claim_takes_the_oldest_due_first_and_respects_limit(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let ids = queue(s, &w, 4, 0).await;
    let base = Timestamp::now().plus(HOUR);
    // Due at base+30m, base+10m, base+20m, base+40m.
    let due = [30u64, 10, 20, 40].map(|m| base.plus(Duration::from_secs(m * 60)));
    for (id, at) in ids.iter().zip(due) {
        let outcome = DeliveryOutcome::Retry { error: "busy".into(), next_attempt_at: at };
        s.complete_delivery(*id, 0, outcome).await.expect("reschedule");
    }
    let lease = Duration::from_secs(60);
    assert!(s.claim_deliveries(base, 10, lease, MAX_ATTEMPTS).await.expect("claim").is_empty(), "none due yet");
    // Leased for long enough that it is still out when the others are claimed.
    let at_15 =
        s.claim_deliveries(base.plus(Duration::from_secs(15 * 60)), 10, 10 * HOUR, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(at_15.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ids[1]], "only the row due by then");
    let later = base.plus(2 * HOUR);
    let first = s.claim_deliveries(later, 1, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(first.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ids[2]], "limit 1: the oldest due");
    let rest = s.claim_deliveries(later, 10, lease, MAX_ATTEMPTS).await.expect("claim");
    let rest_ids: HashSet<Id> = rest.iter().map(|d| d.id).collect();
    assert_eq!(rest_ids, HashSet::from([ids[0], ids[3]]));
    assert!(s.claim_deliveries(later, 10, lease, MAX_ATTEMPTS).await.expect("claim").is_empty(), "all leased now");
}

pub async fn expired_lease_makes_the_row_claimable_again(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let ids = queue(s, &w, 1, 0).await;
    let now = Timestamp::now().plus(Duration::from_secs(1));
    let lease = Duration::from_secs(30);
    let first = s.claim_deliveries(now, 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(first.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(), vec![(ids[0], 1)]);
    let during = s.claim_deliveries(now.plus(Duration::from_secs(10)), 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert!(during.is_empty(), "leased rows stay with their claimer");
    let after = now.plus(Duration::from_secs(31));
    let second = s.claim_deliveries(after, 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(second.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(), vec![(ids[0], 2)], "claimed again");
    assert_eq!(second[0].next_attempt_at, after.plus(lease));
}

pub async fn complete_delivery_records_each_outcome(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let ids = queue(s, &w, 3, 0).await;
    let now = Timestamp::now().plus(Duration::from_secs(1));
    let lease = Duration::from_secs(60);
    assert_eq!(s.claim_deliveries(now, 10, lease, MAX_ATTEMPTS).await.expect("claim").len(), 3);

    let delivered_at = now.plus(Duration::from_secs(2));
    let d = s
        .complete_delivery(ids[0], 1, DeliveryOutcome::Delivered { at: delivered_at, metadata: None })
        .await
        .expect("delivered");
    assert_eq!(
        (d.id, d.status, d.delivered_at, d.attempts),
        (ids[0], DeliveryStatus::Delivered, Some(delivered_at), 1)
    );
    assert_eq!(get(s, ids[0]).await, d);

    let retry_at = now.plus(HOUR);
    let outcome = DeliveryOutcome::Retry { error: "HTTP 503".into(), next_attempt_at: retry_at };
    let r = s.complete_delivery(ids[1], 1, outcome).await.expect("retry");
    assert_eq!(
        (r.status, r.last_error.as_deref(), r.next_attempt_at),
        (DeliveryStatus::Pending, Some("HTTP 503"), retry_at)
    );
    assert_eq!((r.delivered_at, r.attempts), (None, 1));
    assert_eq!(get(s, ids[1]).await, r);

    let f = s
        .complete_delivery(ids[2], 1, DeliveryOutcome::Failed { error: "HTTP 410 gone".into() })
        .await
        .expect("failed");
    assert_eq!(
        (f.status, f.last_error.as_deref(), f.delivered_at),
        (DeliveryStatus::Failed, Some("HTTP 410 gone"), None)
    );
    assert_eq!(f.attempts, 1);
    assert_eq!(get(s, ids[2]).await, f);

    let before_retry = s.claim_deliveries(now.plus(HOUR / 2), 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert!(before_retry.is_empty(), "nothing due before the retry time: {before_retry:?}");
    let far = s.claim_deliveries(now.plus(1000 * HOUR), 10, lease, MAX_ATTEMPTS).await.expect("claim");
    let far: Vec<Id> = far.iter().map(|d| d.id).collect();
    assert_eq!(far, vec![ids[1]], "the retried row comes back; delivered and failed rows never do");
    let stats = s.stats().await.expect("stats");
    assert_eq!((stats.deliveries_pending, stats.deliveries_delivered, stats.deliveries_failed), (1, 1, 1));
    assert_not_found(
        s.complete_delivery(new_id(), 1, DeliveryOutcome::Delivered { at: now, metadata: None }).await,
        Entity::Delivery,
        "complete an unknown delivery",
    );
}

/// A worker whose lease ran out cannot overwrite the outcome of the worker
/// that claimed the delivery after it, nor complete a delivery twice.
pub async fn a_stale_claim_cannot_record_an_outcome(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let ids = queue(s, &w, 1, 0).await;
    let lease = Duration::from_secs(60);
    let now = Timestamp::now().plus(Duration::from_secs(1));
    let first = s.claim_deliveries(now, 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(first[0].attempts, 1);
    // The first worker stalls past its lease; a second one claims the row.
    let second = s.claim_deliveries(now.plus(Duration::from_secs(61)), 10, lease, MAX_ATTEMPTS).await.expect("reclaim");
    assert_eq!(second[0].attempts, 2);
    let late = s.complete_delivery(ids[0], 1, DeliveryOutcome::Failed { error: "timeout".into() }).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "the stale claim is refused: {late:?}");
    assert_eq!(get(s, ids[0]).await.status, DeliveryStatus::Pending, "and changed nothing");
    let done = s
        .complete_delivery(ids[0], 2, DeliveryOutcome::Delivered { at: now, metadata: None })
        .await
        .expect("the live claim");
    assert_eq!(done.status, DeliveryStatus::Delivered);
    let again = s.complete_delivery(ids[0], 2, DeliveryOutcome::Failed { error: "dup".into() }).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "a completed delivery stays completed: {again:?}");
}

/// The worker records outcomes in groups: each outcome of a group is
/// written, refused or answered exactly as it would be alone, and a refused
/// one (stale, unknown, a patch that is not an object) changes nothing.
pub async fn outcomes_recorded_together_are_each_answered_as_alone(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let ids = queue(s, &w, 4, 0).await;
    let lease = Duration::from_secs(60);
    let now = Timestamp::now().plus(Duration::from_secs(1));
    let claimed = s.claim_deliveries(now, 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(claimed.len(), 4);
    let patch = Some(Json::from_value(&serde_json::json!({"provider_message_id": "m-1"})));
    let not_an_object = Some(Json::from_value(&serde_json::json!(["no"])));
    let answers = s
        .complete_deliveries(vec![
            (ids[0], 1, DeliveryOutcome::Delivered { at: now, metadata: patch }),
            (ids[1], 2, DeliveryOutcome::Failed { error: "not my claim".into() }),
            (ids[2], 1, DeliveryOutcome::Failed { error: "gone".into() }),
            (new_id(), 1, DeliveryOutcome::Failed { error: "unknown".into() }),
            (ids[3], 1, DeliveryOutcome::Delivered { at: now, metadata: not_an_object }),
        ])
        .await
        .expect("the group is written");
    assert_eq!(answers.len(), 5);
    let delivered = answers[0].as_ref().expect("the live claim");
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.metadata.to_value()["provider_message_id"], "m-1", "its patch merged");
    assert!(matches!(answers[1], Err(StoreError::Conflict(_))), "stale: {:?}", answers[1]);
    assert_eq!(answers[2].as_ref().expect("failed for good").status, DeliveryStatus::Failed);
    assert!(matches!(answers[3], Err(StoreError::NotFound(_))), "unknown: {:?}", answers[3]);
    assert!(matches!(answers[4], Err(StoreError::Invalid(_))), "not an object: {:?}", answers[4]);
    assert_eq!(get(s, ids[1]).await.status, DeliveryStatus::Pending, "the stale outcome changed nothing");
    assert_eq!(get(s, ids[3]).await.status, DeliveryStatus::Pending, "nor did the refused patch");
    assert!(s.complete_deliveries(Vec::new()).await.expect("nothing").is_empty());
}

/// A claim given back unattempted (the worker paced its channel): the
/// attempt it counted is taken back, the row is due when the worker said and
/// no earlier; a stale or finished claim cannot be given back.
pub async fn a_released_claim_costs_no_attempt_and_is_due_when_asked(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let ids = queue(s, &w, 1, 0).await;
    let lease = Duration::from_secs(60);
    let now = Timestamp::now().plus(Duration::from_secs(1));
    let claimed = s.claim_deliveries(now, 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(claimed[0].attempts, 1);
    let due = now.plus(Duration::from_secs(5));
    let released = s.release_delivery(ids[0], 1, due).await.expect("release");
    assert_eq!((released.status, released.attempts, released.next_attempt_at), (DeliveryStatus::Pending, 0, due));
    assert_eq!(released.last_error, None, "no attempt, no error");
    let again = s.release_delivery(ids[0], 1, due).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "released once: {again:?}");
    let early = s.claim_deliveries(now.plus(Duration::from_secs(4)), 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert!(early.is_empty(), "not due before `due`");
    // Given back as often as it is paced, it never runs out of attempts.
    let mut at = due;
    for _ in 0..MAX_ATTEMPTS + 2 {
        let claimed = s.claim_deliveries(at, 10, lease, MAX_ATTEMPTS).await.expect("claim when due");
        assert_eq!(claimed.iter().map(|d| d.attempts).collect::<Vec<_>>(), vec![1]);
        at = at.plus(Duration::from_secs(1));
        s.release_delivery(ids[0], 1, at).await.expect("release");
    }
    let claimed = s.claim_deliveries(at, 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(claimed[0].attempts, 1);
    let done = s
        .complete_delivery(ids[0], 1, DeliveryOutcome::Delivered { at, metadata: None })
        .await
        .expect("the live claim completes");
    assert_eq!((done.status, done.attempts), (DeliveryStatus::Delivered, 1));
    let late = s.release_delivery(ids[0], 1, at).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "a delivered row stays delivered: {late:?}");
    assert_not_found(s.release_delivery(new_id(), 1, at).await, Entity::Delivery, "release of an unknown delivery");
}

/// Claims whose attempts never record an outcome (the attempt panicked, the
/// worker died) still use up the attempts: once `MAX_ATTEMPTS` claims ran
/// out, the next claim marks the delivery failed instead of leasing it again.
pub async fn unfinished_attempts_count_and_end_in_failed(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let ids = queue(s, &w, 1, 0).await;
    let lease = Duration::from_secs(60);
    let mut now = Timestamp::now().plus(Duration::from_secs(1));
    for attempt in 1..=MAX_ATTEMPTS {
        let claimed = s.claim_deliveries(now, 10, lease, MAX_ATTEMPTS).await.expect("claim");
        assert_eq!(claimed.iter().map(|d| d.attempts).collect::<Vec<_>>(), vec![attempt]);
        now = now.plus(lease + Duration::from_secs(1));
    }
    assert!(s.claim_deliveries(now, 10, lease, MAX_ATTEMPTS).await.expect("claim").is_empty(), "not leased again");
    let d = get(s, ids[0]).await;
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, MAX_ATTEMPTS));
    assert!(d.last_error.as_deref().is_some_and(|e| e.contains(converger_storage::UNFINISHED_ATTEMPT)), "{d:?}");
    // A late outcome of the last claim changes nothing.
    let late = s.complete_delivery(ids[0], MAX_ATTEMPTS, DeliveryOutcome::Delivered { at: now, metadata: None }).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
}

pub async fn retry_delivery_puts_a_failed_row_back_due_now(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let ids = queue(s, &w, 1, 0).await;
    let lease = Duration::from_secs(60);
    let now = Timestamp::now().plus(Duration::from_secs(1));
    for _ in 0..3 {
        let claimed = s.claim_deliveries(now.plus(HOUR * 10), 10, lease, MAX_ATTEMPTS).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        let next = DeliveryOutcome::Retry { error: "again".into(), next_attempt_at: now };
        s.complete_delivery(ids[0], claimed[0].attempts, next).await.expect("retry later");
    }
    let failed =
        s.complete_delivery(ids[0], 3, DeliveryOutcome::Failed { error: "gave up".into() }).await.expect("fail");
    assert_eq!((failed.status, failed.attempts), (DeliveryStatus::Failed, 3));
    assert!(
        s.claim_deliveries(now.plus(HOUR * 1000), 10, lease, MAX_ATTEMPTS).await.expect("claim").is_empty(),
        "failed rows wait"
    );

    let scope = Scope::Tenant(w.tenant.id);
    let requeued = s.retry_delivery(scope, ids[0]).await.expect("retry_delivery");
    let after = Timestamp::now();
    assert_eq!((requeued.id, requeued.status, requeued.attempts), (ids[0], DeliveryStatus::Pending, 0));
    assert!(requeued.next_attempt_at <= after, "due now: {} > {after}", requeued.next_attempt_at);
    assert_eq!(get(s, ids[0]).await, requeued);
    let again = s.claim_deliveries(after.plus(Duration::from_secs(1)), 10, lease, MAX_ATTEMPTS).await.expect("claim");
    assert_eq!(again.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(), vec![(ids[0], 1)]);
    assert_not_found(s.retry_delivery(scope, new_id()).await, Entity::Delivery, "retry an unknown delivery");
}
