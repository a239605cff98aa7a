//! One client's following of one conversation: the last seq it was given, and
//! whether it is still catching up from storage (live batches then wait in a
//! buffer). See the module above for the seam this guards.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use converger_storage::{Activity, Id, Scope, Store, StoreResult};

use super::{LocalEvent, SharedBatch};
use crate::engine::disconnect::Disconnect;

/// Activities read from storage per step of a catch-up.
const PAGE: u32 = 1000;

/// Live activities a catching-up subscription holds at most. Past it the
/// buffer is dropped and the subscription reads storage again (everything
/// dropped was committed before it was offered, so storage has it): memory
/// stays bounded however long a backlog takes to deliver.
pub const MAX_BUFFERED: usize = 10_000;

/// Ephemeral events (typing, presence diffs) a catching-up subscription holds
/// for after its backlog; past it the newest are dropped (they are not
/// stored and promise no more than at-most-once).
pub const MAX_BUFFERED_EVENTS: usize = 64;

/// Where a subscription's activities go (a socket's send queue, a test).
pub trait Sink {
    /// `batch.activities()[range]`: one conversation's activities, in seq
    /// order, each after the last one given. `false` = the sink can take no
    /// more (its queue overflowed): the subscription ends.
    fn deliver(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool;

    /// An ephemeral event (typing, presence diff). `false` ends the subscription.
    fn event(&self, event: &Rc<LocalEvent>) -> bool;

    /// Ready when the sink has room for another backlog page (its send queue
    /// has drained enough), or is closed. A catch-up waits on it before each
    /// read, so a backlog larger than the send queue is paced by the client
    /// instead of overflowing it.
    fn poll_room(&self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }

    /// The sender the client acts as (a client token's), which a disconnect
    /// of one sender matches; `None` for a client that acts for the tenant
    /// (an API key) or watches without being seen.
    fn client(&self) -> Option<&str> {
        None
    }

    /// The server ended this subscription ([`crate::engine::disconnect`]):
    /// it is closed already (nothing more reaches the sink); tell the client
    /// why and let its session forget the subscription.
    fn disconnected(&self, _disconnect: &Disconnect) {}
}

pub struct Subscription {
    pub conversation: Id,
    scope: Scope,
    sink: Rc<dyn Sink>,
    last_seq: Cell<i64>,
    catching_up: Cell<bool>,
    /// Live activities that arrived during a catch-up, in commit order
    /// (at most [`MAX_BUFFERED`]).
    buffered: RefCell<Vec<Activity>>,
    /// The buffer overflowed and was dropped: read storage again.
    overflowed: Cell<bool>,
    /// Ephemeral events that arrived during a catch-up (at most [`MAX_BUFFERED_EVENTS`]).
    events: RefCell<Vec<Rc<LocalEvent>>>,
    closed: Cell<bool>,
}

impl Subscription {
    pub(super) fn new(conversation: Id, scope: Scope, after_seq: i64, sink: Rc<dyn Sink>) -> Subscription {
        Subscription {
            conversation,
            scope,
            sink,
            last_seq: Cell::new(after_seq),
            catching_up: Cell::new(true),
            buffered: RefCell::new(Vec::new()),
            overflowed: Cell::new(false),
            events: RefCell::new(Vec::new()),
            closed: Cell::new(false),
        }
    }

    /// The seq of the last activity given to the sink.
    pub fn last_seq(&self) -> i64 {
        self.last_seq.get()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// The sender the client acts as ([`Sink::client`]).
    pub(crate) fn client(&self) -> Option<&str> {
        self.sink.client()
    }

    /// Tells the sink the server ended the subscription ([`Sink::disconnected`]).
    pub(crate) fn disconnected(&self, disconnect: &Disconnect) {
        self.sink.disconnected(disconnect);
    }

    pub(super) fn close(&self) {
        self.closed.set(true);
        self.buffered.borrow_mut().clear();
        self.events.borrow_mut().clear();
    }

    /// A live batch's run for this conversation. `false`: closed or full (end
    /// it), or a gap was seen (it is now catching up and must be driven).
    pub(super) fn offer(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool {
        if self.closed.get() {
            return false;
        }
        let acts = &batch.activities()[range.clone()];
        if self.catching_up.get() {
            self.buffer(acts);
            return true;
        }
        let last = self.last_seq.get();
        let skip = acts.iter().take_while(|a| a.seq <= last).count();
        let Some(first) = acts.get(skip) else { return true };
        if first.seq != last + 1 {
            // A forward was lost on the way: fill from storage, then go on.
            self.catching_up.set(true);
            self.buffer(&acts[skip..]);
            return false;
        }
        self.give(batch, range.start + skip..range.end)
    }

    /// Switches a live subscription to catching up (the caller then drives
    /// the catch-up); false when it is closed or already catching up.
    pub(super) fn start_heal(&self) -> bool {
        if self.closed.get() || self.catching_up.get() {
            return false;
        }
        self.catching_up.set(true);
        true
    }

    /// Holds live activities during a catch-up, within [`MAX_BUFFERED`].
    fn buffer(&self, acts: &[Activity]) {
        let mut buffered = self.buffered.borrow_mut();
        if buffered.len() + acts.len() > MAX_BUFFERED {
            buffered.clear();
            self.overflowed.set(true);
        } else {
            buffered.extend_from_slice(acts);
        }
    }

    /// An ephemeral event; while catching up it waits (a few at most) and
    /// follows the backlog: it has no seq to order by, and a typing signal
    /// sent just after a join should still reach the joiner.
    pub(super) fn offer_event(&self, event: &Rc<LocalEvent>) -> bool {
        if self.closed.get() {
            return false;
        }
        if self.catching_up.get() {
            let mut events = self.events.borrow_mut();
            if events.len() < MAX_BUFFERED_EVENTS {
                events.push(event.clone());
            }
            return true;
        }
        if !self.sink.event(event) {
            self.close();
            return false;
        }
        true
    }

    /// Delivers from storage everything after the last seq, then what was
    /// buffered meanwhile; returns once live (or closed).
    pub(super) async fn catch_up(&self, store: &dyn Store) -> StoreResult<()> {
        self.catching_up.set(true);
        loop {
            loop {
                poll_fn(|cx| self.sink.poll_room(cx)).await;
                if self.closed.get() {
                    return Ok(());
                }
                // Shared by every subscriber of the batch: no reader, so no reaction shows as `me`.
                let page = store.read_range(self.scope, self.conversation, self.last_seq.get(), PAGE, None).await?;
                if self.closed.get() {
                    return Ok(());
                }
                let full = page.len() as u32 >= PAGE;
                if !page.is_empty() {
                    let n = page.len();
                    if !self.give(&Rc::new(SharedBatch::new(Arc::from(page))), 0..n) {
                        return Ok(());
                    }
                }
                if !full {
                    break;
                }
            }
            if self.overflowed.replace(false) {
                // Live activities were dropped since a read began: read on from storage.
                self.buffered.borrow_mut().clear();
                continue;
            }
            // No await from here to the end of the drain: nothing can arrive in between.
            let buffered = std::mem::take(&mut *self.buffered.borrow_mut());
            let last = self.last_seq.get();
            let mut fresh: Vec<Activity> = buffered.into_iter().filter(|a| a.seq > last).collect();
            // The run that continues the watermark without a hole.
            let run = fresh.iter().enumerate().take_while(|(i, a)| a.seq == last + 1 + *i as i64).count();
            let rest = fresh.split_off(run);
            if !fresh.is_empty() && !self.give(&Rc::new(SharedBatch::new(Arc::from(fresh))), 0..run) {
                return Ok(());
            }
            if rest.is_empty() {
                self.catching_up.set(false);
                let events = std::mem::take(&mut *self.events.borrow_mut());
                for event in events {
                    if !self.sink.event(&event) {
                        self.close();
                        break;
                    }
                }
                return Ok(());
            }
            // A hole before `rest` (committed after our read, or a lost forward): read again.
            *self.buffered.borrow_mut() = rest;
        }
    }

    /// Hands a contiguous run to the sink and moves the watermark.
    fn give(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool {
        let Some(last) = batch.activities()[range.clone()].last().map(|a| a.seq) else { return true };
        if !self.sink.deliver(batch, range) {
            self.close();
            return false;
        }
        self.last_seq.set(last);
        true
    }
}
