//! The binary protocol against the real server, over TCP and over
//! `/socket/binary`: the handshake and its refusals, malformed frames,
//! publish / batch publish through the same service layer as REST
//! (idempotency included), subscribe with resume then the live stream,
//! history, typing, cross-shard delivery and the slow-consumer rule.

use std::time::{Duration, Instant};

use converger_e2e::api::{create_tenant, expect, Client, Fixture};
use converger_e2e::binary::{message, uuid_bytes as id, BinClient, Next};
use converger_e2e::TestServer;
use converger_protocol::{
    Auth, Draft, ErrorCode, Frame, History, Ping, Publish, PublishBatch, Subscribe, SubscribeItem, Unsubscribe,
};
use serde_json::json;

fn draft(conversation: [u8; 16], text: &str) -> Draft {
    message(conversation, "", text)
}

/// The seqs of the next `n` delivered activities (skipping other frames).
fn delivered(c: &mut BinClient, n: usize) -> Vec<u64> {
    let seqs = c.delivered_by(n, Instant::now() + Duration::from_secs(10));
    assert!(seqs.len() >= n, "only {seqs:?} of {n} delivered");
    seqs
}

#[test]
fn token_and_api_key_handshakes_say_who_the_connection_is() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "hello");
    let (_, welcome) = BinClient::with_token(server.binary_addr(), &f.token(&server, "alice"));
    assert_eq!(welcome.version, 1);
    assert_eq!(welcome.tenant_id, id(&f.tenant.id));
    assert_eq!(welcome.conversation_id, Some(id(f.conversation_id())));
    assert_eq!(welcome.sender, "alice");
    assert!(welcome.expires_at > 0 && welcome.max_frame > 0 && welcome.send_queue_bytes > 0);

    let (_, welcome) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    assert_eq!(welcome.conversation_id, None, "an API key covers the whole tenant");
    assert_eq!(welcome.expires_at, 0);
}

#[test]
fn refused_handshakes_and_malformed_frames_get_an_error_then_the_close() {
    let server = TestServer::embedded();
    let addr = server.binary_addr();

    let mut c = BinClient::tcp(addr);
    let refused = c.hello(Auth::Token("not-a-jwt".into())).expect_err("refused");
    assert!(matches!(*refused, Frame::Error(ref e) if e.error_code() == Some(ErrorCode::Unauthorized) && e.close));
    assert!(matches!(c.read_next(), Next::Closed));

    let mut c = BinClient::tcp(addr);
    let refused = c.hello(Auth::ApiKey("cvg_wrong".into())).expect_err("refused");
    assert!(matches!(*refused, Frame::Error(ref e) if e.error_code() == Some(ErrorCode::Unauthorized)));

    let mut c = BinClient::tcp(addr);
    c.send(Ping { payload: 1 });
    c.expect_closing_error(ErrorCode::UnexpectedFrame);

    let mut c = BinClient::tcp(addr);
    c.send(converger_protocol::Hello {
        min_version: 7,
        max_version: 9,
        auth: Auth::ApiKey("k".into()),
        client: "x".into(),
    });
    c.expect_closing_error(ErrorCode::UnsupportedVersion);

    let mut c = BinClient::tcp(addr);
    c.send_raw(&[8, 0, 0, 0, 1, 0xEE, 0, 0, 1, 2, 3, 4]);
    c.expect_closing_error(ErrorCode::BadFrame);

    let mut c = BinClient::tcp(addr);
    c.send_raw(&(1u32 << 30).to_le_bytes());
    c.expect_closing_error(ErrorCode::FrameTooLarge);

    // The server is still fine.
    let f = Fixture::new(&server, "after");
    BinClient::with_api_key(addr, &f.tenant.api_key);
}

#[test]
fn publish_is_acknowledged_once_durable_and_idempotent_like_rest() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "publish");
    let conv = id(f.conversation_id());
    let (mut c, _) = BinClient::with_token(server.binary_addr(), &f.token(&server, "alice"));

    let mut keyed = draft(conv, "hello");
    keyed.idempotency_key = Some("k-1".into());
    c.send(Publish { request_id: 1, activity: keyed.clone() });
    let first = match c.frame() {
        Frame::PublishAck(a) => a,
        other => panic!("{other:?}"),
    };
    assert_eq!((first.request_id, first.written.seq, first.written.replayed), (1, 1, false));
    c.send(Publish { request_id: 2, activity: keyed });
    match c.frame() {
        Frame::PublishAck(a) => {
            assert_eq!((a.written.activity_id, a.written.seq), (first.written.activity_id, 1));
            assert!(a.written.replayed, "the repeat answers the original");
        }
        other => panic!("{other:?}"),
    }
    // Stored as REST shows it, as the token's sender.
    let listed = expect(&f.client(&server).get(&f.activities_path()), 200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["data"][0]["sender"], "alice");
    assert_eq!(listed["data"][0]["text"], "hello");

    // A token writes only its conversation, only as its sender; bad drafts say which field.
    let other = expect(&f.client(&server).post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
    c.send(Publish { request_id: 3, activity: draft(id(other["id"].as_str().expect("id")), "x") });
    assert!(matches!(c.frame(), Frame::Error(e) if e.request_id == 3 && e.error_code() == Some(ErrorCode::Forbidden)));
    let mut as_bob = draft(conv, "x");
    as_bob.sender = "bob".into();
    c.send(Publish { request_id: 4, activity: as_bob });
    assert!(matches!(c.frame(), Frame::Error(e) if e.error_code() == Some(ErrorCode::Forbidden)));
    let mut empty = draft(conv, "x");
    empty.text = None;
    c.send(Publish { request_id: 5, activity: empty });
    match c.frame() {
        Frame::Error(e) => {
            assert_eq!(e.error_code(), Some(ErrorCode::ValidationFailed));
            assert!(e.message.contains("text"), "{}", e.message);
            assert!(!e.close, "a refused request leaves the connection open");
        }
        other => panic!("{other:?}"),
    }
    let mut bad_meta = draft(conv, "x");
    bad_meta.metadata = Some("[1]".into());
    c.send(Publish { request_id: 6, activity: bad_meta });
    assert!(matches!(c.frame(), Frame::Error(e) if e.error_code() == Some(ErrorCode::ValidationFailed)));
}

#[test]
fn a_batch_answers_each_item_and_items_of_one_conversation_take_frame_order() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "batch");
    let stranger = Fixture::new(&server, "stranger");
    let (mut c, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    let conv = id(f.conversation_id());
    let mut drafts: Vec<Draft> =
        (0..5).map(|i| Draft { sender: "bot".into(), ..draft(conv, &format!("{i}")) }).collect();
    drafts.insert(2, Draft { sender: "bot".into(), ..draft(id(stranger.conversation_id()), "not yours") });
    c.send(PublishBatch { request_id: 9, activities: drafts });
    match c.frame() {
        Frame::PublishBatchAck(ack) => {
            assert_eq!(ack.request_id, 9);
            assert_eq!(ack.items.len(), 6);
            let seqs: Vec<u64> = ack.items.iter().filter_map(|i| i.as_ref().ok()).map(|w| w.seq).collect();
            assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
            let failure = ack.items[2].as_ref().expect_err("another tenant's conversation");
            assert_eq!(failure.error_code(), Some(ErrorCode::NotFound), "not found, never forbidden: {failure:?}");
        }
        other => panic!("{other:?}"),
    }
    // An API key must name the sender.
    c.send(Publish { request_id: 10, activity: draft(conv, "anonymous") });
    assert!(matches!(c.frame(), Frame::Error(e) if e.error_code() == Some(ErrorCode::ValidationFailed)));
}

#[test]
fn subscribe_sends_the_backlog_after_the_resume_seq_then_the_live_stream() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "subscribe");
    let rest = f.client(&server);
    for i in 0..5 {
        expect(&rest.post(&f.activities_path(), &json!({"sender": "s", "text": format!("{i}")})), 201);
    }
    let (mut c, _) = BinClient::with_token(server.binary_addr(), &f.token(&server, "bob"));
    let conv = id(f.conversation_id());
    assert_eq!(c.subscribe_one(conv, 2), 5, "Subscribed carries the last seq");
    assert_eq!(delivered(&mut c, 3), vec![3, 4, 5], "the backlog after 2, in order");
    expect(&rest.post(&f.activities_path(), &json!({"sender": "s", "text": "live"})), 201);
    assert_eq!(delivered(&mut c, 1), vec![6], "then the live stream, without a gap or a repeat");

    // Twice is refused per item; after Unsubscribe's Ack nothing more arrives.
    c.send(Subscribe { request_id: 8, items: vec![SubscribeItem { conversation_id: conv, after_seq: 0 }] });
    match c.frame() {
        Frame::Subscribed(s) => {
            assert_eq!(s.items[0].result.as_ref().expect_err("twice").error_code(), Some(ErrorCode::AlreadySubscribed))
        }
        other => panic!("{other:?}"),
    }
    c.send(Unsubscribe { request_id: 11, conversation_ids: vec![conv] });
    assert!(matches!(c.frame(), Frame::Ack(a) if a.request_id == 11));
    expect(&rest.post(&f.activities_path(), &json!({"sender": "s", "text": "unseen"})), 201);
    c.send(Ping { payload: 42 });
    assert!(matches!(c.frame(), Frame::Pong(p) if p.payload == 42), "no Deliver after the unsubscribe");

    // Live only: no backlog, the next write is the first delivery.
    let (mut live, _) = BinClient::with_token(server.binary_addr(), &f.token(&server, "late"));
    assert_eq!(live.subscribe_one(conv, converger_protocol::LIVE_ONLY), 7);
    expect(&rest.post(&f.activities_path(), &json!({"sender": "s", "text": "next"})), 201);
    assert_eq!(delivered(&mut live, 1), vec![8]);

    // A token cannot follow another conversation.
    let other = expect(&rest.post("/api/v1/conversations", &json!({"channel_id": f.channel_id()})), 201);
    c.send(Subscribe {
        request_id: 12,
        items: vec![SubscribeItem { conversation_id: id(other["id"].as_str().expect("id")), after_seq: 0 }],
    });
    match c.frame() {
        Frame::Subscribed(s) => {
            assert_eq!(s.items[0].result.as_ref().expect_err("refused").error_code(), Some(ErrorCode::Forbidden))
        }
        other => panic!("{other:?}"),
    }

    // A closed conversation is refused, as a Phoenix join is: it takes no
    // writes, so there is nothing live to follow (its history stays readable).
    expect(&rest.post(&format!("/api/v1/conversations/{}/close", f.conversation_id()), &json!({})), 200);
    c.send(Subscribe { request_id: 13, items: vec![SubscribeItem { conversation_id: conv, after_seq: 0 }] });
    match c.frame() {
        Frame::Subscribed(s) => assert_eq!(
            s.items[0].result.as_ref().expect_err("closed").error_code(),
            Some(ErrorCode::ConversationClosed)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_api_key_connection_follows_many_conversations_across_both_shards() {
    let server = TestServer::embedded(); // two shards
    let tenant = create_tenant(&server, "many");
    let rest = Client::bearer(&server, &tenant.api_key);
    let channel = expect(&rest.post("/api/v1/channels", &json!({"name": "c", "type": "websocket"})), 201);
    let convs: Vec<String> = (0..8)
        .map(|_| {
            let c = expect(&rest.post("/api/v1/conversations", &json!({"channel_id": channel["id"]})), 201);
            c["id"].as_str().expect("id").to_string()
        })
        .collect();
    let (mut sub, _) = BinClient::with_api_key(server.binary_addr(), &tenant.api_key);
    sub.send(Subscribe {
        request_id: 1,
        items: convs.iter().map(|c| SubscribeItem { conversation_id: id(c), after_seq: 0 }).collect(),
    });
    assert!(matches!(sub.frame(), Frame::Subscribed(s) if s.items.iter().all(|i| i.result.is_ok())));
    let (mut publisher, _) = BinClient::with_api_key(server.binary_addr(), &tenant.api_key);
    let drafts: Vec<Draft> = (0..10)
        .flat_map(|i| convs.iter().map(move |c| Draft { sender: "p".into(), ..draft(id(c), &format!("{i}")) }))
        .collect();
    publisher.send(PublishBatch { request_id: 2, activities: drafts });
    assert!(matches!(publisher.frame(), Frame::PublishBatchAck(a) if a.items.iter().all(|i| i.is_ok())));
    let mut per_conv: std::collections::HashMap<[u8; 16], Vec<u64>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while per_conv.values().map(Vec::len).sum::<usize>() < 80 {
        assert!(Instant::now() < deadline, "missing deliveries: {per_conv:?}");
        if let Frame::Deliver(d) = sub.frame() {
            for a in d.activities {
                per_conv.entry(a.conversation_id).or_default().push(a.seq);
            }
        }
    }
    for seqs in per_conv.values() {
        assert_eq!(seqs, &(1..=10).collect::<Vec<_>>(), "each conversation in order, gap-free");
    }
}

#[test]
fn history_reads_a_seq_range() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "history");
    for i in 0..6 {
        expect(&f.client(&server).post(&f.activities_path(), &json!({"sender": "s", "text": format!("{i}")})), 201);
    }
    let (mut c, _) = BinClient::with_token(server.binary_addr(), &f.token(&server, "reader"));
    let conv = id(f.conversation_id());
    c.send(History { request_id: 3, conversation_id: conv, after_seq: 1, until_seq: Some(4), limit: 100 });
    match c.frame() {
        Frame::HistoryPage(p) => {
            assert_eq!(p.request_id, 3);
            assert_eq!(p.last_seq, 6);
            assert_eq!(p.activities.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
            assert_eq!(p.activities[0].text.as_deref(), Some("1"));
        }
        other => panic!("{other:?}"),
    }
}

/// The live subscriptions on the server, from `/metrics`.
fn subscriptions(server: &TestServer) -> Option<u64> {
    let page = server.get("/metrics").text();
    page.lines().find_map(|l| l.strip_prefix("converger_subscriptions ")?.trim().parse().ok())
}

/// Connections that subscribe and close at once (the Subscribe still being
/// answered, its backlog still being read) leave no subscription behind: each
/// once stayed registered for good, buffering every new activity of its
/// conversation (found by the soak's connection churn).
#[test]
fn a_connection_closed_mid_subscribe_leaves_no_subscription() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "churn");
    let rest = f.client(&server);
    let conv = id(f.conversation_id());
    let (mut w, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    for request_id in 1..=2 {
        let drafts = (0..100).map(|i| draft(conv, &format!("{request_id}.{i}"))).collect();
        w.send(PublishBatch { request_id, activities: drafts });
        assert!(matches!(w.frame(), Frame::PublishBatchAck(_)));
    }
    let (mut steady, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    steady.subscribe_one(conv, converger_protocol::LIVE_ONLY);
    for _ in 0..40 {
        let (mut c, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
        c.send(Subscribe { request_id: 3, items: vec![SubscribeItem { conversation_id: conv, after_seq: 0 }] });
        drop(c);
    }
    expect(&rest.post(&f.activities_path(), &json!({"sender": "s", "text": "after"})), 201);
    let deadline = Instant::now() + Duration::from_secs(10);
    while subscriptions(&server) != Some(1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(subscriptions(&server), Some(1), "only the steady subscriber is left");
}

#[test]
fn typing_reaches_the_other_binary_client_and_is_never_stored() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "typing");
    let conv = id(f.conversation_id());
    let (mut a, _) = BinClient::with_token(server.binary_addr(), &f.token(&server, "alice"));
    let (mut b, _) = BinClient::with_token(server.binary_addr(), &f.token(&server, "bob"));
    a.subscribe_one(conv, 0);
    b.subscribe_one(conv, 0);
    b.send(converger_protocol::Ephemeral {
        request_id: 0,
        conversation_id: conv,
        kind: "typing".into(),
        sender: String::new(),
        data: r#"{"typing":true}"#.into(),
    });
    match a.frame() {
        Frame::Ephemeral(e) => {
            assert_eq!((e.kind.as_str(), e.sender.as_str()), ("typing", "bob"));
            assert_eq!(serde_json::from_str::<serde_json::Value>(&e.data).expect("json"), json!({"typing": true}));
        }
        other => panic!("{other:?}"),
    }
    let listed = expect(&f.client(&server).get(&f.activities_path()), 200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0), "typing is not stored");
}

#[test]
fn the_websocket_transport_carries_the_same_protocol() {
    let server = TestServer::embedded();
    let f = Fixture::new(&server, "ws");
    let t = f.token(&server, "carol");
    let conv = id(f.conversation_id());
    let mut c = BinClient::websocket(server.http_addr(), Some(&t)).expect("upgrade");
    let welcome = c.hello(Auth::Token(t.clone())).expect("welcome");
    assert_eq!(welcome.sender, "carol");
    c.subscribe_one(conv, 0);
    c.send(Publish { request_id: 1, activity: draft(conv, "over ws") });
    let mut acked = false;
    let mut seen = Vec::new();
    while !acked || seen.is_empty() {
        match c.frame() {
            Frame::PublishAck(a) => acked = a.written.seq == 1,
            Frame::Deliver(d) => seen.extend(d.activities.into_iter().map(|a| a.seq)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, vec![1]);

    // A bad token is refused before the upgrade; a Hello with another token after it.
    assert!(BinClient::websocket(server.http_addr(), Some("nope")).is_err());
    let mut c = BinClient::websocket(server.http_addr(), Some(&t)).expect("upgrade");
    let other = f.token(&server, "dave");
    assert!(
        matches!(c.hello(Auth::Token(other)).map_err(|f| *f), Err(Frame::Error(e)) if e.error_code() == Some(ErrorCode::Forbidden))
    );
}

#[test]
fn a_stalled_binary_subscriber_is_closed_as_a_slow_consumer_while_publishers_keep_going() {
    let server = TestServer::embedded_with(&["--ws-send-queue-bytes", "262144"]);
    let f = Fixture::new(&server, "slow");
    let conv = id(f.conversation_id());
    let (mut stalled, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    stalled.subscribe_one(conv, 0);
    let (mut publisher, _) = BinClient::with_api_key(server.binary_addr(), &f.tenant.api_key);
    let text = "x".repeat(60_000);
    // 40 frames of 10 × 60 kB (a frame stays under the 1 MiB limit).
    for batch in 0..40 {
        let drafts = (0..10).map(|i| Draft { sender: "p".into(), ..draft(conv, &format!("{batch}-{i}{text}")) });
        publisher.send(PublishBatch { request_id: batch + 1, activities: drafts.collect() });
        assert!(
            matches!(publisher.frame(), Frame::PublishBatchAck(a) if a.items.iter().all(|i| i.is_ok())),
            "the publisher is never held up"
        );
    }
    // What was already on its way, then Error slow_consumer (if the buffers let it through) and the end.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the stalled connection was never closed");
        match stalled.read_next() {
            Next::Frame(Frame::Error(e)) => {
                assert_eq!(e.error_code(), Some(ErrorCode::SlowConsumer));
                assert!(e.close);
            }
            Next::Frame(_) => continue,
            Next::Closed => break,
        }
    }
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("converger_send_queue_overflows_total{transport=\"binary_tcp\"} 1\n"), "{metrics}");
}

#[test]
fn a_rate_limited_publish_is_an_error_frame_with_a_retry_hint_and_a_batch_is_refused_whole() {
    let server = TestServer::embedded_with(&["--tenant-activities-per-second", "4"]);
    let f = Fixture::new(&server, "limited");
    let conv = id(f.conversation_id());
    let (mut c, _) = BinClient::with_token(server.binary_addr(), &f.token(&server, "alice"));
    let mut limited = None;
    for request_id in 1..=20 {
        c.send(Publish { request_id, activity: draft(conv, "x") });
        if let Frame::Error(e) = c.frame() {
            limited = Some(e);
            break;
        }
    }
    let e = limited.expect("a publish past the budget is refused");
    assert_eq!(e.error_code(), Some(ErrorCode::RateLimited));
    assert!(e.message.contains("retry in") && !e.close, "a hint, and the connection stays: {e:?}");
    let batch = (0..3).map(|_| draft(conv, "b")).collect();
    c.send(PublishBatch { request_id: 50, activities: batch });
    match c.frame() {
        Frame::Error(e) => assert_eq!((e.request_id, e.error_code()), (50, Some(ErrorCode::RateLimited))),
        other => panic!("a refused batch is one Error frame: {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(1100));
    c.send(Publish { request_id: 60, activity: draft(conv, "later") });
    assert!(matches!(c.frame(), Frame::PublishAck(a) if a.request_id == 60), "the budget is back");
}
