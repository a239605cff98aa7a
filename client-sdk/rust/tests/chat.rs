//! The chat methods against the real server (protocol version 2): edits,
//! deletes, reactions and replies as activities naming their message, each
//! message's state in History, receipts and users online as member events.

mod common;

use common::{next, within, Env};
use converger_client::{Draft, Edit, ErrorCode, MemberEvent, PresenceEvent, ReceiptEvent, LIVE_ONLY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reactions_replies_and_deletes_travel_as_activities_and_show_in_the_state() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    for member in ["alice", "bob"] {
        env.rest.add_member(conversation, member, None).await.unwrap();
    }
    let alice = env.token_client(conversation, "alice").await;
    let bob = env.token_client(conversation, "bob").await;
    assert_eq!(alice.welcome().version, 3, "the SDK and the server both speak version 3");
    let mut bob_sub = bob.subscribe(conversation, 0).await.unwrap();
    assert_eq!(next(&mut bob_sub).await.kind, "member_joined");
    assert_eq!(next(&mut bob_sub).await.kind, "member_joined");

    let hello = alice.publish(Draft::message(conversation, "hello")).await.unwrap();
    let delivered = next(&mut bob_sub).await;
    assert_eq!((delivered.id, delivered.state.clone()), (hello.activity_id, Some(Default::default())));

    let edit = alice.edit(conversation, hello.activity_id, Edit::text("hello, world")).await.unwrap();
    bob.react(conversation, hello.activity_id, "👍").await.unwrap();
    alice.react(conversation, hello.activity_id, "👍").await.unwrap();
    alice.react(conversation, hello.activity_id, "🎉").await.unwrap();
    alice.unreact(conversation, hello.activity_id, "🎉").await.unwrap();
    let reply = bob.reply(conversation, hello.activity_id, Draft::message(conversation, "hi alice")).await.unwrap();

    // Each is an activity naming its message, in seq order.
    let seen: Vec<_> = futures_collect(&mut bob_sub, 6).await;
    let kinds: Vec<(&str, Option<_>, Option<_>)> =
        seen.iter().map(|a| (a.kind.as_str(), a.target_id, a.parent_id)).collect();
    let m = Some(hello.activity_id);
    assert_eq!(
        kinds,
        [
            ("edit", m, None),
            ("reaction_add", m, None),
            ("reaction_add", m, None),
            ("reaction_add", m, None),
            ("reaction_remove", m, None),
            ("message", None, m),
        ]
    );
    assert_eq!((seen[0].seq, seen[0].text.as_deref()), (edit.seq, Some("hello, world")));
    assert_eq!((seen[5].id, seen[5].sender.as_str()), (reply.activity_id, "bob"));

    // History gives the message as it is now; `me` is the reader's.
    let page = bob.history(conversation, hello.seq - 1, Some(hello.seq), 1).await.unwrap();
    let message = &page.activities[0];
    let state = message.state.clone().expect("a message has a state");
    assert_eq!(message.text.as_deref(), Some("hello, world"));
    assert!(state.edited_at.is_some() && state.deleted_at.is_none(), "{state:?}");
    assert_eq!(state.reply_count, 1);
    assert_eq!(
        state.reactions.iter().map(|r| (r.emoji.as_str(), r.count, r.me)).collect::<Vec<_>>(),
        [("👍", 2, true)]
    );

    // A token client edits and deletes only its own messages.
    let refused = bob.delete(conversation, hello.activity_id).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotAuthor), "{refused}");
    alice.delete(conversation, hello.activity_id).await.unwrap();
    let page = alice.history(conversation, hello.seq - 1, Some(hello.seq), 1).await.unwrap();
    let message = &page.activities[0];
    assert!(message.state.as_ref().is_some_and(|s| s.deleted_at.is_some()), "{message:?}");
    assert_eq!((message.text.as_deref(), message.attachments.as_deref()), (None, None));
    let gone = alice.react(conversation, hello.activity_id, "👍").await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::TargetDeleted), "{gone}");

    // An API-key client names the sender on the same drafts.
    let service = env.api_client().await;
    let note = service.publish(Draft::message(conversation, "note").sender("bot")).await.unwrap();
    service
        .publish(Draft::edit(conversation, note.activity_id, Edit::text("note, edited")).sender("bot"))
        .await
        .unwrap();
    service.publish(Draft::reaction(conversation, note.activity_id, "👀", true).sender("bot")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_and_users_online_reach_the_members_subscribers() {
    let env = Env::start().await;
    let conversation = env.conversation().await;
    for member in ["alice", "bob", "carol"] {
        env.rest.add_member(conversation, member, None).await.unwrap();
    }
    let alice = env.token_client(conversation, "alice").await;
    let bob = env.token_client(conversation, "bob").await;
    let mut bob_sub = bob.subscribe(conversation, LIVE_ONLY).await.unwrap();
    // Once an activity has come through, the subscription is live.
    let m = alice.publish(Draft::message(conversation, "read me")).await.unwrap();
    assert_eq!(next(&mut bob_sub).await.seq, m.seq);
    let mut events = bob.member_events();

    alice.mark_read(conversation, m.seq).await.unwrap();
    let receipt = within("alice's receipt", next_receipt(&mut events)).await;
    // What was read was delivered too.
    assert_eq!(
        receipt,
        ReceiptEvent { conversation_id: conversation, sender: "alice".into(), read_seq: m.seq, delivered_seq: m.seq }
    );
    // A watermark never moves back: acknowledged, nothing changes.
    alice.mark_read(conversation, 1).await.unwrap();
    let m2 = bob.publish(Draft::message(conversation, "and me")).await.unwrap();
    alice.mark_delivered(conversation, m2.seq).await.unwrap();
    let receipt = within("alice's delivered receipt", next_receipt(&mut events)).await;
    assert_eq!((receipt.read_seq, receipt.delivered_seq), (m.seq, m2.seq));
    let member = env.rest.member(conversation, "alice").await.unwrap();
    assert_eq!((member.read_seq, member.delivered_seq, member.unread_count), (m.seq, m2.seq, 1));
    // Someone else's receipts are not a token's to move.
    let refused = alice
        .receipt(
            conversation,
            converger_client::Receipt { read_seq: Some(1), sender: "bob".into(), ..Default::default() },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused}");

    // Carol connects: she is online for the conversations she is a member of.
    let carol = env.token_client(conversation, "carol").await;
    let online = within("carol online", async {
        loop {
            match events.next().await.expect("events") {
                MemberEvent::Presence(p) if p.sender == "carol" => return p,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(
        online,
        PresenceEvent { conversation_id: conversation, sender: "carol".into(), online: true, last_seen: None }
    );
    carol.close().await;
}

/// The next receipt event (presence events are skipped).
async fn next_receipt(events: &mut converger_client::MemberEvents) -> ReceiptEvent {
    loop {
        if let MemberEvent::Receipt(r) = events.next().await.expect("events") {
            return r;
        }
    }
}

/// The next `n` activities of `sub`.
async fn futures_collect(sub: &mut converger_client::Subscription, n: usize) -> Vec<converger_client::Activity> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next(sub).await);
    }
    out
}
