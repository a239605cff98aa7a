//! User presence across a tenant: a user (a sender id of a tenant) is online
//! while any of their sockets is connected, whatever conversation it follows
//! and whichever shard serves it. The conversations they are a member of
//! hear `user_online` when the first socket connects and `user_offline`
//! when the last one has been gone for [`DEBOUNCE`]; a reconnect within that
//! time says nothing (a page reload, a network blip). Going offline records
//! the user's `last_seen` (shown on their members).
//!
//! One table per process ([`Users`], shared by every shard behind a mutex
//! taken only at connect and disconnect); a session holds an [`Online`]
//! guard for as long as it lives. The announcements are sent from the shard
//! whose socket made the transition, in a task of their own, so a session
//! never waits for the store. Bounded: an entry exists only while the user
//! has a socket or is within the debounce after the last one.
//!
//! In a cluster each node keeps its own table: a user with sockets on two
//! nodes is announced offline when the last socket of either node has gone
//! (docs/operations.md, "Running a cluster", says so).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use converger_storage::{Id, Timestamp};
use serde_json::json;

use super::Hub;
use crate::engine::Signal;

/// How long a user's last socket may be gone before they are announced offline.
pub const DEBOUNCE: Duration = Duration::from_secs(5);
/// The conversations one announcement reaches, newest membership first.
pub const MAX_ANNOUNCED_CONVERSATIONS: u32 = 1000;

#[derive(Default)]
struct Entry {
    sockets: u32,
    /// Bumped when the last socket goes; a pending offline check that finds
    /// another value knows the user came back (or left again) since.
    generation: u64,
}

/// Every user with a socket on this node (or within the debounce after the last).
#[derive(Default)]
pub struct Users {
    table: Mutex<HashMap<(Id, String), Entry>>,
}

impl Users {
    /// Counts a socket in; true when the user was not online (nor within the debounce).
    fn connect(&self, key: &(Id, String)) -> bool {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let entry = table.entry(key.clone()).or_default();
        entry.sockets += 1;
        let first = entry.sockets == 1 && entry.generation == 0;
        // Back within the debounce: the pending offline check will find a new generation.
        entry.generation = entry.generation.wrapping_add(u64::from(!first));
        first
    }

    /// Counts a socket out; the generation to check after the debounce when it was the last.
    fn disconnect(&self, key: &(Id, String)) -> Option<u64> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let entry = table.get_mut(key)?;
        entry.sockets = entry.sockets.saturating_sub(1);
        (entry.sockets == 0).then(|| {
            entry.generation = entry.generation.wrapping_add(1);
            entry.generation
        })
    }

    /// Whether the user is still gone at `generation`: then it is forgotten.
    fn settle(&self, key: &(Id, String), generation: u64) -> bool {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get(key) {
            Some(e) if e.sockets == 0 && e.generation == generation => {
                table.remove(key);
                true
            }
            _ => false,
        }
    }

    /// Users online (or within the debounce) on this node.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A socket's share of its user's presence: dropping it counts the socket out.
pub struct Online {
    hub: Rc<Hub>,
    key: (Id, String),
}

impl Drop for Online {
    fn drop(&mut self) {
        let Some(generation) = self.hub.users.disconnect(&self.key) else { return };
        let (hub, key) = (self.hub.clone(), self.key.clone());
        let gone_at = Timestamp::now();
        // A session ends inside its shard's runtime; should one be dropped
        // after the runtime stopped (there is none to spawn on), the user is
        // simply not announced offline.
        let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            monoio::spawn(async move {
                monoio::time::sleep(DEBOUNCE).await;
                if hub.users.settle(&key, generation) {
                    hub.announce_user(key, Some(gone_at)).await;
                }
            })
        }));
        if spawned.is_err() {
            tracing::debug!("user offline not announced: the shard has stopped");
        }
    }
}

impl Hub {
    /// Counts a client's socket in for `sender` of `tenant` until the guard drops.
    pub fn user_connected(self: &Rc<Self>, tenant: Id, sender: &str) -> Online {
        let key = (tenant, sender.to_string());
        if self.users.connect(&key) {
            let (hub, key) = (self.clone(), key.clone());
            monoio::spawn(async move { hub.announce_user(key, None).await });
        }
        Online { hub: self.clone(), key }
    }

    /// Tells the user's conversations they came online (`gone_at` None) or
    /// went offline at `gone_at` (recorded as their last seen first).
    async fn announce_user(&self, (tenant, sender): (Id, String), gone_at: Option<Timestamp>) {
        if let Some(at) = gone_at {
            if let Err(e) = self.store.set_last_seen(tenant, &sender, at).await {
                tracing::warn!(%tenant, error = %e, "last seen not recorded");
            }
        }
        let conversations = match self.store.member_conversations(tenant, &sender, MAX_ANNOUNCED_CONVERSATIONS).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "user presence not announced: its conversations are unknown");
                return;
            }
        };
        let (signal, data) = match gone_at {
            None => (Signal::UserOnline, json!({"sender": sender})),
            Some(at) => (Signal::UserOffline, json!({"sender": sender, "last_seen": at})),
        };
        for conversation in conversations {
            // Presence is best effort: a full ring costs this one signal.
            if self.publisher.signal(conversation, signal, data.clone()).is_err() {
                tracing::debug!(%conversation, "user presence signal dropped: owner ring full");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_once_for_many_sockets_and_a_quick_return_says_nothing() {
        let users = Users::default();
        let key = (Id::nil(), "alice".to_string());
        assert!(users.connect(&key), "first socket: online");
        assert!(!users.connect(&key), "second socket: nothing");
        assert_eq!(users.disconnect(&key), None, "one socket left");
        let gone = users.disconnect(&key).expect("last socket gone");
        assert!(!users.connect(&key), "back within the debounce: nothing");
        assert!(!users.settle(&key, gone), "the pending check finds the user back");
        let gone = users.disconnect(&key).expect("gone again");
        assert!(users.settle(&key, gone), "still gone after the debounce: offline");
        assert!(users.is_empty(), "forgotten once offline");
        assert!(users.connect(&key), "a later socket: online again");
    }
}
