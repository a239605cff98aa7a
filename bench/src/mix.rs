//! The write mixes of the REST scenarios (`--mix`): which kind each write is,
//! what it acts on, and how its answer counts. `plain` is messages only, the
//! load every figure before issue 16 was measured with; `chat` is 70 %
//! messages, 20 % `reaction_add` and 10 % `edit` (docs/api.md "Message
//! lifecycle"); `read-state` fills a conversation with [`Weights::FILL`].
//!
//! An edit, reaction, reply or delete acts on a message written shortly
//! before in the same conversation: each conversation keeps a small ring
//! ([`Recent`]) of the ids of the top-level messages whose 201 came back, and
//! a write with a target picks one of them at random (with an empty ring it
//! is a message instead). Reactions pile on: three in four go to the message
//! the conversation's previous reaction went to (while it is in the ring),
//! the rest to a random recent one, which becomes the one piled on. They come
//! from [`REACTORS`] senders with one of [`EMOJI`], so some repeat one already
//! there (about 7 % of them in `chat`): the server answers those 200 with the
//! activity that added it and writes nothing (a *replay*), counted apart from
//! the 201s. (Spread evenly over the ring instead, 20 % reactions against
//! 70 % messages give each message 0.3 reactions and almost no repeats.)

use std::collections::VecDeque;
use std::sync::Mutex;

use clap::ValueEnum;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::report::{new_histogram, Percentiles, Spread};

/// Which writes a scenario sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    /// Messages only (the default: the figures measured before keep their meaning).
    Plain,
    /// 70 % messages, 20 % reactions, 10 % edits of recent messages.
    Chat,
}

impl Mix {
    pub fn weights(self) -> Weights {
        match self {
            Mix::Plain => Weights::PLAIN,
            Mix::Chat => Weights::CHAT,
        }
    }
}

/// The kinds of write a mix is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Message,
    /// A message with a `parent_id`.
    Reply,
    /// `reaction_add`.
    Reaction,
    Edit,
    Delete,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Message, Kind::Reply, Kind::Reaction, Kind::Edit, Kind::Delete];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Reply => "reply",
            Kind::Reaction => "reaction_add",
            Kind::Edit => "edit",
            Kind::Delete => "delete",
        }
    }

    fn needs_target(self) -> bool {
        self != Kind::Message
    }
}

/// Percent of each kind, in the order of [`Kind::ALL`]; they add up to 100.
#[derive(Clone, Copy, Debug)]
pub struct Weights([u32; 5]);

impl Weights {
    pub const PLAIN: Weights = Weights([100, 0, 0, 0, 0]);
    pub const CHAT: Weights = Weights([70, 0, 20, 10, 0]);
    /// `read-state`'s chat conversation: 68 % messages (one in ten a reply),
    /// 20 % reactions, 10 % edits, 2 % deletes.
    pub const FILL: Weights = Weights([61, 7, 20, 10, 2]);

    pub fn pick(&self, rng: &mut Rng) -> Kind {
        let mut roll = rng.below(100) as u32;
        for kind in Kind::ALL {
            if roll < self.0[kind.index()] {
                return kind;
            }
            roll -= self.0[kind.index()];
        }
        Kind::Message
    }

    pub fn is_plain(&self) -> bool {
        self.0[Kind::Message.index()] == 100
    }
}

/// The emoji reactions pick from: few, so that some reactions repeat.
pub const EMOJI: [&str; 4] = ["👍", "❤️", "😂", "🎉"];
/// The senders reactions come from (`user-0` …).
pub const REACTORS: u64 = 4;
/// Ids kept per conversation for the writes that act on a recent message.
pub const RECENT: usize = 16;

/// A small, fast, seeded generator (splitmix64): each connection its own, so
/// a run's sequence of kinds is the same every time for the same seeds.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The ids of one conversation's latest top-level messages (bounded: the
/// oldest goes when a new one comes and the ring is full).
pub struct Recent {
    ids: VecDeque<String>,
    /// The message the last reaction went to.
    piled_on: Option<String>,
}

impl Recent {
    pub fn new() -> Recent {
        Recent { ids: VecDeque::with_capacity(RECENT), piled_on: None }
    }

    pub fn push(&mut self, id: String) {
        if self.ids.len() == RECENT {
            self.ids.pop_front();
        }
        self.ids.push_back(id);
    }

    pub fn pick(&self, rng: &mut Rng) -> Option<String> {
        (!self.ids.is_empty()).then(|| self.ids[rng.below(self.ids.len() as u64) as usize].clone())
    }

    /// A reaction's target: three times in four the one the last reaction
    /// went to, while it is in the ring.
    pub fn pile_on(&mut self, rng: &mut Rng) -> Option<String> {
        let stay = rng.below(4) < 3;
        match &self.piled_on {
            Some(id) if stay && self.ids.contains(id) => Some(id.clone()),
            _ => {
                self.piled_on = self.pick(rng);
                self.piled_on.clone()
            }
        }
    }

    /// Picks one and forgets it (a delete's target: nothing later acts on it).
    pub fn take(&mut self, rng: &mut Rng) -> Option<String> {
        (!self.ids.is_empty()).then(|| self.ids.remove(rng.below(self.ids.len() as u64) as usize)).flatten()
    }
}

/// One write to send: its kind and its JSON body.
pub struct Write {
    pub kind: Kind,
    pub body: Vec<u8>,
}

/// Makes the next write of a mix for one conversation. `message` is the
/// plain message's body, built once.
pub fn next_write(weights: &Weights, rng: &mut Rng, recent: &Mutex<Recent>, message: &[u8], text: &str) -> Write {
    let mut kind = weights.pick(rng);
    let target = if kind.needs_target() {
        let mut ring = recent.lock().unwrap_or_else(|e| e.into_inner());
        match kind {
            Kind::Delete => ring.take(rng),
            Kind::Reaction => ring.pile_on(rng),
            _ => ring.pick(rng),
        }
    } else {
        None
    };
    let body = match (kind, target) {
        (Kind::Reply, Some(t)) => json!({"sender": "bench", "text": text, "parent_id": t}),
        (Kind::Reaction, Some(t)) => {
            let sender = format!("user-{}", rng.below(REACTORS));
            let emoji = EMOJI[rng.below(EMOJI.len() as u64) as usize];
            json!({"type": "reaction_add", "sender": sender, "target_id": t, "text": emoji})
        }
        (Kind::Edit, Some(t)) => json!({"type": "edit", "sender": "bench", "target_id": t, "text": text}),
        (Kind::Delete, Some(t)) => json!({"type": "delete", "sender": "bench", "target_id": t}),
        _ => {
            kind = Kind::Message;
            return Write { kind, body: message.to_vec() };
        }
    };
    Write { kind, body: body.to_string().into_bytes() }
}

/// How an answer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 201: committed.
    Created,
    /// 200 to a `reaction_add` already there: nothing written.
    Replayed,
    /// Anything else.
    Refused,
}

pub fn outcome(kind: Kind, status: u16) -> Outcome {
    match (kind, status) {
        (_, 201) => Outcome::Created,
        (Kind::Reaction, 200) => Outcome::Replayed,
        _ => Outcome::Refused,
    }
}

/// The id of the activity an answer carries.
pub fn id_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Ack {
        id: String,
    }
    serde_json::from_slice::<Ack>(body).ok().map(|a| a.id)
}

/// After a 201: a new top-level message joins its conversation's ring.
pub fn remember(kind: Kind, body: &[u8], recent: &Mutex<Recent>) {
    if kind == Kind::Message {
        if let Some(id) = id_of(body) {
            recent.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        }
    }
}

/// One connection's (or one run's) counts and latencies per kind.
pub struct KindTally {
    pub created: [u64; 5],
    pub hists: Vec<Histogram<u64>>,
    pub replayed: u64,
}

impl KindTally {
    pub fn new() -> KindTally {
        KindTally { created: [0; 5], hists: (0..5).map(|_| new_histogram()).collect(), replayed: 0 }
    }

    pub fn record(&mut self, kind: Kind, micros: u64) {
        self.count(kind);
        let _ = self.hists[kind.index()].record(micros);
    }

    /// Counts one committed write whose latency is unknown.
    pub fn count(&mut self, kind: Kind) {
        self.created[kind.index()] += 1;
    }

    pub fn add(&mut self, other: &KindTally) -> Result<(), String> {
        for k in 0..5 {
            self.created[k] += other.created[k];
            self.hists[k].add(&other.hists[k]).map_err(|e| e.to_string())?;
        }
        self.replayed += other.replayed;
        Ok(())
    }
}

/// A mix's figures over several runs, for the JSON report.
#[derive(Serialize)]
pub struct MixReport {
    pub mix: Mix,
    /// Each kind sent: committed writes per second and their latency.
    pub kinds: Vec<KindReport>,
    /// `reaction_add` answered 200 (already there): per second, not in the acks.
    pub replays_per_s: Spread,
}

#[derive(Serialize)]
pub struct KindReport {
    pub kind: &'static str,
    pub per_s: Spread,
    /// Share of the committed writes, in percent.
    pub share_pct: f64,
    pub latency_us: Percentiles,
}

/// Accumulates each run's [`KindTally`] into a [`MixReport`].
pub struct MixRuns {
    mix: Mix,
    rates: Vec<[f64; 5]>,
    replays: Vec<f64>,
    total: KindTally,
}

impl MixRuns {
    pub fn new(mix: Mix) -> MixRuns {
        MixRuns { mix, rates: Vec::new(), replays: Vec::new(), total: KindTally::new() }
    }

    pub fn add_run(&mut self, run: &KindTally, seconds: f64) -> Result<(), String> {
        self.rates.push(run.created.map(|n| n as f64 / seconds));
        self.replays.push(run.replayed as f64 / seconds);
        self.total.add(run)
    }

    /// One line for the progress output: each kind's count and the replays.
    pub fn line(run: &KindTally) -> String {
        let kinds: Vec<String> = Kind::ALL
            .iter()
            .filter(|k| run.created[k.index()] > 0)
            .map(|k| format!("{} {}", k.name(), run.created[k.index()]))
            .collect();
        format!("[{}; replays {}]", kinds.join(", "), run.replayed)
    }

    pub fn report(&self) -> MixReport {
        let all: u64 = self.total.created.iter().sum();
        let kinds = Kind::ALL
            .iter()
            .filter(|k| self.total.created[k.index()] > 0)
            .map(|&k| KindReport {
                kind: k.name(),
                per_s: Spread::of(&self.rates.iter().map(|r| r[k.index()]).collect::<Vec<_>>()),
                share_pct: (self.total.created[k.index()] as f64 * 1000.0 / all.max(1) as f64).round() / 10.0,
                latency_us: Percentiles::of(&self.total.hists[k.index()]),
            })
            .collect();
        MixReport { mix: self.mix, kinds, replays_per_s: Spread::of(&self.replays) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_mix_is_seventy_twenty_ten() {
        let mut rng = Rng::new(7);
        let mut n = [0u32; 5];
        for _ in 0..100_000 {
            n[Weights::CHAT.pick(&mut rng).index()] += 1;
        }
        let pct = n.map(|c| (c as f64 / 1000.0).round() as u32);
        assert_eq!(pct, [70, 0, 20, 10, 0]);
        assert!((0..1000).all(|_| Weights::PLAIN.pick(&mut rng) == Kind::Message));
        assert_eq!(Weights::FILL.0.iter().sum::<u32>(), 100);
    }

    #[test]
    fn a_write_with_a_target_is_a_message_until_one_is_known() {
        let recent = Mutex::new(Recent::new());
        let mut rng = Rng::new(1);
        for _ in 0..100 {
            let w = next_write(&Weights([0, 0, 50, 50, 0]), &mut rng, &recent, b"m", "t");
            assert_eq!((w.kind, w.body.as_slice()), (Kind::Message, &b"m"[..]));
        }
        recent.lock().unwrap().push("0190f0f0-0000-7000-8000-000000000000".into());
        let w = next_write(&Weights([0, 0, 100, 0, 0]), &mut rng, &recent, b"m", "t");
        let v: serde_json::Value = serde_json::from_slice(&w.body).unwrap();
        assert_eq!(
            (w.kind, v["type"].as_str(), v["target_id"].as_str()),
            (Kind::Reaction, Some("reaction_add"), Some("0190f0f0-0000-7000-8000-000000000000"))
        );
        assert!(EMOJI.contains(&v["text"].as_str().unwrap()));
        let w = next_write(&Weights([0, 0, 0, 0, 100]), &mut rng, &recent, b"m", "t");
        assert_eq!(w.kind, Kind::Delete);
        // The deleted message left the ring: nothing targets it again.
        assert_eq!(next_write(&Weights([0, 0, 0, 100, 0]), &mut rng, &recent, b"m", "t").kind, Kind::Message);
    }

    #[test]
    fn the_ring_keeps_the_latest_ids() {
        let mut r = Recent::new();
        for i in 0..(RECENT + 5) {
            r.push(i.to_string());
        }
        assert_eq!(r.ids.len(), RECENT);
        assert_eq!(r.ids.front().map(String::as_str), Some("5"));
    }

    #[test]
    fn reactions_pile_on_so_some_repeat() {
        let recent = Mutex::new(Recent::new());
        let mut rng = Rng::new(3);
        let (mut keys, mut reactions, mut repeats) = (std::collections::HashSet::new(), 0, 0);
        for i in 0..100_000u32 {
            let w = next_write(&Weights::CHAT, &mut rng, &recent, b"m", "t");
            match w.kind {
                Kind::Message => recent.lock().unwrap().push(i.to_string()),
                Kind::Reaction => {
                    let v: serde_json::Value = serde_json::from_slice(&w.body).unwrap();
                    reactions += 1;
                    if !keys.insert((v["target_id"].to_string(), v["sender"].to_string(), v["text"].to_string())) {
                        repeats += 1;
                    }
                }
                _ => {}
            }
        }
        let pct = repeats as f64 * 100.0 / reactions as f64;
        assert!((4.0..12.0).contains(&pct), "{pct:.1} % of the reactions repeat");
    }

    #[test]
    fn answers_count_as_created_replayed_or_refused() {
        assert_eq!(outcome(Kind::Message, 201), Outcome::Created);
        assert_eq!(outcome(Kind::Reaction, 200), Outcome::Replayed);
        assert_eq!(outcome(Kind::Message, 200), Outcome::Refused);
        assert_eq!(outcome(Kind::Edit, 409), Outcome::Refused);
        assert_eq!(id_of(br#"{"id":"abc","seq":3}"#).as_deref(), Some("abc"));
    }
}
