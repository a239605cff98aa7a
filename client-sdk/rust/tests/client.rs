//! The SDK against the real server: handshake, publishing, subscriptions,
//! history, typing, ping, reauth, the REST helpers.

mod common;

use common::{next, within, Env};
use converger_client::{Client, Credential, Draft, Error, ErrorCode, Uuid, LIVE_ONLY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_with_a_token_and_with_an_api_key() {
    let env = Env::start().await;
    let conversation = env.conversation().await;

    let user = env.token_client(conversation, "user-1").await;
    let w = user.welcome();
    assert_eq!((w.version, w.tenant_id, w.conversation_id), (3, env.tenant_id, Some(conversation)));
    assert_eq!(w.sender, "user-1");
    assert!(w.expires_at > 0 && w.idle_timeout.as_secs() > 0 && w.max_frame > 0, "{w:?}");
    assert!(user.is_connected());
    assert_eq!(user.connections(), 1);

    let service = env.api_client().await;
    let w = service.welcome();
    assert_eq!((w.tenant_id, w.conversation_id, w.expires_at, w.sender.as_str()), (env.tenant_id, None, 0, ""));
    assert!(w.server.starts_with("converger/"), "{}", w.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_typed_errors() {
    let env = Env::start().await;
    let addr = env.server.binary_addr();
    let unknown_key = "cvg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string();
    for credential in [Credential::ApiKey(unknown_key), Credential::Token("not.a.token".into())] {
        match Client::connect(addr, credential.clone()).await {
            Err(Error::Server(e)) => assert_eq!(e.code, ErrorCode::Unauthorized, "{credential:?}: {e}"),
            other => panic!("{credential:?}: {other:?}"),
        }
    }
    // Nothing listening: an I/O error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    assert!(matches!(Client::connect(closed, Credential::ApiKey("cvg_x".into())).await, Err(Error::Io(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_is_acked_with_its_seq_and_a_repeat_replays() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let service = env.api_client().await;

    let first = service.publish(Draft::message(conversation, "one").sender("bot").idempotency_key("k1")).await.unwrap();
    assert_eq!((first.seq, first.replayed), (1, false));
    let second = service.publish(Draft::event(conversation).sender("bot").metadata(r#"{"n":2}"#)).await.unwrap();
    assert_eq!(second.seq, 2);
    let again = service.publish(Draft::message(conversation, "one").sender("bot").idempotency_key("k1")).await.unwrap();
    assert_eq!(
        (again.activity_id, again.seq, again.created_at, again.replayed),
        (first.activity_id, 1, first.created_at, true)
    );

    // The server's rules come back typed.
    let no_sender = service.publish(Draft::message(conversation, "x")).await.unwrap_err();
    assert_eq!(no_sender.code(), Some(ErrorCode::ValidationFailed), "{no_sender}");
    let missing = service.publish(Draft::message(Uuid::now_v7(), "x").sender("bot")).await.unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::NotFound), "{missing}");

    // A frame over the server's limit is refused before it is sent.
    let huge = "x".repeat(service.welcome().max_frame as usize);
    let too_big = service.publish(Draft::message(conversation, huge).sender("bot")).await.unwrap_err();
    assert!(matches!(too_big, Error::InvalidArgument(_)), "{too_big}");
    assert_eq!(service.connections(), 1);

    // A token client writes as the token's sender.
    let user = env.token_client(conversation, "user-7").await;
    let w = user.publish(Draft::message(conversation, "from the user")).await.unwrap();
    assert_eq!(w.seq, 3);
    let spoofed = user.publish(Draft::message(conversation, "x").sender("someone-else")).await.unwrap_err();
    assert_eq!(spoofed.code(), Some(ErrorCode::Forbidden));
    let page = env.rest.list_activities(conversation, 0, 10).await.unwrap();
    assert_eq!(page.last_seq, 3);
    assert_eq!(page.data.iter().map(|a| a.sender.as_str()).collect::<Vec<_>>(), ["bot", "bot", "user-7"]);
    assert_eq!(page.data[1].metadata, serde_json::json!({"n": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_publishes_from_clones_are_in_flight_at_once() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let service = env.api_client().await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = service.clone();
            tokio::spawn(async move {
                client.publish(Draft::message(conversation, format!("m{i}")).sender("bot")).await.unwrap().seq
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(within("a publish", t).await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_fails_item_by_item() {
    let env = Env::start().await;
    let (a, b) = (env.conversation().await, env.conversation().await);
    let service = env.api_client().await;
    let items = service
        .publish_batch(vec![
            Draft::message(a, "a1").sender("bot"),
            Draft::message(Uuid::now_v7(), "lost").sender("bot"),
            Draft::message(b, "b1").sender("bot").idempotency_key("kb"),
            Draft::message(a, "").sender("bot").text(String::new()).metadata("[]"),
            Draft::message(a, "a2").sender("bot"),
            Draft::message(b, "b1 again").sender("bot").idempotency_key("kb"),
        ])
        .await
        .unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(items[0].as_ref().unwrap().seq, 1);
    assert_eq!(items[1].as_ref().unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(items[2].as_ref().unwrap().seq, 1);
    assert!(items[3].is_err(), "{:?}", items[3]);
    assert_eq!(items[4].as_ref().unwrap().seq, 2);
    let replay = items[5].as_ref().unwrap();
    assert_eq!((replay.seq, replay.replayed, replay.activity_id), (1, true, items[2].as_ref().unwrap().activity_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_the_channels_hook_rejects_is_a_typed_error_with_the_hooks_reason() {
    let env = Env::start().await;
    // Rejects "bad" ("no bad words"), rewrites "rude" to "[polite]", accepts the rest.
    let hook = converger_e2e::receiver::Receiver::pre_publish_hook(std::time::Duration::ZERO);
    let config = serde_json::json!({"pre_publish": {"url": hook.url("/hook"), "timeout_ms": 2000}});
    let channel = env.rest.create_channel("hooked", "websocket", config).await.expect("channel");
    let conversation = env.rest.create_conversation(channel.id, None, None).await.expect("conversation").id;
    let service = env.api_client().await;

    let refused = service.publish(Draft::message(conversation, "bad").sender("bot")).await.unwrap_err();
    match &refused {
        Error::Server(e) => {
            assert_eq!((e.code, e.number, e.message.as_str()), (ErrorCode::RejectedByHook, 4012, "no bad words"));
            assert!(!e.is_auth(), "the connection's credential is fine");
        }
        other => panic!("expected the server's rejected_by_hook, got {other:?}"),
    }
    // The connection goes on; the rejection took no seq; a rewrite is stored rewritten.
    let written = service.publish(Draft::message(conversation, "rude").sender("bot")).await.unwrap();
    assert_eq!(written.seq, 1);
    let items = service
        .publish_batch(vec![
            Draft::message(conversation, "bad").sender("bot"),
            Draft::message(conversation, "ok").sender("bot"),
        ])
        .await
        .unwrap();
    let failed = items[0].as_ref().unwrap_err();
    assert_eq!((failed.code, failed.message.as_str()), (ErrorCode::RejectedByHook, "no bad words"));
    assert_eq!(items[1].as_ref().unwrap().seq, 2);
    let page = env.rest.list_activities(conversation, 0, 10).await.unwrap();
    let texts: Vec<Option<&str>> = page.data.iter().map(|a| a.text.as_deref()).collect();
    assert_eq!(texts, [Some("[polite]"), Some("ok")]);
    assert_eq!(service.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_gets_the_backlog_then_the_live_stream_in_order() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let service = env.api_client().await;
    for i in 1..=5 {
        service.publish(Draft::message(conversation, format!("m{i}")).sender("bot")).await.unwrap();
    }
    let user = env.token_client(conversation, "user-1").await;
    let mut from_two = user.subscribe(conversation, 2).await.unwrap();
    let mut live = service.subscribe(conversation, LIVE_ONLY).await.unwrap();
    for i in 6..=10 {
        service.publish(Draft::message(conversation, format!("m{i}")).sender("bot")).await.unwrap();
    }
    for seq in 3..=10 {
        let a = next(&mut from_two).await;
        assert_eq!(
            (a.seq, a.text.as_deref(), a.conversation_id),
            (seq, Some(format!("m{seq}").as_str()), conversation)
        );
    }
    for seq in 6..=10 {
        assert_eq!(next(&mut live).await.seq, seq);
    }
    assert_eq!(from_two.last_seq(), Some(10));

    // Refusals are typed: a missing conversation, another conversation than
    // the token's, a second subscription to the same one.
    let missing = service.subscribe(Uuid::now_v7(), 0).await.unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::NotFound), "{missing}");
    let other = env.conversation().await;
    assert_eq!(user.subscribe(other, 0).await.unwrap_err().code(), Some(ErrorCode::Forbidden));
    assert_eq!(user.subscribe(conversation, 0).await.unwrap_err().code(), Some(ErrorCode::AlreadySubscribed));

    // Unsubscribing ends the stream; subscribing again starts anew.
    from_two.unsubscribe().await.unwrap();
    let mut again = user.subscribe(conversation, 9).await.unwrap();
    assert_eq!(next(&mut again).await.seq, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_a_range() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let service = env.api_client().await;
    let drafts = (1..=10).map(|i| Draft::message(conversation, format!("m{i}")).sender("bot")).collect();
    service.publish_batch(drafts).await.unwrap();

    let page = service.history(conversation, 3, Some(7), 100).await.unwrap();
    assert_eq!((page.conversation_id, page.last_seq), (conversation, 10));
    assert_eq!(page.activities.iter().map(|a| a.seq).collect::<Vec<_>>(), [4, 5, 6, 7]);
    let page = service.history(conversation, 8, None, 100).await.unwrap();
    assert_eq!(page.activities.iter().map(|a| a.seq).collect::<Vec<_>>(), [9, 10]);
    let page = service.history(conversation, 0, None, 2).await.unwrap();
    assert_eq!(page.activities.iter().map(|a| a.text.clone().unwrap()).collect::<Vec<_>>(), ["m1", "m2"]);
    let missing = service.history(Uuid::now_v7(), 0, None, 10).await.unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_other_client() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let alice = env.token_client(conversation, "alice").await;
    let bob = env.token_client(conversation, "bob").await;
    let mut alice_sub = alice.subscribe(conversation, LIVE_ONLY).await.unwrap();
    let mut bob_sub = bob.subscribe(conversation, LIVE_ONLY).await.unwrap();
    // The server drops ephemeral events for a subscription still reading its
    // backlog; once an activity has come through, both are live.
    alice.publish(Draft::message(conversation, "hi")).await.unwrap();
    assert_eq!(next(&mut alice_sub).await.seq, 1);
    assert_eq!(next(&mut bob_sub).await.seq, 1);
    let mut bob_events = bob.typing_events();

    alice.typing(conversation, true).await.unwrap();
    let event = within("alice typing", bob_events.next()).await.expect("event");
    assert_eq!((event.conversation_id, event.sender.as_str(), event.typing), (conversation, "alice", true));
    alice.typing(conversation, false).await.unwrap();
    let event = within("alice stopped", bob_events.next()).await.expect("event");
    assert_eq!((event.sender.as_str(), event.typing), ("alice", false));

    // An API-key client names the sender.
    let service = env.api_client().await;
    assert!(matches!(service.typing(conversation, true).await, Err(Error::InvalidArgument(_))));
    service.typing_as(conversation, "agent-3", true).await.unwrap();
    let event = within("the agent typing", bob_events.next()).await.expect("event");
    assert_eq!(event.sender, "agent-3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_reauth() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let user = env.token_client(conversation, "user-1").await;
    assert!(user.ping().await.unwrap() < common::WAIT);

    // A refreshed token is accepted; one for another conversation is not.
    let old = user.welcome();
    let token = env.rest.create_token(conversation, "user-1", Some(60)).await.unwrap().token;
    let fresh = env.rest.refresh_token(&token).await.unwrap();
    user.reauth(fresh.token).await.unwrap();
    let other = env.rest.create_token(env.conversation().await, "user-1", None).await.unwrap();
    assert_eq!(user.reauth(other.token).await.unwrap_err().code(), Some(ErrorCode::Forbidden));
    assert_eq!(user.reauth("garbage").await.unwrap_err().code(), Some(ErrorCode::Unauthorized));
    // The connection goes on; the new token is the one of later reconnects.
    user.reconnect();
    within("the reconnect", async {
        while user.connections() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(user.publish(Draft::message(conversation, "still here")).await.is_ok());
    assert_eq!(user.welcome().sender, old.sender);

    let service = env.api_client().await;
    assert_eq!(service.reauth(token).await.unwrap_err().code(), Some(ErrorCode::Forbidden));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_client_refuses_calls_and_ends_its_subscriptions() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let service = env.api_client().await;
    let mut sub = service.subscribe(conversation, 0).await.unwrap();
    let clone = service.clone();
    service.close().await;
    assert!(!clone.is_connected());
    assert!(matches!(clone.publish(Draft::message(conversation, "x").sender("bot")).await, Err(Error::Closed)));
    assert!(within("the end", sub.next()).await.is_none());
    assert!(sub.end_reason().is_none());
    let mut typing = clone.typing_events();
    assert!(typing.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_helpers_make_what_a_client_needs() {
    let env = Env::start().await;
    let conversation = env
        .rest
        .create_conversation(env.channel_id, Some(serde_json::json!({"topic": "billing"})), Some("ext-1"))
        .await
        .unwrap();
    assert_eq!((conversation.channel_id, conversation.last_seq), (env.channel_id, 0));
    assert_eq!(conversation.external_id.as_deref(), Some("ext-1"));
    let taken = env.rest.create_conversation(env.channel_id, None, Some("ext-1")).await.unwrap_err();
    assert_eq!(taken.code(), Some(ErrorCode::Conflict), "{taken}");
    let token = env.rest.create_token(conversation.id, "user-1", Some(120)).await.unwrap();
    assert_eq!(token.conversation_id, conversation.id);
    let missing = env.rest.list_activities(Uuid::now_v7(), 0, 10).await.unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::NotFound));
    let unknown = converger_client::Rest::new(&format!("http://{}", env.server.http_addr()), "cvg_nope").unwrap();
    assert_eq!(
        unknown.create_channel("x", "websocket", serde_json::json!({})).await.unwrap_err().code(),
        Some(ErrorCode::Unauthorized)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_ends_the_client_with_the_reason() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let token = env.rest.create_token(conversation, "user-1", Some(1)).await.unwrap().token;
    let user =
        Client::connect_with(env.server.binary_addr(), Credential::Token(token), common::options()).await.unwrap();
    let mut sub = user.subscribe(conversation, 0).await.unwrap();
    // The server closes the connection at the token's expiry; the client does
    // not come back with the same token.
    assert!(within("the expiry", sub.next()).await.is_none());
    assert_eq!(sub.end_reason().and_then(|e| e.code()), Some(ErrorCode::TokenExpired));
    let refused = user.publish(Draft::message(conversation, "late")).await.unwrap_err();
    assert!(matches!(refused, Error::Closed), "{refused}");
    assert_eq!(user.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_api_broadcasts_disconnects_and_ends_the_subscription_with_the_reason() {
    let env = Env::start().await;
    let (a, b) = (env.conversation().await, env.conversation().await);
    let activity = serde_json::json!({"sender": "bot", "text": "to both"});
    let results = env.rest.broadcast(&[a, b], activity.clone(), Some("news-1")).await.unwrap();
    assert_eq!(results.iter().map(|r| (r.conversation_id, r.status)).collect::<Vec<_>>(), [(a, 201), (b, 201)]);
    assert_eq!(results[0].activity.as_ref().and_then(|x| x.idempotency_key.clone()), Some(format!("news-1:{a}")));
    let again = env.rest.broadcast(&[a, b], activity, Some("news-1")).await.unwrap();
    assert!(again.iter().all(|r| r.status == 200), "a retry replays");
    let nowhere = [Uuid::now_v7()];
    let foreign = env.rest.broadcast(&nowhere, serde_json::json!({"sender": "s", "text": "x"}), None).await.unwrap();
    assert_eq!((foreign[0].status, foreign[0].error.as_ref().map(|e| e.code.as_str())), (404, Some("not_found")));

    let user = env.token_client(a, "user-1").await;
    let mut sub = user.subscribe(a, LIVE_ONLY).await.unwrap();
    assert_eq!(env.rest.disconnect(a, Some("user-1"), "bye").await.unwrap(), 1);
    assert!(within("the end", sub.next()).await.is_none());
    let reason = sub.end_reason().expect("a reason");
    assert_eq!(reason.code(), Some(ErrorCode::Disconnected), "{reason}");
    assert!(reason.to_string().contains("bye"), "{reason}");
    assert!(user.is_connected(), "the connection stays");
    assert!(env.rest.presence(a).await.unwrap().is_empty(), "binary clients take no part in presence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_default_pre_publish_hook_refuses_a_binary_publish_with_its_reason() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let hook = converger_e2e::receiver::Receiver::pre_publish_hook(std::time::Duration::ZERO);
    let tenant = env.rest.set_default_pre_publish(Some(serde_json::json!({"url": hook.url("/hook")}))).await.unwrap();
    assert_eq!(tenant["config"]["pre_publish"]["url"], hook.url("/hook"));
    assert_eq!(env.rest.tenant().await.unwrap()["config"], tenant["config"]);

    let client = env.api_client().await;
    let refused = client.publish(Draft::message(conversation, "bad").sender("svc")).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RejectedByHook), "{refused}");
    assert!(refused.to_string().contains("no bad words"), "{refused}");
    let rewritten = client.publish(Draft::message(conversation, "rude").sender("svc")).await.unwrap();
    assert_eq!(rewritten.seq, 1, "the refusal took no seq");

    env.rest.set_default_pre_publish(None).await.unwrap();
    assert_eq!(client.publish(Draft::message(conversation, "bad").sender("svc")).await.unwrap().seq, 2);
    assert_eq!(hook.requests().len(), 2, "no call once removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_with_the_tenants_own_key_connects_until_the_key_is_revoked() {
    use converger_e2e::jose::{claims, sign_hs256};
    let env = Env::start().await;
    let conversation = env.conversation().await;
    let key = env.rest.create_signing_key().await.unwrap();
    assert_eq!(key.kind, "HS256");
    let secret = key.secret.clone().expect("shown on create");
    let listed = env.rest.list_signing_keys().await.unwrap();
    assert_eq!(
        listed.iter().map(|k| (k.kid.as_str(), k.secret.is_none())).collect::<Vec<_>>(),
        [(key.kid.as_str(), true)]
    );
    // Signed here, as the tenant's backend would: the client takes it like an issued token.
    let mine = claims(&env.tenant_id.to_string(), &conversation.to_string(), "user-1", 600);
    let token = sign_hs256(&mine, &secret, &key.kid);
    let user = Client::connect_with(env.server.binary_addr(), Credential::Token(token.clone()), common::options())
        .await
        .expect("a tenant-signed token connects");
    assert_eq!(user.welcome().sender, "user-1");
    assert!(user.publish(Draft::message(conversation, "signed by the tenant")).await.is_ok());
    // Refresh is the signer's business.
    assert_eq!(env.rest.refresh_token(&token).await.unwrap_err().code(), Some(ErrorCode::Forbidden));
    env.rest.revoke_signing_key(&key.kid).await.unwrap();
    let refused = Client::connect_with(env.server.binary_addr(), Credential::Token(token), common::options()).await;
    assert_eq!(refused.err().and_then(|e| e.code()), Some(ErrorCode::Unauthorized));
    assert_eq!(env.rest.revoke_signing_key(&key.kid).await.unwrap_err().code(), Some(ErrorCode::NotFound));
    let jwks = env.rest.register_jwks("ftp://idp.example/jwks").await.unwrap_err();
    assert_eq!(jwks.code(), Some(ErrorCode::ValidationFailed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_endpoints_are_managed_and_their_events_listed() {
    let env = Env::start().await;
    let receiver = converger_e2e::receiver::Receiver::start(vec![200], "{}");
    let endpoint = env.rest.create_event_endpoint(&receiver.url("/events"), &["conversation.created"]).await.unwrap();
    assert!(endpoint.secret.as_deref().is_some_and(|s| s.starts_with("whsec_")), "{endpoint:?}");
    let listed = env.rest.list_event_endpoints().await.unwrap();
    assert_eq!(listed.iter().map(|e| (e.id, e.secret.is_none())).collect::<Vec<_>>(), [(endpoint.id, true)]);
    let conversation = env.conversation().await;
    let delivered = within("the event delivered", async {
        loop {
            let events = env.rest.list_events(Some("delivered"), 10).await.unwrap();
            if !events.is_empty() {
                break events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(delivered[0].kind, "conversation.created");
    assert_eq!(delivered[0].data["conversation_id"], conversation.to_string());
    assert_eq!(receiver.requests()[0].header("webhook-id"), Some(format!("msg_{}", delivered[0].id).as_str()));
    let changed = env.rest.update_event_endpoint(endpoint.id, None, Some(&["member.joined"])).await.unwrap();
    assert_eq!(changed.events, ["member.joined"]);
    let unknown = env.rest.create_event_endpoint(&receiver.url("/e"), &["user.away"]).await.unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::ValidationFailed));
    env.rest.delete_event_endpoint(endpoint.id).await.unwrap();
    assert!(env.rest.list_event_endpoints().await.unwrap().is_empty());
    assert_eq!(env.rest.delete_event_endpoint(endpoint.id).await.unwrap_err().code(), Some(ErrorCode::NotFound));
}
