//! The resume seam and the live path on one shard with a real (embedded)
//! store: backlog then live with no gap and no duplicate while writes go on, a
//! lost forward filled from storage, unsubscribe, and a full sink.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use converger_storage::embedded::EmbeddedStore;
use converger_storage::{Id, Scope, Store};
use futures_channel::oneshot;

use super::*;
use crate::engine::mesh;
use crate::engine::presence::{Meta, PresenceState};
use crate::engine::publish::PublishRequest;
use crate::metrics::ShardMetrics;
use crate::rt::latch::Latch;
use crate::testing::{conversation_in, message, runtime};

/// Collects the seqs it is given; refuses after `room` activities.
struct Collect {
    seqs: RefCell<Vec<i64>>,
    events: RefCell<Vec<Ephemeral>>,
    room: Cell<usize>,
}

impl Collect {
    fn new(room: usize) -> Rc<Collect> {
        Rc::new(Collect { seqs: RefCell::new(Vec::new()), events: RefCell::new(Vec::new()), room: Cell::new(room) })
    }

    fn seqs(&self) -> Vec<i64> {
        self.seqs.borrow().clone()
    }
}

impl Sink for Collect {
    fn deliver(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool {
        let acts = &batch.activities()[range];
        if acts.len() > self.room.get() {
            return false;
        }
        self.room.set(self.room.get() - acts.len());
        self.seqs.borrow_mut().extend(acts.iter().map(|a| a.seq));
        true
    }

    fn event(&self, event: &Rc<LocalEvent>) -> bool {
        self.events.borrow_mut().push((*event.event).clone());
        true
    }
}

struct World {
    store: Arc<dyn Store>,
    engine: Rc<Engine>,
    tenant: Id,
    conversation: Id,
}

impl World {
    async fn new(store: Arc<dyn Store>) -> World {
        let (tenant, conversation) = conversation_in(&*store).await;
        let engine = Engine::single(store.clone(), Arc::new(ShardMetrics::default()));
        monoio::spawn(engine.clone().run_owner());
        World { store, engine, tenant, conversation }
    }

    async fn publish(&self, n: usize) {
        let answers: Vec<_> = (0..n)
            .map(|_| {
                let (reply, answer) = oneshot::channel();
                self.engine.owner.enqueue(PublishRequest {
                    activity: message(self.tenant, self.conversation),
                    reply,
                    hook: None,
                    trace: None,
                });
                answer
            })
            .collect();
        for a in answers {
            a.await.expect("answered").expect("stored");
        }
    }

    async fn subscribe(&self, after: i64, sink: Rc<Collect>) -> Rc<Subscription> {
        self.engine.subscribe(self.conversation, Scope::Tenant(self.tenant), after, sink).await.expect("subscribe")
    }
}

fn embedded() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).expect("open"));
    (dir, store)
}

/// Waits (bounded) until `sink` has seen `seq`.
async fn until_seen(sink: &Collect, seq: i64) {
    for _ in 0..500 {
        if sink.seqs().last() == Some(&seq) {
            return;
        }
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never saw seq {seq}; got {:?}", sink.seqs());
}

#[test]
fn resume_then_live_has_no_gap_and_no_duplicate_while_writes_go_on() {
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = Rc::new(World::new(store).await);
        w.publish(50).await;
        let sink = Collect::new(usize::MAX);
        // Writes keep landing while the subscriber reads its backlog.
        let writer = {
            let w = w.clone();
            monoio::spawn(async move {
                for _ in 0..10 {
                    w.publish(10).await;
                }
            })
        };
        let sub = w.subscribe(10, sink.clone()).await;
        writer.await;
        until_seen(&sink, 150).await;
        assert_eq!(sink.seqs(), (11..=150).collect::<Vec<_>>());
        assert_eq!(sub.last_seq(), 150);
    });
}

#[test]
fn a_lost_forward_is_filled_from_storage() {
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = World::new(store).await;
        let sink = Collect::new(usize::MAX);
        let _sub = w.subscribe(0, sink.clone()).await;
        w.publish(3).await;
        // Committed without passing the owner: never forwarded, as if a ring had been full.
        w.store.write_batch(vec![message(w.tenant, w.conversation)]).await.expect("write").remove(0).expect("stored");
        w.publish(2).await;
        until_seen(&sink, 6).await;
        assert_eq!(sink.seqs(), vec![1, 2, 3, 4, 5, 6]);
    });
}

#[test]
fn unsubscribe_stops_delivery_and_the_owner_forwarding() {
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = World::new(store).await;
        let sink = Collect::new(usize::MAX);
        let sub = w.subscribe(0, sink.clone()).await;
        assert_eq!(w.engine.owner.subscriber_shards(w.conversation), vec![0]);
        w.publish(2).await;
        until_seen(&sink, 2).await;
        w.engine.unsubscribe(&sub);
        assert!(w.engine.owner.subscriber_shards(w.conversation).is_empty());
        w.publish(2).await;
        assert_eq!(sink.seqs(), vec![1, 2]);
        assert_eq!(w.engine.subscriptions(), 0);
    });
}

#[test]
fn a_full_sink_ends_its_subscription_and_others_go_on() {
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = World::new(store).await;
        let small = Collect::new(3);
        let big = Collect::new(usize::MAX);
        let _a = w.subscribe(0, small.clone()).await;
        let _b = w.subscribe(0, big.clone()).await;
        for _ in 0..6 {
            w.publish(1).await;
        }
        until_seen(&big, 6).await;
        assert_eq!(small.seqs(), vec![1, 2, 3], "the full one got what fit, then was dropped");
        assert_eq!(w.engine.subscriptions(), 1);
    });
}

#[test]
fn another_tenants_conversation_cannot_be_followed() {
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = World::new(store).await;
        let got =
            w.engine.subscribe(w.conversation, Scope::Tenant(converger_storage::new_id()), 0, Collect::new(1)).await;
        assert!(matches!(got, Err(SubscribeError::Store(converger_storage::StoreError::NotFound(_)))));
        assert!(w.engine.owner.subscriber_shards(w.conversation).is_empty());
    });
}

#[test]
fn typing_and_presence_reach_live_subscribers_through_the_owner() {
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = World::new(store).await;
        let (a, b) = (Collect::new(usize::MAX), Collect::new(usize::MAX));
        let _sa = w.subscribe(0, a.clone()).await;
        let _sb = w.subscribe(0, b.clone()).await;
        let meta = Meta { phx_ref: "r1".into(), online_at: converger_storage::Timestamp::from_micros(0) };
        let state = w.engine.presence_join(w.conversation, "alice".into(), meta).expect("join").await.expect("state");
        let state: PresenceState = serde_json::from_slice(&state).expect("the state as JSON");
        assert_eq!(state.0.keys().collect::<Vec<_>>(), vec!["alice"]);
        monoio::time::sleep(crate::engine::PRESENCE_TICK * 3).await;
        let typing = Ephemeral::Typing { sender: "alice".into(), typing: true };
        w.engine.send_ephemeral(w.conversation, typing.clone()).expect("typing");
        w.engine.presence_leave(w.conversation, "alice".into(), "r1".into());
        monoio::time::sleep(crate::engine::PRESENCE_TICK * 3).await;
        for sink in [&a, &b] {
            let events = sink.events.borrow();
            assert_eq!(events.len(), 3, "{events:?}");
            assert!(matches!(&events[0], Ephemeral::Presence(d) if d.joins.0.contains_key("alice")));
            assert_eq!(events[1], typing);
            assert!(matches!(&events[2], Ephemeral::Presence(d) if d.leaves.0.contains_key("alice")));
        }
        assert!(
            w.store.read_range(Scope::Tenant(w.tenant), w.conversation, 0, 10, None).await.expect("read").is_empty(),
            "nothing ephemeral is stored"
        );
    });
}

/// A sink that acts as a sender and records the disconnects it is told of.
struct Client {
    inner: Rc<Collect>,
    sender: Option<String>,
    told: RefCell<Vec<String>>,
}

impl Sink for Client {
    fn deliver(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool {
        self.inner.deliver(batch, range)
    }

    fn event(&self, event: &Rc<LocalEvent>) -> bool {
        self.inner.event(event)
    }

    fn client(&self) -> Option<&str> {
        self.sender.as_deref()
    }

    fn disconnected(&self, d: &crate::engine::Disconnect) {
        self.told.borrow_mut().push(format!("{}: {}", d.cause.as_str(), d.reason));
    }
}

#[test]
fn a_disconnect_ends_the_senders_subscriptions_or_everyones_and_counts_them() {
    use crate::engine::{Cause, Disconnect};
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = World::new(store).await;
        let client = |sender: Option<&str>| {
            Rc::new(Client {
                inner: Collect::new(usize::MAX),
                sender: sender.map(str::to_string),
                told: RefCell::default(),
            })
        };
        let (bob1, bob2, alice, api) = (client(Some("bob")), client(Some("bob")), client(Some("alice")), client(None));
        let scope = Scope::Tenant(w.tenant);
        let mut subs = Vec::new();
        for c in [&bob1, &bob2, &alice, &api] {
            subs.push(w.engine.subscribe(w.conversation, scope, 0, c.clone()).await.expect("subscribe"));
        }
        let bye = |sender: Option<&str>, cause| Disconnect {
            sender: sender.map(str::to_string),
            reason: "bye".into(),
            cause,
        };
        let n = w.engine.disconnect(w.conversation, bye(Some("bob"), Cause::Disconnected)).await.expect("disconnect");
        assert_eq!(n, 2, "both of bob's subscriptions");
        assert!(subs[0].is_closed() && subs[1].is_closed() && !subs[2].is_closed() && !subs[3].is_closed());
        assert_eq!(*bob1.told.borrow(), ["disconnected: bye"]);
        assert!(alice.told.borrow().is_empty() && api.told.borrow().is_empty());
        assert_eq!(w.engine.subscriptions(), 2);

        w.publish(1).await;
        until_seen(&alice.inner, 1).await;
        assert!(bob1.inner.seqs().is_empty(), "nothing reaches a disconnected subscription");
        let n = w.engine.disconnect(w.conversation, bye(Some("bob"), Cause::Disconnected)).await.expect("again");
        assert_eq!(n, 0, "a second disconnect finds nobody");

        let n = w.engine.disconnect(w.conversation, bye(None, Cause::ConversationClosed)).await.expect("everyone");
        assert_eq!(n, 2, "alice and the API-key connection");
        assert_eq!(*api.told.borrow(), ["conversation_closed: bye"]);
        assert_eq!(w.engine.subscriptions(), 0);
    });
}

#[test]
fn presence_changes_within_a_tick_go_out_as_one_diff() {
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = World::new(store).await;
        let a = Collect::new(usize::MAX);
        let _sa = w.subscribe(0, a.clone()).await;
        let meta = |r: &str| Meta { phx_ref: r.into(), online_at: converger_storage::Timestamp::from_micros(0) };
        let states: Vec<_> = [("alice", "a1"), ("bob", "b1"), ("carol", "c1")]
            .into_iter()
            .map(|(key, r)| w.engine.presence_join(w.conversation, key.into(), meta(r)).expect("join"))
            .collect();
        w.engine.presence_leave(w.conversation, "carol".into(), "c1".into());
        let mut told = Vec::new();
        for state in states {
            told.push(state.await.expect("state"));
        }
        assert!(told.iter().all(|s| s.as_ptr() == told[0].as_ptr()), "one encoding for the tick's joiners");
        let state: PresenceState = serde_json::from_slice(&told[0]).expect("JSON");
        assert_eq!(state.0.keys().collect::<Vec<_>>(), ["alice", "bob"], "the state at the tick");
        monoio::time::sleep(crate::engine::PRESENCE_TICK * 3).await;
        let events = a.events.borrow();
        assert_eq!(events.len(), 1, "{events:?}");
        let Ephemeral::Presence(diff) = &events[0] else { panic!("{events:?}") };
        assert_eq!(diff.joins.0.keys().collect::<Vec<_>>(), ["alice", "bob"], "carol came and went within the tick");
        assert!(diff.leaves.0.is_empty());
    });
}

#[test]
fn presence_lists_who_the_owner_knows() {
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = World::new(store).await;
        assert!(w.engine.presence(w.conversation).await.expect("empty").0.is_empty());
        let meta = |r: &str| Meta { phx_ref: r.into(), online_at: converger_storage::Timestamp::from_micros(0) };
        w.engine.presence_join(w.conversation, "alice".into(), meta("a1")).expect("join").await.expect("state");
        w.engine.presence_join(w.conversation, "alice".into(), meta("a2")).expect("join").await.expect("state");
        let state = w.engine.presence(w.conversation).await.expect("state");
        assert_eq!(state.0["alice"].metas.len(), 2);
    });
}

/// Two shards on two threads: the subscriber's shard does not own the
/// conversation, so registration, committed batches and ephemeral events all
/// cross the mesh; a backlog is read while the owner keeps committing.
#[test]
fn a_subscriber_on_another_shard_gets_backlog_then_live_in_order() {
    use std::sync::mpsc;

    use crate::engine::owner_of;
    use crate::rt::shutdown::Shutdown;

    let (_dir, store) = embedded();
    let mut ends = mesh::build(2);
    let end1 = ends.pop().expect("shard 1");
    let end0 = ends.pop().expect("shard 0");
    let quiet = Shutdown::new();
    // A conversation shard 0 owns.
    let (tenant, conversation) = runtime().block_on({
        let store = store.clone();
        async move {
            loop {
                let (t, c) = conversation_in(&*store).await;
                if owner_of(c, 2) == 0 {
                    return (t, c);
                }
            }
        }
    });
    let (to_writer, writer_go) = mpsc::channel::<usize>();
    let (to_test, done) = mpsc::channel::<Vec<i64>>();

    let owner_thread = {
        let (store, quiet) = (store.clone(), quiet.clone());
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let engine = Engine::new(store, Arc::new(ShardMetrics::default()), end0.outbox, None, Arc::default());
                monoio::spawn(engine.clone().run_owner());
                let mesh = monoio::spawn(engine.clone().run_mesh(end0.inbox, Latch::following(&quiet)));
                // Publish in rounds the test asks for.
                while let Ok(n) = writer_go.recv() {
                    if n == 0 {
                        break;
                    }
                    let answers: Vec<_> = (0..n)
                        .map(|_| {
                            let (reply, answer) = oneshot::channel();
                            engine.owner.enqueue(PublishRequest {
                                activity: message(tenant, conversation),
                                reply,
                                hook: None,
                                trace: None,
                            });
                            answer
                        })
                        .collect();
                    for a in answers {
                        a.await.expect("answered").expect("stored");
                    }
                }
                quiet.trigger();
                mesh.await;
            })
        })
    };
    to_writer.send(20).expect("writer");
    let subscriber_thread = {
        let (store, quiet) = (store.clone(), quiet.clone());
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let engine = Engine::new(store, Arc::new(ShardMetrics::default()), end1.outbox, None, Arc::default());
                let mesh = monoio::spawn(engine.clone().run_mesh(end1.inbox, Latch::following(&quiet)));
                let sink = Collect::new(usize::MAX);
                // Ask for more writes while the backlog is being read.
                to_writer.send(30).expect("writer");
                let _sub =
                    engine.subscribe(conversation, Scope::Tenant(tenant), 5, sink.clone()).await.expect("subscribe");
                to_writer.send(25).expect("writer");
                until_seen(&sink, 75).await;
                to_test.send(sink.seqs()).expect("report");
                to_writer.send(0).expect("stop");
                mesh.await;
            })
        })
    };
    let seqs = done.recv_timeout(Duration::from_secs(30)).expect("the subscriber finished");
    assert_eq!(seqs, (6..=75).collect::<Vec<_>>());
    subscriber_thread.join().expect("subscriber");
    owner_thread.join().expect("owner");
}

/// A sink whose room is given by the test: a catch-up waits on it before
/// each storage page.
struct Gated {
    inner: Rc<Collect>,
    open: Cell<bool>,
    waiting: RefCell<Option<std::task::Waker>>,
    polls: Cell<usize>,
}

impl Gated {
    fn open(&self) {
        self.open.set(true);
        if let Some(w) = self.waiting.borrow_mut().take() {
            w.wake();
        }
    }
}

impl Sink for Gated {
    fn deliver(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool {
        self.inner.deliver(batch, range)
    }

    fn event(&self, event: &Rc<LocalEvent>) -> bool {
        self.inner.event(event)
    }

    fn poll_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.polls.set(self.polls.get() + 1);
        if self.open.get() {
            return std::task::Poll::Ready(());
        }
        *self.waiting.borrow_mut() = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
}

/// A catch-up waits for room before reading storage, and live activities
/// that arrive meanwhile are held only up to `MAX_BUFFERED`: past it the
/// buffer is dropped and storage is read again, with no gap and no duplicate.
#[test]
fn a_catch_up_waits_for_room_and_an_overflowing_live_buffer_is_read_from_storage() {
    let (_dir, store) = embedded();
    runtime().block_on(async move {
        let w = Rc::new(World::new(store).await);
        w.publish(50).await;
        let gated = Rc::new(Gated {
            inner: Collect::new(usize::MAX),
            open: Cell::new(false),
            waiting: RefCell::new(None),
            polls: Cell::new(0),
        });
        let subscribing = {
            let (w, sink) = (w.clone(), gated.clone());
            monoio::spawn(async move {
                w.engine.subscribe(w.conversation, Scope::Tenant(w.tenant), 0, sink).await.expect("subscribe")
            })
        };
        // Parked before its first read: registered, so live activities are offered to it.
        while gated.polls.get() == 0 {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        let live = subscription::MAX_BUFFERED + 500;
        w.publish(live).await;
        assert!(gated.inner.seqs().is_empty(), "nothing is delivered while the sink has no room");
        gated.open();
        let _sub = subscribing.await;
        let last = 50 + live as i64;
        until_seen(&gated.inner, last).await;
        assert_eq!(gated.inner.seqs(), (1..=last).collect::<Vec<_>>());
    });
}
