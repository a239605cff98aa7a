//! A shard's side of the cluster without NATS: the bus's queues are read and
//! fed by hand. A subscribe waits for its follow; a batch from another node
//! with a hole is healed from storage; commits made here are handed to the
//! bus; other nodes' presences come and go with them.

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use converger_storage::embedded::EmbeddedStore;
use converger_storage::{Scope, Store, Timestamp};

use super::*;
use crate::engine::live::{LocalEvent, SharedBatch, Sink};
use crate::engine::mesh;
use crate::engine::presence::Meta;
use crate::engine::publish::PublishRequest;
use crate::metrics::ShardMetrics;
use crate::testing::{conversation_in, message, runtime};

#[derive(Default)]
struct Collect {
    seqs: RefCell<Vec<i64>>,
    events: RefCell<Vec<Ephemeral>>,
}

impl Sink for Collect {
    fn deliver(&self, batch: &Rc<SharedBatch>, range: Range<usize>) -> bool {
        self.seqs.borrow_mut().extend(batch.activities()[range].iter().map(|a| a.seq));
        true
    }

    fn event(&self, event: &Rc<LocalEvent>) -> bool {
        self.events.borrow_mut().push((*event.event).clone());
        true
    }
}

async fn settle() {
    monoio::time::sleep(Duration::from_millis(30)).await;
}

#[test]
fn a_shard_takes_part_in_the_cluster_through_the_bus_queues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).expect("open"));
    runtime().block_on(async move {
        let (tenant, conv) = conversation_in(&*store).await;
        let status = Arc::new(Status::new("n1".into(), "n1.00000001".into(), ConnCaps::new(10, 10), Arc::default()));
        status.set_connected(true);
        let (link, _inboxes, mut ends) = channels(1, status);
        let outbox = mesh::build(1).pop().expect("one shard").outbox;
        let engine = Engine::new(store.clone(), Arc::new(ShardMetrics::default()), outbox, Some(link), Arc::default());
        monoio::spawn(engine.clone().run_owner());

        // The subscribe waits until the bus says the follow is in effect.
        let sink = Rc::new(Collect::default());
        let subscribing = {
            let (engine, sink) = (engine.clone(), sink.clone());
            monoio::spawn(async move { engine.subscribe(conv, Scope::Tenant(tenant), 0, sink).await })
        };
        settle().await;
        assert!(matches!(ends.control.try_recv(), Ok(Control::Follow(c)) if c == conv));
        engine.on_cluster(Inbound::Followed(conv));
        let sub = subscribing.await.expect("subscribed");

        // Another node committed 1..=3; only 2 and 3 arrive: 1 is read from storage.
        let written = store.write_batch((0..3).map(|_| message(tenant, conv)).collect()).await.expect("written");
        let remote: Vec<_> = written.into_iter().map(|w| w.expect("stored").into_activity()).collect();
        engine.on_cluster(Inbound::Committed(remote[1..].to_vec().into()));
        settle().await;
        assert_eq!(*sink.seqs.borrow(), [1, 2, 3], "the hole healed from storage, in order");

        // A commit made here goes to the local subscriber and to the bus.
        let (reply, answer) = oneshot::channel();
        engine.owner.enqueue(PublishRequest { activity: message(tenant, conv), reply, hook: None, trace: None });
        answer.await.expect("answered").expect("stored");
        settle().await;
        assert_eq!(*sink.seqs.borrow(), [1, 2, 3, 4]);
        assert!(matches!(ends.data.try_recv(), Ok(Outbound::Batch(b)) if b[0].seq == 4));

        // Another node's presence joins, then leaves when that node is gone.
        let meta = Meta { phx_ref: "r9".into(), online_at: Timestamp::from_micros(0) };
        let diff = crate::engine::presence::Presences::default().join(conv, "zoe", meta);
        engine.on_cluster(Inbound::Presence { conversation: conv, origin: "n2.1".into(), diff });
        assert_eq!(engine.owner.local_presence(conv), PresenceState::default(), "not ours to announce");
        engine.on_cluster(Inbound::NodeGone("n2.1".into()));
        settle().await;
        let events = sink.events.borrow().clone();
        let [Ephemeral::Presence(join), Ephemeral::Presence(leave)] = events.as_slice() else {
            panic!("a join then a leave: {events:?}")
        };
        assert!(join.joins.0.contains_key("zoe") && leave.leaves.0.contains_key("zoe"));

        // The last subscriber leaves: the node stops following.
        engine.unsubscribe(&sub);
        settle().await;
        assert!(matches!(ends.control.try_recv(), Ok(Control::Unfollow(c)) if c == conv));
    });
}
