//! The history checker: given the recorded [`History`](super::history) and
//! the final store (every conversation read back through REST), it proves
//!
//! 1. every acknowledged activity is stored, once, under the seq and id it
//!    was acknowledged with (and every acknowledgement of one key agrees);
//! 2. every conversation's seqs are exactly 1..n, in order, and the
//!    `last_seq` the server reports is n ([`check_last_seqs`]);
//! 3. every subscriber saw, per conversation, exactly seqs 1..k in order, with
//!    the stored ids (a gap-free, duplicate-free prefix), and caught up with
//!    the store once the load stopped (k = n);
//! 4. no key is stored more than once, however often it was retried.
//!
//! Unknown outcomes are allowed either way (stored once or not at all);
//! refusals are not acknowledgements. Each broken property is one
//! [`Violation`] naming what, where and the evidence.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::history::{Outcome, Record};

/// One activity as the store lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub seq: u64,
    pub id: String,
    /// The chaos key the publisher put in the activity (its text).
    pub text: Option<String>,
    /// The idempotency key the server stored with it.
    pub idempotency_key: Option<String>,
}

/// The final store: conversation id → its activities in the order REST listed them.
pub type Store = BTreeMap<String, Vec<Stored>>;

/// A broken property, with its evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// An acknowledged activity is not in the store under its acknowledged seq.
    AckedNotStored { key: String, conversation: String, seq: u64, id: String, found: Option<Stored> },
    /// Two acknowledgements of one key disagree on seq or id.
    AcksDisagree { key: String, first: (u64, String), other: (u64, String) },
    /// A conversation's seqs are not 1..n in order.
    SeqGap { conversation: String, index: usize, expected: u64, found: u64 },
    /// A key is stored more than once (a retry doubled it).
    KeyDoubled { key: String, copies: Vec<(String, u64)> },
    /// The conversation's `last_seq` is not its last stored activity's seq
    /// (a seq handed out at the end and never stored is a gap too).
    LastSeqMismatch { conversation: String, last_seq: u64, last_stored: u64 },
    /// A stored activity's idempotency key is not the key it carries.
    KeyMismatch { conversation: String, seq: u64, text: Option<String>, idempotency_key: Option<String> },
    /// A subscriber's observations of a conversation are not 1, 2, 3 … in order.
    SubscriberOutOfOrder { subscriber: String, conversation: String, index: usize, expected: u64, found: u64 },
    /// A subscriber received an activity other than the one stored under that seq.
    SubscriberWrongActivity { subscriber: String, conversation: String, seq: u64, seen: String, stored: Option<String> },
    /// A subscriber had not caught up with the store when the load had stopped.
    SubscriberBehind { subscriber: String, conversation: String, seen_up_to: u64, stored_up_to: u64 },
    /// A fault-specific expectation failed (e.g. the disk-full answer).
    Fault { fault: String, detail: String },
    /// The checker missed a violation planted in this run's own data (see [`self_check`]).
    CheckerBlind { detail: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::AckedNotStored { key, conversation, seq, id, found } => write!(
                f,
                "acked_not_stored: key {key} acknowledged as seq {seq} id {id} in {conversation}; store has {found:?}"
            ),
            Violation::AcksDisagree { key, first, other } => {
                write!(f, "acks_disagree: key {key} acknowledged as {first:?} and as {other:?}")
            }
            Violation::SeqGap { conversation, index, expected, found } => {
                write!(f, "seq_gap: conversation {conversation} at index {index}: expected seq {expected}, found {found}")
            }
            Violation::LastSeqMismatch { conversation, last_seq, last_stored } => write!(
                f,
                "last_seq_mismatch: conversation {conversation} says last_seq {last_seq}, its last stored seq is {last_stored}"
            ),
            Violation::KeyDoubled { key, copies } => write!(f, "key_doubled: key {key} stored {} times: {copies:?}", copies.len()),
            Violation::KeyMismatch { conversation, seq, text, idempotency_key } => write!(
                f,
                "key_mismatch: {conversation} seq {seq} carries text {text:?} but idempotency key {idempotency_key:?}"
            ),
            Violation::SubscriberOutOfOrder { subscriber, conversation, index, expected, found } => write!(
                f,
                "subscriber_out_of_order: {subscriber} on {conversation}, observation {index}: expected seq {expected}, got {found}"
            ),
            Violation::SubscriberWrongActivity { subscriber, conversation, seq, seen, stored } => write!(
                f,
                "subscriber_wrong_activity: {subscriber} on {conversation} seq {seq} saw id {seen}, store has {stored:?}"
            ),
            Violation::SubscriberBehind { subscriber, conversation, seen_up_to, stored_up_to } => write!(
                f,
                "subscriber_behind: {subscriber} on {conversation} saw up to seq {seen_up_to} of {stored_up_to} after the load stopped"
            ),
            Violation::Fault { fault, detail } => write!(f, "fault_{fault}: {detail}"),
            Violation::CheckerBlind { detail } => write!(f, "checker_blind: {detail}"),
        }
    }
}

/// What the checker counted and found.
#[derive(Debug, Default)]
pub struct Report {
    /// Logical publishes (keys) acknowledged at least once.
    pub acknowledged: usize,
    /// Acknowledged keys whose acknowledgement was a replay: a retry of a
    /// write that had been stored (its first answer was lost).
    pub replayed: usize,
    /// Keys whose every attempt ended without an answer.
    pub unknown: usize,
    /// Keys refused (never acknowledged, at least one error answer).
    pub refused: usize,
    /// Attempts past the first (retries with the same key).
    pub retries: usize,
    /// Refused attempts by `status code` (e.g. `503 storage_unavailable`).
    pub refusals: BTreeMap<String, usize>,
    /// Activities the subscribers received.
    pub observed: usize,
    /// Subscriptions made (the first and every resume), per conversation.
    pub resumes: usize,
    /// Activities in the final store.
    pub stored: usize,
    pub violations: Vec<Violation>,
}

/// Checks `history` against `store`; see the module documentation.
pub fn check(history: &[Record], store: &Store) -> Report {
    let mut report = Report { stored: store.values().map(Vec::len).sum(), ..Report::default() };
    check_store(store, &mut report);
    let by_seq: BySeq = store
        .iter()
        .map(|(c, acts)| (c.as_str(), acts.iter().map(|a| (a.seq, a)).collect::<HashMap<_, _>>()))
        .collect();
    check_publishes(history, store, &by_seq, &mut report);
    check_subscribers(history, store, &by_seq, &mut report);
    report
}

/// conversation → seq → the activity stored under it (the first, should a seq repeat).
type BySeq<'a> = HashMap<&'a str, HashMap<u64, &'a Stored>>;

fn stored_at<'a>(by_seq: &BySeq<'a>, conversation: &str, seq: u64) -> Option<&'a Stored> {
    by_seq.get(conversation).and_then(|m| m.get(&seq)).copied()
}

/// Plants one violation of each kind the run's data allows (a lost
/// acknowledged write, a doubled key, a subscriber's lost observation) in a
/// copy of `history` and `store`, and checks that [`check`] reports each:
/// proof, on the run's own data, that a clean report is not a blind one.
/// `Err` names what went unnoticed, or says there was nothing to plant on.
pub fn self_check(history: &[Record], store: &Store) -> Result<(), String> {
    let acked = history.iter().find_map(|r| match r {
        Record::Publish { conversation, outcome: Outcome::Acked { seq, .. }, .. } => Some((conversation, *seq)),
        _ => None,
    });
    let Some((conversation, seq)) = acked else { return Err("no acknowledged write to plant on".into()) };
    let caught = |h: &[Record], s: &Store, what: &str, kind: fn(&Violation) -> bool| {
        if check(h, s).violations.iter().any(kind) {
            Ok(())
        } else {
            Err(format!("the checker did not notice {what}"))
        }
    };
    // A lost acknowledged write.
    let mut lost = store.clone();
    if let Some(acts) = lost.get_mut(conversation.as_str()) {
        acts.retain(|a| a.seq != seq);
    }
    caught(history, &lost, "a lost acknowledged write", |v| matches!(v, Violation::AckedNotStored { .. }))?;
    // The same write stored twice, under the next seq.
    let mut doubled = store.clone();
    if let Some(acts) = doubled.get_mut(conversation.as_str()) {
        if let Some(copy) = acts.iter().find(|a| a.seq == seq).cloned() {
            let next = acts.last().map_or(1, |a| a.seq + 1);
            acts.push(Stored { seq: next, id: format!("{}-copy", copy.id), ..copy });
        }
    }
    caught(history, &doubled, "a doubled key", |v| matches!(v, Violation::KeyDoubled { .. }))?;
    // A subscriber missing one activity.
    let Some(first) = history.iter().position(|r| matches!(r, Record::Observe { .. })) else {
        return Err("no subscriber observation to plant on".into());
    };
    let mut missed = history.to_vec();
    missed.remove(first);
    caught(&missed, store, "a subscriber's gap", |v| {
        matches!(v, Violation::SubscriberOutOfOrder { .. } | Violation::SubscriberBehind { .. })
    })
}

/// Property 2 at the end of each conversation: `last_seqs` (conversation →
/// the `last_seq` the server reports) against the last stored seq.
pub fn check_last_seqs(store: &Store, last_seqs: &BTreeMap<String, u64>) -> Vec<Violation> {
    store
        .iter()
        .filter_map(|(conversation, acts)| {
            let last_stored = acts.last().map_or(0, |a| a.seq);
            let &last_seq = last_seqs.get(conversation)?;
            (last_seq != last_stored).then(|| Violation::LastSeqMismatch {
                conversation: conversation.clone(),
                last_seq,
                last_stored,
            })
        })
        .collect()
}

/// Property 2 (seqs 1..n) and the key each stored activity carries.
fn check_store(store: &Store, report: &mut Report) {
    for (conversation, activities) in store {
        // The first break in a conversation is enough evidence; later ones follow from it.
        if let Some((index, a)) = activities.iter().enumerate().find(|(i, a)| a.seq != *i as u64 + 1) {
            report.violations.push(Violation::SeqGap {
                conversation: conversation.clone(),
                index,
                expected: index as u64 + 1,
                found: a.seq,
            });
        }
        for a in activities {
            if a.idempotency_key.is_some() && a.idempotency_key != a.text {
                report.violations.push(Violation::KeyMismatch {
                    conversation: conversation.clone(),
                    seq: a.seq,
                    text: a.text.clone(),
                    idempotency_key: a.idempotency_key.clone(),
                });
            }
        }
    }
}

/// Properties 1 and 4.
fn check_publishes(history: &[Record], store: &Store, by_seq: &BySeq, report: &mut Report) {
    // Every stored copy of each key: (conversation, seq).
    let mut copies: HashMap<&str, Vec<(String, u64)>> = HashMap::new();
    for (conversation, activities) in store {
        for a in activities {
            if let Some(key) = a.text.as_deref() {
                copies.entry(key).or_default().push((conversation.clone(), a.seq));
            }
        }
    }
    // Per key, in order: (conversation, outcomes).
    let mut ops: BTreeMap<&str, (&str, Vec<&Outcome>)> = BTreeMap::new();
    for r in history {
        if let Record::Publish { conversation, key, outcome, .. } = r {
            ops.entry(key).or_insert_with(|| (conversation, Vec::new())).1.push(outcome);
        }
    }
    for (key, (conversation, outcomes)) in &ops {
        report.retries += outcomes.len().saturating_sub(1);
        for o in outcomes {
            if let Outcome::Refused { status, code } = o {
                *report.refusals.entry(format!("{status} {code}")).or_default() += 1;
            }
        }
        let acks: Vec<(u64, &String)> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Acked { seq, id, .. } => Some((*seq, id)),
                _ => None,
            })
            .collect();
        if let Some(&(seq, id)) = acks.first() {
            report.acknowledged += 1;
            if outcomes.iter().any(|o| matches!(o, Outcome::Acked { replayed: true, .. })) {
                report.replayed += 1;
            }
            for &(s, i) in &acks[1..] {
                if (s, i) != (seq, id) {
                    report.violations.push(Violation::AcksDisagree {
                        key: key.to_string(),
                        first: (seq, id.clone()),
                        other: (s, i.clone()),
                    });
                }
            }
            let found = stored_at(by_seq, conversation, seq);
            if !found.is_some_and(|a| &a.id == id && a.text.as_deref() == Some(*key)) {
                report.violations.push(Violation::AckedNotStored {
                    key: key.to_string(),
                    conversation: conversation.to_string(),
                    seq,
                    id: id.clone(),
                    found: found.cloned(),
                });
            }
        } else if outcomes.iter().any(|o| matches!(o, Outcome::Refused { .. })) {
            report.refused += 1;
        } else {
            report.unknown += 1;
        }
    }
    let mut doubled: Vec<(&str, &Vec<(String, u64)>)> =
        copies.iter().filter(|(_, c)| c.len() > 1).map(|(k, c)| (*k, c)).collect();
    doubled.sort();
    for (key, c) in doubled {
        report.violations.push(Violation::KeyDoubled { key: key.to_string(), copies: c.clone() });
    }
}

/// Property 3.
fn check_subscribers(history: &[Record], store: &Store, by_seq: &BySeq, report: &mut Report) {
    // (subscriber, conversation) → what it saw, in order.
    let mut seen: BTreeMap<(&str, &str), Vec<(u64, &String)>> = BTreeMap::new();
    for r in history {
        match r {
            Record::Observe { subscriber, conversation, seq, id, .. } => {
                report.observed += 1;
                seen.entry((subscriber, conversation)).or_default().push((*seq, id));
            }
            // A subscriber that joined and saw nothing must still catch up.
            Record::Resume { subscriber, conversation, .. } => {
                report.resumes += 1;
                seen.entry((subscriber, conversation)).or_default();
            }
            _ => {}
        }
    }
    for ((subscriber, conversation), observed) in seen {
        let stored = store.get(conversation).map(Vec::as_slice).unwrap_or_default();
        let mut in_order = true;
        for (index, &(seq, id)) in observed.iter().enumerate() {
            let expected = index as u64 + 1;
            if seq != expected {
                report.violations.push(Violation::SubscriberOutOfOrder {
                    subscriber: subscriber.to_string(),
                    conversation: conversation.to_string(),
                    index,
                    expected,
                    found: seq,
                });
                in_order = false;
                break;
            }
            let at = stored_at(by_seq, conversation, seq);
            if at.is_none_or(|a| &a.id != id) {
                report.violations.push(Violation::SubscriberWrongActivity {
                    subscriber: subscriber.to_string(),
                    conversation: conversation.to_string(),
                    seq,
                    seen: id.clone(),
                    stored: at.map(|a| a.id.clone()),
                });
                in_order = false;
                break;
            }
        }
        let stored_up_to = stored.last().map_or(0, |a| a.seq);
        if in_order && (observed.len() as u64) < stored_up_to {
            report.violations.push(Violation::SubscriberBehind {
                subscriber: subscriber.to_string(),
                conversation: conversation.to_string(),
                seen_up_to: observed.len() as u64,
                stored_up_to,
            });
        }
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
