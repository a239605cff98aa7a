//! What the writer thread remembers of conversations: owner, open or closed, and
//! the last seq. The writer is the only thread that changes these, so a hit here
//! saves the hot write a query per conversation per batch.
//!
//! Kept honest by three rules: a batch publishes its states only when it
//! succeeds; closing a conversation forgets it; a failed commit or savepoint
//! forgets everything (the next batch reloads from the database).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::Id;

/// Entries kept before the map is emptied and refilled on demand.
const CAPACITY: usize = 100_000;

#[derive(Clone, Copy, Debug)]
pub(crate) struct ConversationState {
    pub tenant_id: Id,
    pub open: bool,
    pub last_seq: i64,
}

thread_local! {
    static KNOWN: RefCell<HashMap<Id, ConversationState>> = RefCell::new(HashMap::new());
}

pub(crate) fn get(id: Id) -> Option<ConversationState> {
    KNOWN.with(|k| k.borrow().get(&id).copied())
}

pub(crate) fn publish(states: impl IntoIterator<Item = (Id, ConversationState)>) {
    KNOWN.with(|k| {
        let mut k = k.borrow_mut();
        for (id, state) in states {
            if k.len() >= CAPACITY && !k.contains_key(&id) {
                k.clear();
            }
            k.insert(id, state);
        }
    })
}

pub(crate) fn forget(id: Id) {
    KNOWN.with(|k| k.borrow_mut().remove(&id));
}

pub(crate) fn forget_all() {
    KNOWN.with(|k| k.borrow_mut().clear());
}
