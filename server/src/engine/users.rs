//! User presence across a tenant: a user (a sender id of a tenant) is online
//! while any of their client sockets is connected, whatever conversation it
//! follows, whichever shard — or node — serves it. The conversations they
//! are a member of hear `user_online` when the first socket connects and
//! `user_offline` when the last one has been gone for [`DEBOUNCE`]; a
//! reconnect within that time says nothing (a page reload, a network blip),
//! on the same node or another. Going offline records the user's
//! `last_seen` (shown on their members).
//!
//! One [`Users`] table per node, shared by the shards (a mutex taken at
//! connect, disconnect and bus messages only) and, in a cluster, by the bus:
//! each node tells the others when a user's first socket on it connects and
//! when its last one goes (`converger.users`), so a node announces
//! `user_offline` only when no other node has the user either. A session
//! holds an [`Online`] guard for as long as it lives. The announcements are
//! made by the shard whose socket made the transition, in a task of their
//! own, so a session never waits for the store.
//!
//! Bounded: an entry exists while the user has a socket here or on another
//! node, or for [`DEBOUNCE`] after the last one went.
//!
//! When a node dies, its users leave the others' tables; those now online
//! nowhere are announced offline by one node (the live node whose origin
//! sorts first), so they are announced once.
//!
//! When a user's last sockets on several nodes go within a debounce of one
//! another, each of those nodes finds the user gone everywhere when its own
//! check comes: the one whose origin sorts first announces, the others
//! stay silent (they know when each other node's last socket went, and
//! whose). The margin [`SAME_DEPARTURE`] leaves room for the bus's latency:
//! near its edge a departure may be announced twice, never not at all.

use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use converger_storage::{Id, PresenceChange, Timestamp};
use serde_json::json;

use super::{Engine, Ephemeral, Signal};

/// How long a user's last socket may be gone before they are announced offline.
pub const DEBOUNCE: Duration = Duration::from_secs(5);
/// Departures from two nodes this close are one departure: announced by
/// the node whose origin sorts first. Shorter than [`DEBOUNCE`] by the
/// bus's latency at worst, so that the node that defers to another always
/// defers to one that announces.
pub const SAME_DEPARTURE: Duration = Duration::from_secs(4);
/// The conversations one announcement reaches, newest membership first.
pub const MAX_ANNOUNCED_CONVERSATIONS: u32 = 1000;

/// (tenant, sender).
pub type UserKey = (Id, String);

#[derive(Default)]
struct Entry {
    /// This node's sockets of the user.
    sockets: u32,
    /// Bumped whenever this node's sockets go from some to none or back; a
    /// pending offline check that finds another value knows the user came
    /// back (or left again) since.
    generation: u64,
    /// The last socket here went less than [`DEBOUNCE`] ago (an offline
    /// check is pending).
    leaving: bool,
    /// Other nodes (origins) where the user has sockets.
    remote: BTreeSet<String>,
    /// When the user's last socket on another node went (latest).
    remote_gone: Option<Instant>,
    /// When the user's last socket on each other node went, as heard.
    remote_gone_by: Vec<(String, Instant)>,
    /// When this node's last socket of the user went.
    gone_here: Option<Instant>,
}

impl Entry {
    fn idle(&self, now: Instant) -> bool {
        self.sockets == 0
            && !self.leaving
            && self.remote.is_empty()
            && self.remote_gone.is_none_or(|t| now.duration_since(t) >= DEBOUNCE)
    }
}

/// What a socket connecting changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Connected {
    /// The user's first socket on this node: tell the other nodes.
    pub first_here: bool,
    /// Online nowhere before, nor leaving within the debounce: announce it.
    pub announce: bool,
}

/// The users with sockets on this node (and, in a cluster, on the others).
#[derive(Default)]
pub struct Users {
    table: Mutex<HashMap<UserKey, Entry>>,
    /// This node's origin, in a cluster (see [`SAME_DEPARTURE`]).
    origin: std::sync::OnceLock<String>,
}

impl Users {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<UserKey, Entry>) -> T) -> T {
        f(&mut self.table.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// This node's origin in the cluster.
    pub fn set_origin(&self, origin: &str) {
        let _ = self.origin.set(origin.to_owned());
    }

    /// Counts a socket in.
    pub fn connect(&self, key: &UserKey, now: Instant) -> Connected {
        self.with(|t| {
            let e = t.entry(key.clone()).or_default();
            e.sockets += 1;
            if e.sockets > 1 {
                return Connected { first_here: false, announce: false };
            }
            let was_leaving = std::mem::replace(&mut e.leaving, false);
            e.generation = e.generation.wrapping_add(1);
            let recently_elsewhere = e.remote_gone.is_some_and(|t| now.duration_since(t) < DEBOUNCE);
            Connected { first_here: true, announce: !was_leaving && e.remote.is_empty() && !recently_elsewhere }
        })
    }

    /// Counts a socket out; when it was the user's last here, the
    /// generation the offline check must find after the debounce.
    pub fn disconnect(&self, key: &UserKey) -> Option<u64> {
        self.with(|t| {
            let e = t.get_mut(key)?;
            e.sockets = e.sockets.saturating_sub(1);
            (e.sockets == 0).then(|| {
                e.generation = e.generation.wrapping_add(1);
                e.leaving = true;
                e.gone_here = Some(Instant::now());
                e.generation
            })
        })
    }

    /// After the debounce: true when the user is still gone from this node
    /// at `generation` and has no socket elsewhere (announce them offline).
    pub fn settle(&self, key: &UserKey, generation: u64, now: Instant) -> bool {
        self.with(|t| {
            let Some(e) = t.get_mut(key) else { return false };
            if e.sockets > 0 || e.generation != generation {
                return false;
            }
            e.leaving = false;
            let offline = e.remote.is_empty() && !self.defers(e);
            if e.idle(now) {
                t.remove(key);
            }
            offline
        })
    }

    /// Another node says the user's first socket there connected (`online`)
    /// or its last one went.
    pub fn remote(&self, origin: &str, key: &UserKey, online: bool, now: Instant) {
        self.with(|t| {
            if online {
                let e = t.entry(key.clone()).or_default();
                e.remote.insert(origin.to_owned());
                e.remote_gone_by.retain(|(o, _)| o != origin);
            } else if let Some(e) = t.get_mut(key) {
                if e.remote.remove(origin) {
                    e.remote_gone = Some(now);
                    e.remote_gone_by.retain(|(o, _)| o != origin);
                    e.remote_gone_by.push((origin.to_owned(), now));
                }
            }
        })
    }

    /// Whether another node whose origin sorts first lost its last socket of
    /// the user within [`SAME_DEPARTURE`] of this node's: that node announces.
    fn defers(&self, e: &Entry) -> bool {
        let (Some(me), Some(here)) = (self.origin.get(), e.gone_here) else { return false };
        let close = |t: Instant| t.max(here).duration_since(t.min(here)) < SAME_DEPARTURE;
        e.remote_gone_by.iter().any(|(o, t)| o.as_str() < me.as_str() && close(*t))
    }

    /// A node died (or restarted): its users leave. Those now online
    /// nowhere, and not within a debounce here, are returned.
    pub fn node_gone(&self, origin: &str) -> Vec<UserKey> {
        self.with(|t| {
            let mut gone = Vec::new();
            t.retain(|key, e| {
                if !e.remote.remove(origin) {
                    return true;
                }
                if e.sockets == 0 && !e.leaving && e.remote.is_empty() {
                    gone.push(key.clone());
                    return false;
                }
                true
            });
            gone
        })
    }

    /// The users with a socket on this node (told again to the other nodes
    /// after a reconnect to NATS, or when a node joins).
    pub fn here(&self) -> Vec<UserKey> {
        self.with(|t| t.iter().filter(|(_, e)| e.sockets > 0).map(|(k, _)| k.clone()).collect())
    }

    /// Forgets what another node said before this one lost NATS (it says it again).
    pub fn forget_remote(&self) {
        self.with(|t| {
            for e in t.values_mut() {
                e.remote.clear();
            }
        })
    }

    /// Drops the entries kept only for a debounce that has passed.
    pub fn sweep(&self, now: Instant) {
        self.with(|t| t.retain(|_, e| !e.idle(now)))
    }

    /// Users online (or within the debounce) as this node knows them.
    pub fn len(&self) -> usize {
        self.with(|t| t.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A socket's share of its user's presence: dropping it counts the socket out.
pub struct Online {
    engine: Rc<Engine>,
    key: UserKey,
}

impl Drop for Online {
    fn drop(&mut self) {
        let Some(generation) = self.engine.users.disconnect(&self.key) else { return };
        self.engine.tell_nodes_user(&self.key, false);
        let (engine, key) = (self.engine.clone(), self.key.clone());
        let gone_at = Timestamp::now();
        // A session ends inside its shard's runtime; should one be dropped
        // after the runtime stopped (there is none to spawn on), the user is
        // simply not announced offline by this node.
        let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            monoio::spawn(async move {
                monoio::time::sleep(DEBOUNCE).await;
                if engine.users.settle(&key, generation, Instant::now()) {
                    engine.announce_user(key, Some(gone_at)).await;
                }
            })
        }));
        if spawned.is_err() {
            tracing::debug!("user offline not announced: the shard has stopped");
        }
    }
}

impl Engine {
    /// Counts a client's socket in for `sender` of `tenant` until the guard drops.
    pub fn user_connected(self: &Rc<Self>, tenant: Id, sender: &str) -> Online {
        let key = (tenant, sender.to_string());
        let connected = self.users.connect(&key, Instant::now());
        if connected.first_here {
            self.tell_nodes_user(&key, true);
        }
        if connected.announce {
            let (engine, key) = (self.clone(), key.clone());
            monoio::spawn(async move { engine.announce_user(key, None).await });
        }
        Online { engine: self.clone(), key }
    }

    /// Tells the user's conversations they came online (`gone_at` None) or
    /// went offline at `gone_at` (recorded as their last seen first).
    pub(crate) async fn announce_user(self: &Rc<Self>, (tenant, sender): UserKey, gone_at: Option<Timestamp>) {
        // The one write of the transition (this node decided it, and only
        // this one): the last seen of going offline, and the tenant's
        // `user.online` / `user.offline` events when it has endpoints for
        // them (cached, so a tenant without any costs no statement online).
        let change =
            PresenceChange { online: gone_at.is_none(), at: gone_at.unwrap_or_else(Timestamp::now), announce: false };
        let announce = super::event_types::wants(&*self.store, tenant, change.event_type()).await;
        if change.online && !announce {
            // Nothing to record.
        } else if let Err(e) = self.store.record_presence(tenant, &sender, PresenceChange { announce, ..change }).await
        {
            tracing::warn!(%tenant, error = %e, "user presence not recorded (last seen, events)");
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
            let event = Ephemeral::Signal { signal, data: data.clone() };
            if self.send_ephemeral(conversation, event).is_err() {
                tracing::debug!(%conversation, "user presence signal dropped: owner ring full");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> UserKey {
        (Id::nil(), "alice".to_string())
    }

    #[test]
    fn online_once_for_many_sockets_and_a_quick_return_says_nothing() {
        let (users, now) = (Users::default(), Instant::now());
        assert_eq!(users.connect(&key(), now), Connected { first_here: true, announce: true });
        assert_eq!(users.connect(&key(), now), Connected { first_here: false, announce: false });
        assert_eq!(users.disconnect(&key()), None, "one socket left");
        let gone = users.disconnect(&key()).expect("last socket gone");
        assert_eq!(users.connect(&key(), now), Connected { first_here: true, announce: false }, "back in time");
        assert!(!users.settle(&key(), gone, now), "the pending check finds the user back");
        let gone = users.disconnect(&key()).expect("gone again");
        assert!(users.settle(&key(), gone, now), "still gone after the debounce: offline");
        assert!(users.is_empty(), "forgotten once offline");
        assert!(users.connect(&key(), now).announce, "a later socket: online again");
    }

    #[test]
    fn another_node_keeps_the_user_online_and_a_move_between_nodes_says_nothing() {
        let (users, now) = (Users::default(), Instant::now());
        users.remote("b.1", &key(), true, now);
        assert!(!users.connect(&key(), now).announce, "online on node b already");
        let gone = users.disconnect(&key()).expect("last here");
        assert!(!users.settle(&key(), gone, now), "still on node b: not offline");
        users.remote("b.1", &key(), false, now);
        // Back here within the debounce of leaving b: nothing to announce.
        assert!(!users.connect(&key(), now + Duration::from_secs(1)).announce);
        let gone = users.disconnect(&key()).expect("last here");
        assert!(users.settle(&key(), gone, now + Duration::from_secs(7)), "gone everywhere");
        users.sweep(now + Duration::from_secs(20));
        assert!(users.is_empty());
    }

    #[test]
    fn of_two_nodes_losing_the_user_together_the_first_origin_announces() {
        let now = Instant::now();
        let (a, b) = (Users::default(), Users::default());
        a.set_origin("a.1");
        b.set_origin("b.1");
        for (users, other) in [(&a, "b.1"), (&b, "a.1")] {
            users.connect(&key(), now);
            users.remote(other, &key(), true, now);
        }
        let gone_a = a.disconnect(&key()).expect("last on a");
        b.remote("a.1", &key(), false, Instant::now());
        let gone_b = b.disconnect(&key()).expect("last on b");
        a.remote("b.1", &key(), false, Instant::now());
        let later = Instant::now() + DEBOUNCE;
        assert!(a.settle(&key(), gone_a, later), "a sorts first: it announces");
        assert!(!b.settle(&key(), gone_b, later), "b defers to a");
        // Alone, or long after the other node's departure, b announces.
        let c = Users::default();
        c.set_origin("b.1");
        c.connect(&key(), now);
        let gone = c.disconnect(&key()).expect("last");
        assert!(c.settle(&key(), gone, later));
    }

    #[test]
    fn a_dead_nodes_users_leave_and_those_online_nowhere_are_returned() {
        let (users, now) = (Users::default(), Instant::now());
        users.remote("b.1", &key(), true, now);
        let bob = (Id::nil(), "bob".to_string());
        users.remote("b.1", &bob, true, now);
        users.connect(&bob, now);
        assert_eq!(users.node_gone("b.1"), vec![key()], "bob still has a socket here");
        assert_eq!(users.here(), vec![bob]);
    }
}
