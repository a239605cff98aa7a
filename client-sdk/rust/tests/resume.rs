//! Subscriptions across connection losses and slow consumers: the consumer
//! must see every seq exactly once, in order, while publishers keep going.

mod common;

use std::time::Duration;

use common::{next, options, within, Env};
use converger_client::{Client, Credential, Draft, Error, Options, Uuid};

/// Publishes `text` until it is acknowledged: a lost connection leaves the
/// outcome unknown, so the same idempotency key is sent again.
async fn publish_surely(client: &Client, conversation: Uuid, i: u64) -> u64 {
    let draft = Draft::message(conversation, format!("m{i}")).sender("bot").idempotency_key(format!("k{i}"));
    for _ in 0..500 {
        match client.publish(draft.clone()).await {
            Ok(w) => return w.seq,
            Err(Error::ConnectionLost | Error::Timeout(_)) => {}
            Err(Error::Server(e)) if e.code.code() >= 5000 => {}
            Err(e) => panic!("publish m{i}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("m{i} never acknowledged");
}

/// Reads seqs 1..=n from `sub`, checking there is no gap and no repeat.
async fn expect_exactly(sub: &mut converger_client::Subscription, n: u64) {
    for seq in 1..=n {
        let a = next(sub).await;
        assert_eq!(a.seq, seq, "gap or duplicate");
        assert_eq!(a.text, Some(format!("m{seq}")), "seq {seq} carries message {seq}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_server_restart_has_no_gap_and_no_duplicate() {
    let mut env = Env::start().await;
    let conversation = env.conversation().await;
    let publisher = env.api_client().await;
    let subscriber = env.api_client().await;
    let mut sub = subscriber.subscribe(conversation, 0).await.unwrap();

    const N: u64 = 300;
    let writer = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            for i in 1..=N {
                assert_eq!(publish_surely(&publisher, conversation, i).await, i);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Read some, then kill -9 the server mid-stream and start it again on new
    // ports: both clients are pointed at it and reconnect by themselves.
    for seq in 1..=40 {
        assert_eq!(next(&mut sub).await.seq, seq);
    }
    assert!(!writer.is_finished(), "the server dies while the publisher is at work");
    tokio::task::block_in_place(|| env.server.kill_and_restart());
    publisher.set_addr(env.server.binary_addr());
    subscriber.set_addr(env.server.binary_addr());
    for seq in 41..=N {
        let a = next(&mut sub).await;
        assert_eq!((a.seq, a.text), (seq, Some(format!("m{seq}"))), "gap or duplicate");
    }
    within("the publisher", writer).await.unwrap();
    assert!(subscriber.connections() >= 2, "the subscriber reconnected");
    let page = env.rest_after_restart().list_activities(conversation, 0, 1000).await.unwrap();
    assert_eq!(page.last_seq, N, "each idempotency key made one activity");
}

impl Env {
    fn rest_after_restart(&self) -> converger_client::Rest {
        converger_client::Rest::new(&format!("http://{}", self.server.http_addr()), self.api_key.clone()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_client_side_disconnects_has_no_gap_and_no_duplicate() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let publisher = env.api_client().await;
    let user = env.token_client(conversation, "user-1").await;
    let mut sub = user.subscribe(conversation, 0).await.unwrap();

    const N: u64 = 400;
    let writer = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            for i in 1..=N {
                publish_surely(&publisher, conversation, i).await;
            }
        })
    };
    // Cut both connections over and over while the stream flows.
    let mut cuts = 0;
    for seq in 1..=N {
        if seq % 60 == 0 {
            user.reconnect();
            publisher.reconnect();
            cuts += 1;
        }
        let a = next(&mut sub).await;
        assert_eq!((a.seq, a.text), (seq, Some(format!("m{seq}"))), "gap or duplicate");
    }
    within("the publisher", writer).await.unwrap();
    assert!(user.connections() > 1 && cuts > 1, "{} connections", user.connections());
    assert_eq!(env.rest.list_activities(conversation, 0, 1000).await.unwrap().last_seq, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_pauses_and_resumes_without_loss() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let publisher = env.api_client().await;
    let options = Options { subscription_buffer: 8, ..options() };
    let slow =
        Client::connect_with(env.server.binary_addr(), Credential::ApiKey(env.api_key.clone()), options).await.unwrap();
    let mut sub = slow.subscribe(conversation, 0).await.unwrap();
    // Far more than the consumer holds, while it does not read.
    const N: u64 = 500;
    for chunk in (1..=N).collect::<Vec<_>>().chunks(100) {
        let drafts = chunk.iter().map(|i| Draft::message(conversation, format!("m{i}")).sender("bot")).collect();
        assert!(publisher.publish_batch(drafts).await.unwrap().iter().all(Result::is_ok));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    expect_exactly(&mut sub, N).await;
    assert!(sub.pauses() > 0, "the subscription paused");
    // The connection stayed up: the pause was the subscription's alone.
    assert_eq!(slow.connections(), 1);
    publisher.publish(Draft::message(conversation, format!("m{}", N + 1)).sender("bot")).await.unwrap();
    assert_eq!(next(&mut sub).await.seq, N + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_conversations_across_both_shards() {
    // The harness runs the server with two shards: conversations are owned
    // by either, and one connection follows them all.
    let env = Env::start().await;
    let mut conversations = Vec::new();
    for _ in 0..24 {
        conversations.push(env.conversation().await);
    }
    let publisher = env.api_client().await;
    let subscriber = env.api_client().await;
    let mut subs = Vec::new();
    for c in &conversations {
        subs.push(subscriber.subscribe(*c, 0).await.unwrap());
    }
    const ROUNDS: u64 = 10;
    let writers: Vec<_> = (0..2)
        .map(|half| {
            let (publisher, conversations) = (publisher.clone(), conversations.clone());
            tokio::spawn(async move {
                for round in 1..=ROUNDS {
                    let drafts = conversations
                        .iter()
                        .skip(half)
                        .step_by(2)
                        .map(|c| Draft::message(*c, format!("m{round}")).sender("bot"))
                        .collect();
                    let items = publisher.publish_batch(drafts).await.unwrap();
                    assert!(items.iter().all(|i| i.as_ref().is_ok_and(|w| w.seq == round)), "{items:?}");
                }
            })
        })
        .collect();
    for w in writers {
        within("the writers", w).await.unwrap();
    }
    // A reconnect subscribes all of them again in one frame: nothing repeats.
    subscriber.reconnect();
    for sub in &mut subs {
        expect_exactly(sub, ROUNDS).await;
    }
    for (c, sub) in conversations.iter().zip(&subs) {
        assert_eq!((sub.conversation_id(), sub.last_seq()), (*c, Some(ROUNDS)));
    }
}
