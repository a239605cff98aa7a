//! Replaying the log gives the state the read gives (issue 16): a seeded,
//! random-ish run of lifecycle writes — messages, replies, edits, deletes,
//! reactions added and taken back, some refused, several per batch — is
//! checked three ways:
//! - before each batch a model predicts every item's answer (written with
//!   this seq, a replay of that reaction, or this refusal), so the rules and
//!   the items of one batch seeing each other are held item by item;
//! - the raw log (`read_range`, in pages) folded client-side with the rules
//!   of docs/api.md, starting from each message as read, equals every
//!   message's current state as read (what a client resuming from 0 does);
//! - the same fold starting from each message as it was first written (what
//!   a client that followed live does) equals it too.
//!
//! The rules folded here (storage/src/lifecycle.rs): an edit replaces text
//! and attachments when it carries them and metadata when it is a non-empty
//! object, and sets `edited_at`; a delete erases text, attachments and
//! metadata, sets `deleted_at` and drops the reactions; `reaction_add` and
//! `reaction_remove` add and take back (sender, emoji); a reply counts on its
//! parent (deleted replies still count).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use converger_storage::{
    new_id, Activity, Conversation, Id, Json, NewActivity, ReactionCount, Refusal, Scope, Store, StoreError, Timestamp,
    Written,
};

use crate::harness::{acting, edit, json, message_by, reaction, reply, world, write};

const SENDERS: [&str; 3] = ["alice", "bob", "carol"];
const EMOJI: [&str; 3] = ["👍", "🎉", "❤"];

/// xorshift64*: the run is the same for a seed on every backend.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A message's text, attachments and metadata.
type Content = (Option<String>, Option<Json>, Json);

/// A message's state as a client folds it from the log.
#[derive(Clone, Debug, PartialEq)]
struct View {
    sender: String,
    parent_id: Option<Id>,
    text: Option<String>,
    attachments: Option<Json>,
    metadata: Json,
    edited_at: Option<Timestamp>,
    deleted_at: Option<Timestamp>,
    reply_count: i64,
    /// emoji → sender → the `reaction_add` that added it.
    reactions: BTreeMap<String, BTreeMap<String, Id>>,
}

impl View {
    fn of(a: &Activity, content: Content) -> View {
        let (text, attachments, metadata) = content;
        View {
            sender: a.sender.clone(),
            parent_id: a.parent_id,
            text,
            attachments,
            metadata,
            edited_at: None,
            deleted_at: None,
            reply_count: 0,
            reactions: BTreeMap::new(),
        }
    }

    /// The summary a read shows `reader`.
    fn summary(&self, reader: Option<&str>) -> Vec<ReactionCount> {
        let mut out: Vec<ReactionCount> = self
            .reactions
            .iter()
            .filter(|(_, by)| !by.is_empty())
            .map(|(emoji, by)| ReactionCount {
                emoji: emoji.clone(),
                count: by.len() as i64,
                me: reader.is_some_and(|r| by.contains_key(r)),
            })
            .collect();
        ReactionCount::sort(&mut out);
        out
    }

    /// The message as a read shows it: `a` with this state.
    fn applied_to(&self, a: &Activity, reader: Option<&str>) -> Activity {
        let mut out = a.clone();
        out.text.clone_from(&self.text);
        out.attachments.clone_from(&self.attachments);
        out.metadata = self.metadata.clone();
        let state = out.state.get_or_insert_with(Default::default);
        state.edited_at = self.edited_at;
        state.deleted_at = self.deleted_at;
        state.reply_count = self.reply_count;
        state.reactions = self.summary(reader);
        out
    }
}

fn non_empty_object(j: &Json) -> bool {
    j.to_value().as_object().is_some_and(|m| !m.is_empty())
}

/// Applies one logged activity to the views (`start` gives a message's first content).
fn apply(views: &mut HashMap<Id, View>, a: &Activity, start: &dyn Fn(&Activity) -> Content) {
    match a.kind.as_str() {
        "message" => {
            views.insert(a.id, View::of(a, start(a)));
            if let Some(parent) = a.parent_id.and_then(|p| views.get_mut(&p)) {
                parent.reply_count += 1;
            }
        }
        "edit" => {
            let v = views.get_mut(&a.target_id.expect("an edit's target")).expect("an edit of a logged message");
            if a.text.is_some() {
                v.text.clone_from(&a.text);
            }
            if a.attachments.is_some() {
                v.attachments.clone_from(&a.attachments);
            }
            if non_empty_object(&a.metadata) {
                v.metadata = a.metadata.clone();
            }
            v.edited_at = Some(a.created_at);
        }
        "delete" => {
            let v = views.get_mut(&a.target_id.expect("a delete's target")).expect("a delete of a logged message");
            v.text = None;
            v.attachments = None;
            v.metadata = Json::empty_object();
            v.deleted_at = Some(a.created_at);
            v.reactions.clear();
        }
        "reaction_add" | "reaction_remove" => {
            let v = views.get_mut(&a.target_id.expect("a reaction's target")).expect("a reaction to a logged message");
            let emoji = a.text.clone().expect("a reaction's emoji");
            let by = v.reactions.entry(emoji).or_default();
            if a.kind == "reaction_add" {
                by.insert(a.sender.clone(), a.id);
            } else {
                by.remove(&a.sender);
            }
        }
        _ => {}
    }
}

/// What the model expects of one item.
#[derive(Debug, PartialEq)]
enum Expect {
    Write(i64),
    Replay(Id),
    Refused(Refusal),
}

/// The model: every activity written so far (what it is) and each message's view.
struct Model {
    kinds: HashMap<Id, (String, Option<Id>)>,
    views: HashMap<Id, View>,
    last_seq: i64,
    /// Messages written first (for the live fold): their first content.
    first: HashMap<Id, Content>,
}

impl Model {
    /// The answer `item` must get, applied to the model when it writes.
    fn admit(&mut self, item: &NewActivity) -> Expect {
        if let Some(refusal) = self.refusal(item) {
            return Expect::Refused(refusal);
        }
        let target = item.target_id.and_then(|t| self.views.get(&t));
        if let (Some(v), "reaction_add") = (target, item.kind.as_str()) {
            let emoji = item.text.clone().unwrap_or_default();
            if let Some(id) = v.reactions.get(&emoji).and_then(|by| by.get(&item.sender)) {
                return Expect::Replay(*id);
            }
        }
        self.last_seq += 1;
        let a = item.clone().into_stored(self.last_seq);
        self.kinds.insert(a.id, (a.kind.clone(), a.parent_id));
        if a.is_message() {
            self.first.insert(a.id, (a.text.clone(), a.attachments.clone(), a.metadata.clone()));
        }
        let first = &self.first;
        apply(&mut self.views, &a, &|m: &Activity| first[&m.id].clone());
        Expect::Write(self.last_seq)
    }

    fn refusal(&self, item: &NewActivity) -> Option<Refusal> {
        let check = |id: Id, field: &'static str| -> Result<&View, Refusal> {
            match self.kinds.get(&id) {
                None => Err(Refusal::TargetNotFound { field }),
                Some((kind, _)) if kind != "message" => Err(Refusal::TargetNotMessage { field }),
                Some(_) if self.views[&id].deleted_at.is_some() => Err(Refusal::TargetDeleted { field }),
                Some(_) => Ok(&self.views[&id]),
            }
        };
        if let Some(t) = item.target_id {
            let v = match check(t, "target_id") {
                Ok(v) => v,
                Err(r) => return Some(r),
            };
            match item.kind.as_str() {
                "edit" | "delete" if item.author_only && v.sender != item.sender => return Some(Refusal::NotAuthor),
                "reaction_remove" => {
                    let emoji = item.text.clone().unwrap_or_default();
                    if !v.reactions.get(&emoji).is_some_and(|by| by.contains_key(&item.sender)) {
                        return Some(Refusal::ReactionNotFound);
                    }
                }
                _ => {}
            }
        }
        if let Some(p) = item.parent_id {
            match check(p, "parent_id") {
                Err(r) => return Some(r),
                Ok(v) if v.parent_id.is_some() => return Some(Refusal::TargetNotMessage { field: "parent_id" }),
                Ok(_) => {}
            }
        }
        None
    }
}

/// A random item of the run, naming ids written before or earlier in its batch.
fn random_item(rng: &mut Rng, c: &Conversation, known: &[Id], messages: &[Id], n: usize, at: Timestamp) -> NewActivity {
    let sender = rng.pick(&SENDERS);
    let target = |rng: &mut Rng| match rng.below(10) {
        0 => new_id(),
        1 if !known.is_empty() => rng.pick(known),
        _ if !messages.is_empty() => rng.pick(messages),
        _ => new_id(),
    };
    let mut item = match rng.below(100) {
        0..=24 => message_by(c, sender, &format!("m{n}")),
        25..=34 => reply(c, sender, target(rng), &format!("r{n}")),
        35..=49 => {
            let mut e = edit(c, sender, target(rng), &format!("e{n}"));
            if rng.chance(30) {
                e.text = None;
                e.attachments = Some(json(&format!(r#"[{{"n": {n}}}]"#)));
            }
            if rng.chance(40) {
                e.metadata = json(&format!(r#"{{"edit": {n}}}"#));
            }
            e.author_only = rng.chance(40);
            e
        }
        50..=57 => {
            let mut d = acting(c, "delete", sender, target(rng));
            d.author_only = rng.chance(40);
            d
        }
        58..=84 => reaction(c, true, sender, target(rng), rng.pick(&EMOJI)),
        85..=96 => reaction(c, false, sender, target(rng), rng.pick(&EMOJI)),
        _ => NewActivity { kind: "event".into(), ..message_by(c, sender, &format!("ev{n}")) },
    };
    if item.kind == "message" {
        if rng.chance(30) {
            item.attachments = Some(json(&format!(r#"[{{"file": {n}}}]"#)));
        }
        if rng.chance(30) {
            item.metadata = json(&format!(r#"{{"m": {n}}}"#));
        }
    }
    item.created_at = at;
    item
}

/// Every activity of the conversation read in pages of `limit`, as `reader`.
async fn read_all(store: &dyn Store, scope: Scope, c: Id, limit: u32, reader: Option<&str>) -> Vec<Activity> {
    let mut all: Vec<Activity> = Vec::new();
    loop {
        let after = all.last().map_or(0, |a| a.seq);
        let page = store.read_range(scope, c, after, limit, reader).await.expect("read_range");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

async fn run(store: &dyn Store, seed: u64) {
    const BATCHES: usize = 40;
    let mut rng = Rng(seed);
    let w = world(store, &format!("replay-{seed}")).await;
    let c = &w.conversation;
    let scope = Scope::Tenant(w.tenant.id);
    let mut model = Model { kinds: HashMap::new(), views: HashMap::new(), last_seq: 0, first: HashMap::new() };
    let (mut known, mut messages): (Vec<Id>, Vec<Id>) = (Vec::new(), Vec::new());
    let mut clock = 1_700_000_000_000_000_i64;
    let mut n = 0;
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for b in 0..BATCHES {
        let size = 1 + rng.below(6);
        let mut batch = Vec::with_capacity(size);
        let mut expected = Vec::with_capacity(size);
        for _ in 0..size {
            n += 1;
            clock += 1_000;
            let item = random_item(&mut rng, c, &known, &messages, n, Timestamp::from_micros(clock));
            // Later items of the batch may name this one, written or not.
            known.push(item.id);
            if item.kind == "message" {
                messages.push(item.id);
            }
            expected.push(model.admit(&item));
            batch.push(item);
        }
        let results = write(store, batch.clone()).await;
        for ((item, want), got) in batch.iter().zip(&expected).zip(&results) {
            let what = format!("seed {seed}, batch {b}: {} by {} on {:?}", item.kind, item.sender, item.target_id);
            let outcome = match (want, got) {
                (Expect::Write(seq), Ok(Written::New(a))) if a.seq == *seq && a.id == item.id => "written",
                (Expect::Replay(id), Ok(Written::Replay(a))) if a.id == *id => "replayed",
                (Expect::Refused(r), Err(StoreError::Refused(got))) if r == got => "refused",
                _ => panic!("{what}: expected {want:?}, got {got:?}"),
            };
            *tally.entry(format!("{} {outcome}", item.kind)).or_default() += 1;
        }
    }
    eprintln!("replay seed {seed}: {tally:?}");
    assert!(tally.keys().any(|k| k == "delete written") && tally.keys().any(|k| k == "edit written"), "{tally:?}");

    for reader in [None, Some("alice")] {
        let read = read_all(store, scope, c.id, 1000, reader).await;
        assert_eq!(read_all(store, scope, c.id, 7, reader).await, read, "pages of 7 read the same as one page");
        assert_eq!(read.last().map_or(0, |a| a.seq), model.last_seq);
        let seqs: Vec<i64> = read.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, (1..=model.last_seq).collect::<Vec<_>>(), "the log is gap-free, in seq order");

        // A client resuming from 0: each message as read, then the log.
        let mut resumed = HashMap::new();
        let as_read: HashMap<Id, Content> =
            read.iter().map(|a| (a.id, (a.text.clone(), a.attachments.clone(), a.metadata.clone()))).collect();
        // A client that followed live: each message as first written, then the log.
        let mut live = HashMap::new();
        for a in &read {
            apply(&mut resumed, a, &|m: &Activity| as_read[&m.id].clone());
            apply(&mut live, a, &|m: &Activity| model.first[&m.id].clone());
        }
        for a in read.iter().filter(|a| a.is_message()) {
            let what = format!("seed {seed}, reader {reader:?}, message seq {}", a.seq);
            assert_eq!(&resumed[&a.id].applied_to(a, reader), a, "{what}: the log folded from the read state");
            assert_eq!(&live[&a.id].applied_to(a, reader), a, "{what}: the log folded from the first content");
            assert_eq!(&model.views[&a.id].applied_to(a, reader), a, "{what}: the model");
        }
        for a in read.iter().filter(|a| !a.is_message()) {
            assert!(a.state.is_none(), "seed {seed}: only messages carry a state: {a:?}");
        }
    }
}

/// Three seeded runs of ~140 items in 40 batches each.
pub async fn replaying_the_log_gives_the_state_the_read_gives(store: Arc<dyn Store>) {
    for seed in [0x5eed_0001, 0xc0ff_ee16, 0x0dd_ba11] {
        run(&*store, seed).await;
    }
}
