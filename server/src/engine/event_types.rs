//! Which lifecycle event types each tenant's endpoints take, remembered by
//! the whole process, so the hot paths that may report an event (a member
//! activity, a user's presence transition) ask storage only when the answer
//! is not known: a tenant without event endpoints costs them no statement.
//!
//! Kept honest like the auth cache: every endpoint change made through this
//! node bumps [`CHANGED`] before it answers (every entry read under an older
//! value is read again), the cluster bus bumps it when another node says an
//! endpoint changed there, and entries expire after [`TTL`] should that
//! notice be lost. Between an endpoint's creation on another node and the
//! notice (milliseconds; [`TTL`] at worst), changes made here do not report
//! to it.
//!
//! Bounded: at most [`MAX_TENANTS`] entries; past that the memory starts over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use converger_storage::{EventType, Id, Store};

/// How long an answer is trusted without asking storage again.
pub const TTL: Duration = Duration::from_secs(2);
/// Tenants remembered at once.
const MAX_TENANTS: usize = 10_000;

/// Bumped by every event endpoint change (here, or told by the cluster bus).
static CHANGED: AtomicU64 = AtomicU64::new(0);

type Entry = (Vec<EventType>, Instant, u64);

static REMEMBERED: Mutex<Option<HashMap<Id, Entry>>> = Mutex::new(None);

/// An event endpoint changed (through this node, or another one per the bus).
pub fn changed_here() {
    CHANGED.fetch_add(1, Ordering::AcqRel);
}

fn with<T>(f: impl FnOnce(&mut HashMap<Id, Entry>) -> T) -> T {
    let mut guard = REMEMBERED.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// Whether `tenant` has an endpoint taking `kind`. Storage failing to answer
/// counts as yes: the write then asks the database itself, which is right
/// either way, instead of silently dropping the event.
pub async fn wants(store: &dyn Store, tenant: Id, kind: EventType) -> bool {
    // Read before the lookup: a change racing it leaves the entry already old.
    let epoch = CHANGED.load(Ordering::Acquire);
    let now = Instant::now();
    let known = with(|m| {
        m.get(&tenant)
            .filter(|(_, at, seen)| *seen == epoch && now.duration_since(*at) < TTL)
            .map(|(types, _, _)| types.contains(&kind))
    });
    if let Some(known) = known {
        return known;
    }
    match store.event_types(tenant).await {
        Ok(types) => {
            let wanted = types.contains(&kind);
            with(|m| {
                if m.len() >= MAX_TENANTS {
                    m.clear();
                }
                m.insert(tenant, (types, Instant::now(), epoch));
            });
            wanted
        }
        Err(e) => {
            tracing::debug!(%tenant, error = %e, "event types unreadable; the write asks storage");
            true
        }
    }
}
