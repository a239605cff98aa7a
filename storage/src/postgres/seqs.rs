//! The last seq of recently written conversations, remembered by this process.
//!
//! PostgreSQL keeps no `last_seq` column (updating one per conversation per batch
//! was a third of the write's cost: a new row version in every index of
//! `conversations`). The truth is `max(seq)` over the `(conversation_id, seq)`
//! unique index. This map lets a batch skip even that lookup for conversations it
//! wrote recently. It can be stale — another node, or a concurrent batch of this
//! one, wrote since — and then the insert hits the unique index, the batch rolls
//! back, forgets the batch's conversations here, and retries with fresh values.
//! Only committed values are stored.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Id;

/// Entries kept before the map is emptied and refilled on demand.
const CAPACITY: usize = 100_000;

/// How long a conversation that lost a race is written pessimistically.
const CONTENDED_FOR: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct SeqCache(Mutex<HashMap<Id, i64>>, Mutex<HashMap<Id, Instant>>);

impl SeqCache {
    /// Marks conversations that lost a race: another writer (another node)
    /// writes them too, so for a while a batch holding any of them locks them
    /// exclusively and reads their last seq fresh, instead of guessing from
    /// this process's memory and rolling back when the guess is stale.
    pub(super) fn mark_contended(&self, ids: &[Id]) {
        if let Ok(mut map) = self.1.lock() {
            let now = Instant::now();
            if map.len() >= CAPACITY {
                map.retain(|_, since| now.duration_since(*since) < CONTENDED_FOR);
            }
            for id in ids {
                map.insert(*id, now);
            }
        }
    }

    /// Whether any of `ids` lost a race within [`CONTENDED_FOR`].
    pub(super) fn any_contended(&self, ids: &[Id]) -> bool {
        let Ok(mut map) = self.1.lock() else { return true };
        if map.is_empty() {
            return false;
        }
        let now = Instant::now();
        let mut any = false;
        for id in ids {
            match map.get(id) {
                Some(since) if now.duration_since(*since) < CONTENDED_FOR => any = true,
                Some(_) => {
                    map.remove(id);
                }
                None => {}
            }
        }
        any
    }

    /// The remembered last seq of each id, `None` where unknown.
    pub(super) fn get_many(&self, ids: &[Id]) -> Vec<Option<i64>> {
        match self.0.lock() {
            Ok(map) => ids.iter().map(|id| map.get(id).copied()).collect(),
            Err(_) => vec![None; ids.len()],
        }
    }

    pub(super) fn remember(&self, committed: impl IntoIterator<Item = (Id, i64)>) {
        if let Ok(mut map) = self.0.lock() {
            for (id, seq) in committed {
                if map.len() >= CAPACITY && !map.contains_key(&id) {
                    map.clear();
                }
                // Never move backwards: a concurrent batch may have committed a later seq.
                let entry = map.entry(id).or_insert(seq);
                *entry = (*entry).max(seq);
            }
        }
    }

    pub(super) fn forget(&self, ids: &[Id]) {
        if let Ok(mut map) = self.0.lock() {
            for id in ids {
                map.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::new_id;

    #[test]
    fn remembers_the_highest_and_forgets() {
        let c = SeqCache::default();
        let (a, b) = (new_id(), new_id());
        c.remember([(a, 5), (a, 3), (b, 1)]);
        assert_eq!(c.get_many(&[a, b, new_id()]), vec![Some(5), Some(1), None]);
        c.forget(&[a]);
        assert_eq!(c.get_many(&[a]), vec![None]);
    }

    #[test]
    fn a_conversation_that_lost_a_race_stays_contended_for_a_while() {
        let c = SeqCache::default();
        let (a, b) = (new_id(), new_id());
        assert!(!c.any_contended(&[a, b]));
        c.mark_contended(&[a]);
        assert!(c.any_contended(&[b, a]) && !c.any_contended(&[b]));
    }
}
