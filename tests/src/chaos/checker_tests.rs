//! The checker is the product of a chaos run: each kind of violation is fed
//! to it by hand and must be caught, and a clean history must pass.

use super::*;
use crate::chaos::history::{Outcome, Record, Transport};

const C: &str = "conv-a";

fn stored(seq: u64, key: &str) -> Stored {
    Stored { seq, id: format!("id-{seq}"), text: Some(key.into()), idempotency_key: Some(key.into()) }
}

fn publish(key: &str, attempt: u32, outcome: Outcome) -> Record {
    Record::Publish {
        client: "rest-0".into(),
        transport: Transport::Rest,
        conversation: C.into(),
        key: key.into(),
        attempt,
        outcome,
    }
}

fn acked(seq: u64) -> Outcome {
    Outcome::Acked { seq, id: format!("id-{seq}"), replayed: false }
}

fn unknown() -> Outcome {
    Outcome::Unknown { error: "connection reset".into() }
}

fn observe(subscriber: &str, seq: u64) -> Record {
    Record::Observe {
        subscriber: subscriber.into(),
        transport: Transport::Phoenix,
        conversation: C.into(),
        seq,
        id: format!("id-{seq}"),
    }
}

/// Three keys stored as seqs 1..3; k2 was retried after an unknown outcome.
fn clean() -> (Vec<Record>, Store) {
    let history = vec![
        publish("k1", 1, acked(1)),
        publish("k2", 1, unknown()),
        observe("sub-0", 1),
        publish("k2", 2, acked(2)),
        observe("sub-0", 2),
        publish("k3", 1, acked(3)),
        observe("sub-0", 3),
        publish("k4", 1, Outcome::Refused { status: 503, code: "storage_unavailable".into() }),
        publish("k5", 1, unknown()),
    ];
    let store = Store::from([(C.to_string(), vec![stored(1, "k1"), stored(2, "k2"), stored(3, "k3")])]);
    (history, store)
}

#[test]
fn a_clean_history_passes_and_is_counted() {
    let (history, store) = clean();
    let report = check(&history, &store);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!((report.acknowledged, report.refused, report.unknown), (3, 1, 1));
    assert_eq!((report.retries, report.observed, report.stored), (1, 3, 3));
    assert_eq!(report.refusals, BTreeMap::from([("503 storage_unavailable".to_string(), 1)]));
}

#[test]
fn an_unknown_outcome_may_be_stored_once() {
    let (mut history, mut store) = clean();
    history.push(publish("k6", 1, unknown()));
    store.get_mut(C).expect("conv").push(stored(4, "k6"));
    history.push(observe("sub-0", 4));
    assert!(check(&history, &store).violations.is_empty());
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    let (history, mut store) = clean();
    // k3 (seq 3) is gone: the tail was lost.
    store.get_mut(C).expect("conv").pop();
    let v = check(&history, &store).violations;
    assert!(
        v.iter().any(|v| matches!(v, Violation::AckedNotStored { key, seq: 3, found: None, .. } if key == "k3")),
        "{v:?}"
    );
}

#[test]
fn an_acknowledged_write_under_another_seq_is_caught() {
    let (history, mut store) = clean();
    // k2 and k3 swapped places.
    let acts = store.get_mut(C).expect("conv");
    acts[1] = Stored { seq: 2, id: "id-3".into(), text: Some("k3".into()), idempotency_key: Some("k3".into()) };
    acts[2] = Stored { seq: 3, id: "id-2".into(), text: Some("k2".into()), idempotency_key: Some("k2".into()) };
    let v = check(&history, &store).violations;
    assert_eq!(v.iter().filter(|v| matches!(v, Violation::AckedNotStored { .. })).count(), 2, "{v:?}");
}

#[test]
fn a_seq_gap_is_caught() {
    let (history, mut store) = clean();
    store.get_mut(C).expect("conv")[2].seq = 4;
    let v = check(&history, &store).violations;
    assert!(v.iter().any(|v| matches!(v, Violation::SeqGap { index: 2, expected: 3, found: 4, .. })), "{v:?}");
}

#[test]
fn a_duplicated_seq_is_caught() {
    let (history, mut store) = clean();
    store.get_mut(C).expect("conv")[2].seq = 2;
    let v = check(&history, &store).violations;
    assert!(v.iter().any(|v| matches!(v, Violation::SeqGap { expected: 3, found: 2, .. })), "{v:?}");
}

#[test]
fn a_retried_key_stored_twice_is_caught() {
    let (history, mut store) = clean();
    // The retry of k2 wrote a second copy (under a key the server did not keep).
    let mut copy = stored(4, "k2");
    copy.idempotency_key = None;
    store.get_mut(C).expect("conv").push(copy);
    let v = check(&history, &store).violations;
    assert!(
        v.iter().any(|v| matches!(v, Violation::KeyDoubled { key, copies } if key == "k2" && copies.len() == 2)),
        "{v:?}"
    );
}

#[test]
fn acknowledgements_of_one_key_that_disagree_are_caught() {
    let (mut history, store) = clean();
    history.push(publish("k1", 2, acked(3)));
    let v = check(&history, &store).violations;
    assert!(v.iter().any(|v| matches!(v, Violation::AcksDisagree { key, .. } if key == "k1")), "{v:?}");
}

#[test]
fn a_stored_key_that_is_not_the_activitys_is_caught() {
    let (history, mut store) = clean();
    store.get_mut(C).expect("conv")[0].idempotency_key = Some("other".into());
    let v = check(&history, &store).violations;
    assert!(v.iter().any(|v| matches!(v, Violation::KeyMismatch { seq: 1, .. })), "{v:?}");
}

#[test]
fn a_subscriber_gap_is_caught() {
    let (mut history, store) = clean();
    history.retain(|r| !matches!(r, Record::Observe { seq: 2, .. }));
    let v = check(&history, &store).violations;
    assert!(
        v.iter().any(|v| matches!(v, Violation::SubscriberOutOfOrder { index: 1, expected: 2, found: 3, .. })),
        "{v:?}"
    );
}

#[test]
fn a_subscriber_duplicate_is_caught() {
    let (mut history, store) = clean();
    // A resume that replayed seq 2 again.
    history.insert(5, observe("sub-0", 2));
    let v = check(&history, &store).violations;
    assert!(
        v.iter().any(|v| matches!(v, Violation::SubscriberOutOfOrder { index: 2, expected: 3, found: 2, .. })),
        "{v:?}"
    );
}

#[test]
fn a_subscriber_seeing_another_activity_under_a_seq_is_caught() {
    let (mut history, store) = clean();
    for r in &mut history {
        if let Record::Observe { seq: 2, id, .. } = r {
            *id = "id-phantom".into();
        }
    }
    let v = check(&history, &store).violations;
    assert!(v.iter().any(|v| matches!(v, Violation::SubscriberWrongActivity { seq: 2, .. })), "{v:?}");
}

#[test]
fn a_subscriber_left_behind_is_caught() {
    let (mut history, store) = clean();
    history.retain(|r| !matches!(r, Record::Observe { seq: 3, .. }));
    // Another one joined and saw nothing at all.
    history.push(Record::Resume {
        subscriber: "sub-1".into(),
        transport: Transport::Binary,
        conversation: C.into(),
        after_seq: 0,
    });
    let v = check(&history, &store).violations;
    let behind: Vec<_> =
        v.iter().filter(|v| matches!(v, Violation::SubscriberBehind { stored_up_to: 3, .. })).collect();
    assert_eq!(behind.len(), 2, "{v:?}");
}

#[test]
fn every_violation_prints_its_kind() {
    let v = Violation::KeyDoubled { key: "k".into(), copies: vec![(C.into(), 1), (C.into(), 2)] };
    assert!(v.to_string().starts_with("key_doubled: key k stored 2 times"), "{v}");
}

#[test]
fn the_self_check_passes_on_a_clean_run_and_needs_data() {
    let (history, store) = clean();
    assert_eq!(self_check(&history, &store), Ok(()));
    let no_acks: Vec<Record> = history.iter().filter(|r| !matches!(r, Record::Publish { .. })).cloned().collect();
    assert!(self_check(&no_acks, &store).is_err());
    let no_views: Vec<Record> = history.iter().filter(|r| !matches!(r, Record::Observe { .. })).cloned().collect();
    assert!(self_check(&no_views, &store).is_err());
}

#[test]
fn a_seq_handed_out_at_the_end_and_never_stored_is_caught() {
    let (_, store) = clean();
    assert!(check_last_seqs(&store, &BTreeMap::from([(C.to_string(), 3)])).is_empty());
    let v = check_last_seqs(&store, &BTreeMap::from([(C.to_string(), 4)]));
    assert!(matches!(v.as_slice(), [Violation::LastSeqMismatch { last_seq: 4, last_stored: 3, .. }]), "{v:?}");
}
