//! The message lifecycle in `write_batch` (storage/src/lifecycle.rs): edits
//! replace what they carry, deletes erase a message's content everywhere
//! (its row, its edits, its reactions, its deliveries not yet sent), every
//! refusal is typed and writes nothing, items of one batch see each other,
//! and two writers racing on one message end in one consistent state.

use std::sync::Arc;

use converger_storage::{
    kinds, new_id, Activity, DeliveryFilter, DeliveryOutcome, DeliveryStatus, NewActivity, PageRequest, Refusal, Scope,
    Store, StoreError, Timestamp, Written, CANCELLED_BY_DELETE,
};

use crate::harness::{
    acting, all_activities, assert_refused, assert_write_refused, conversation, edit, json, message, message_by,
    reaction, read_one, reply, world, write, write_new, write_one,
};

const TARGET: Refusal = Refusal::TargetNotFound { field: "target_id" };
const PARENT: Refusal = Refusal::TargetNotFound { field: "parent_id" };

/// Text and attachments are replaced when the edit gives them, metadata when
/// it is a non-empty object; `edited_at` is the last edit's time. The edits
/// themselves stay in the log with what they carried.
pub async fn edits_replace_what_they_carry(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let original = NewActivity {
        attachments: Some(json(r#"[{"url": "https://x.test/a.png"}]"#)),
        metadata: json(r#"{"lang": "en"}"#),
        ..message_by(c, "alice", "first")
    };
    let m = write_new(s, original).await;
    assert_eq!(m.state.clone().unwrap_or_default(), Default::default(), "a fresh message has the default state");

    let t1 = Timestamp::from_micros(m.created_at.as_micros() + 1_000);
    let text_only = write_new(s, NewActivity { created_at: t1, ..edit(c, "alice", m.id, "second") }).await;
    assert_eq!((text_only.kind.as_str(), text_only.target_id), ("edit", Some(m.id)));
    assert!(text_only.state.is_none(), "only messages carry a state");
    let now = read_one(s, c.id, m.id).await;
    assert_eq!(now.text.as_deref(), Some("second"));
    assert_eq!(now.attachments, Some(json(r#"[{"url": "https://x.test/a.png"}]"#)), "attachments not given: kept");
    assert_eq!(now.metadata, json(r#"{"lang": "en"}"#), "metadata empty: kept");
    assert_eq!(now.state.as_ref().and_then(|st| st.edited_at), Some(t1));

    let t2 = Timestamp::from_micros(t1.as_micros() + 1_000);
    let meta_and_files = NewActivity {
        text: None,
        attachments: Some(json(r#"[{"url": "https://x.test/b.png"}, {"url": "https://x.test/c.png"}]"#)),
        metadata: json(r#"{"lang": "de", "v": 2}"#),
        created_at: t2,
        ..acting(c, "edit", "alice", m.id)
    };
    write_new(s, meta_and_files).await;
    let now = read_one(s, c.id, m.id).await;
    assert_eq!(now.text.as_deref(), Some("second"), "text not given: kept");
    assert_eq!(now.attachments, Some(json(r#"[{"url": "https://x.test/b.png"}, {"url": "https://x.test/c.png"}]"#)));
    assert_eq!(now.metadata, json(r#"{"lang": "de", "v": 2}"#), "non-empty metadata replaces, not merges");
    assert_eq!(now.state.as_ref().and_then(|st| st.edited_at), Some(t2), "edited_at is the last edit's");
    assert_eq!(s.get_activity(Scope::Tenant(w.tenant.id), m.id).await.expect("get"), now, "get_activity agrees");
    // Everything else of the message is as written.
    assert_eq!(
        (now.seq, now.sender.as_str(), now.created_at, now.kind.as_str()),
        (1, "alice", m.created_at, "message")
    );

    let log = all_activities(s, c.id).await;
    let kinds: Vec<_> = log.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["message", "edit", "edit"], "the edits are in the log, in seq order");
    assert_eq!(log[1].text.as_deref(), Some("second"), "an edit keeps what it carried");
    assert_eq!(log[2].metadata, json(r#"{"lang": "de", "v": 2}"#));
}

/// An edit or delete marked `author_only` (a client's) acts only on the
/// sender's own message; the API key's (not marked) on anyone's.
pub async fn only_the_author_edits_or_deletes_as_a_client(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let m = write_new(s, message_by(c, "alice", "mine")).await;
    for kind in ["edit", "delete"] {
        let mut by_bob = if kind == "edit" { edit(c, "bob", m.id, "hijack") } else { acting(c, kind, "bob", m.id) };
        by_bob.author_only = true;
        assert_write_refused(s, by_bob, Refusal::NotAuthor, &format!("bob's client {kind}s alice's message")).await;
    }
    assert_eq!(read_one(s, c.id, m.id).await.text.as_deref(), Some("mine"));
    let mut own = edit(c, "alice", m.id, "mine, edited");
    own.author_only = true;
    write_new(s, own).await;
    // The tenant's API key writes as any sender, here as "moderator".
    write_new(s, edit(c, "moderator", m.id, "moderated")).await;
    assert_eq!(read_one(s, c.id, m.id).await.text.as_deref(), Some("moderated"));
    // Reactions are anyone's to add, client or not.
    let mut react = reaction(c, true, "bob", m.id, "👍");
    react.author_only = true;
    write_new(s, react).await;
    let mut own_delete = acting(c, "delete", "alice", m.id);
    own_delete.author_only = true;
    write_new(s, own_delete).await;
    assert!(read_one(s, c.id, m.id).await.is_deleted());
}

/// A delete leaves a tombstone: the message's text, attachments and
/// metadata are gone from every read, so is the content of its edits; its
/// reactions are dropped; its pending deliveries and its edits' are failed
/// with `CANCELLED_BY_DELETE`, a delivery already sent stays delivered.
pub async fn delete_erases_the_content_everywhere(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let scope = Scope::Tenant(w.tenant.id);
    let delivered = |a: NewActivity| NewActivity { deliver_to: vec![w.channel.id], ..a };
    let m = write_new(
        s,
        delivered(NewActivity {
            attachments: Some(json(r#"[{"url": "https://x.test/secret.png"}]"#)),
            metadata: json(r#"{"secret": true}"#),
            ..message_by(c, "alice", "secret text")
        }),
    )
    .await;
    let keep = write_new(s, delivered(message_by(c, "bob", "unrelated"))).await;
    // The message's own delivery goes out before the delete; its edits' do not.
    let claimed = s.claim_deliveries(Timestamp::now().plus(std::time::Duration::from_secs(1)), 10, HOUR, 5).await;
    let first = claimed.expect("claim").into_iter().find(|d| d.activity_id == m.id).expect("m's delivery claimed");
    let at = Timestamp::now();
    s.complete_delivery(first.id, first.attempts, DeliveryOutcome::Delivered { at, metadata: None })
        .await
        .expect("deliver m");
    let e1 = write_new(s, delivered(edit(c, "alice", m.id, "secret edit"))).await;
    let e2 = write_new(
        s,
        delivered(NewActivity {
            metadata: json(r#"{"secret": "again"}"#),
            attachments: Some(json(r#"[{"url": "https://x.test/secret2.png"}]"#)),
            ..acting(c, "edit", "alice", m.id)
        }),
    )
    .await;
    write_new(s, reaction(c, true, "bob", m.id, "👍")).await;
    write_new(s, reaction(c, true, "carol", m.id, "🎉")).await;
    write_new(s, reaction(c, true, "bob", keep.id, "👍")).await;
    let delete_at = Timestamp::from_micros(Timestamp::now().as_micros() + 5);
    let d = write_new(s, delivered(NewActivity { created_at: delete_at, ..acting(c, "delete", "alice", m.id) })).await;
    assert_eq!((d.kind.as_str(), d.target_id, d.text.as_ref()), ("delete", Some(m.id), None));

    let tombstone = read_one(s, c.id, m.id).await;
    assert_eq!((tombstone.text.as_ref(), tombstone.attachments.as_ref()), (None, None), "{tombstone:?}");
    assert_eq!(tombstone.metadata, json("{}"));
    let state = tombstone.state.clone().expect("a message's state");
    assert_eq!(state.deleted_at, Some(delete_at));
    assert!(state.reactions.is_empty(), "its reactions are dropped: {:?}", state.reactions);
    assert_eq!((tombstone.id, tombstone.seq, tombstone.sender.as_str()), (m.id, m.seq, "alice"), "the tombstone stays");
    assert_eq!(s.get_activity(scope, m.id).await.expect("get"), tombstone, "get_activity shows the tombstone");
    for edit_id in [e1.id, e2.id] {
        let e = s.get_activity(scope, edit_id).await.expect("get the edit");
        assert_eq!((e.text.as_ref(), e.attachments.as_ref(), e.target_id), (None, None, Some(m.id)), "{e:?}");
        assert_eq!(e.metadata, json("{}"), "an edit's metadata is erased too");
        assert_eq!(read_one(s, c.id, edit_id).await, e);
    }
    let log = all_activities(s, c.id).await;
    let shown = serde_json::to_string(&log).expect("serialize the log");
    for secret in ["secret text", "secret edit", "secret.png", "secret2.png", "\"secret\"", "again"] {
        assert!(!shown.contains(secret), "{secret:?} still in the log: {shown}");
    }
    // The reactions stay in the log (emoji and who), the summary is gone.
    assert_eq!(log.iter().filter(|a| a.kind == "reaction_add").count(), 3);
    let kept = read_one(s, c.id, keep.id).await;
    assert_eq!(kept.text.as_deref(), Some("unrelated"), "another message is untouched");
    assert_eq!(kept.state.expect("state").reactions.len(), 1, "another message keeps its reactions");

    let deliveries = s.list_deliveries(scope, DeliveryFilter::default(), PageRequest::first(100)).await;
    for dl in deliveries.expect("list deliveries").items {
        let (status, error) = (dl.status, dl.last_error.as_deref());
        if dl.activity_id == m.id {
            assert_eq!((status, error), (DeliveryStatus::Delivered, None), "sent before the delete: stays delivered");
        } else if dl.activity_id == e1.id || dl.activity_id == e2.id {
            assert_eq!((status, error), (DeliveryStatus::Failed, Some(CANCELLED_BY_DELETE)), "an edit's delivery");
        } else {
            assert_eq!((status, error), (DeliveryStatus::Pending, None), "{dl:?}: not the deleted message's");
        }
    }
    assert_eq!(s.stats().await.expect("stats").deliveries_failed, 2);
}

/// A message's pending delivery (not yet sent) is cancelled by its delete.
pub async fn delete_cancels_the_pending_delivery_of_the_message(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let m = write_new(s, NewActivity { deliver_to: vec![w.channel.id], ..message(c, "never sent") }).await;
    let other = write_new(s, NewActivity { deliver_to: vec![w.channel.id], ..message(c, "sent") }).await;
    write_new(s, acting(c, "delete", "user-1", m.id)).await;
    let filter = |id| DeliveryFilter { activity_id: Some(id), ..Default::default() };
    let page = s.list_deliveries(Scope::Admin, filter(m.id), PageRequest::first(10)).await.expect("list");
    let d = &page.items[0];
    assert_eq!((d.status, d.last_error.as_deref()), (DeliveryStatus::Failed, Some(CANCELLED_BY_DELETE)));
    assert_eq!(d.attempts, 0, "cancelled, not attempted");
    let page = s.list_deliveries(Scope::Admin, filter(other.id), PageRequest::first(10)).await.expect("list");
    assert_eq!(page.items[0].status, DeliveryStatus::Pending, "another message's delivery stays pending");
    // A cancelled delivery is never claimed.
    let claimed = s.claim_deliveries(Timestamp::now().plus(HOUR), 10, HOUR, 5).await.expect("claim");
    assert_eq!(claimed.iter().map(|d| d.activity_id).collect::<Vec<_>>(), vec![other.id]);
}

/// `target_id` names no message of the conversation: missing, another
/// conversation's, another tenant's. Also for `parent_id`.
pub async fn a_target_outside_the_conversation_is_not_found(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let elsewhere = conversation(s, &w.channel).await;
    let theirs = world(s, "Globex").await;
    let m = write_new(s, message(c, "here")).await;
    let other_conv = write_new(s, message(&elsewhere, "there")).await;
    let other_tenant = write_new(s, message(&theirs.conversation, "theirs")).await;
    for (target, what) in
        [(new_id(), "a missing id"), (other_conv.id, "another conversation's"), (other_tenant.id, "another tenant's")]
    {
        for kind in ["edit", "delete", "reaction_add", "reaction_remove"] {
            let item = match kind {
                "edit" => edit(c, "user-1", target, "x"),
                "reaction_add" => reaction(c, true, "user-1", target, "👍"),
                "reaction_remove" => reaction(c, false, "user-1", target, "👍"),
                _ => acting(c, kind, "user-1", target),
            };
            assert_write_refused(s, item, TARGET, &format!("a {kind} of {what} message")).await;
        }
        assert_write_refused(s, reply(c, "user-1", target, "re"), PARENT, &format!("a reply to {what} message")).await;
    }
    assert_eq!(read_one(s, elsewhere.id, other_conv.id).await.text.as_deref(), Some("there"), "untouched");
    assert_eq!(read_one(s, theirs.conversation.id, other_tenant.id).await.text.as_deref(), Some("theirs"));
    assert_eq!(all_activities(s, c.id).await.len(), 1, "nothing written: {m:?} alone");
}

/// The target must be a message: not an event, an edit or a reaction. A
/// parent must be a message that is not itself a reply.
pub async fn a_target_that_is_not_a_message_is_refused(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let m = write_new(s, message(c, "root")).await;
    let event = write_new(s, NewActivity { kind: kinds::EVENT.into(), ..message(c, "ping") }).await;
    let e = write_new(s, edit(c, "user-1", m.id, "root, edited")).await;
    let r = write_new(s, reaction(c, true, "user-1", m.id, "👍")).await;
    let answer = write_new(s, reply(c, "user-2", m.id, "a reply")).await;
    let not_message = Refusal::TargetNotMessage { field: "target_id" };
    for (target, what) in [(event.id, "an event"), (e.id, "an edit"), (r.id, "a reaction")] {
        assert_write_refused(s, edit(c, "user-1", target, "x"), not_message, &format!("edit of {what}")).await;
        assert_write_refused(s, acting(c, "delete", "user-1", target), not_message, &format!("delete of {what}")).await;
        let add = reaction(c, true, "user-1", target, "🎉");
        assert_write_refused(s, add, not_message, &format!("reaction to {what}")).await;
        let not_parent = Refusal::TargetNotMessage { field: "parent_id" };
        assert_write_refused(s, reply(c, "u", target, "re"), not_parent, &format!("reply to {what}")).await;
    }
    // Threads are one level deep: a reply's reply is refused, a reply itself
    // may be edited and reacted to like any message.
    let nested = reply(c, "user-3", answer.id, "nested");
    assert_write_refused(s, nested, Refusal::TargetNotMessage { field: "parent_id" }, "a reply to a reply").await;
    write_new(s, edit(c, "user-2", answer.id, "a reply, edited")).await;
    write_new(s, reaction(c, true, "user-1", answer.id, "👍")).await;
    let root = read_one(s, c.id, m.id).await;
    assert_eq!(root.state.expect("state").reply_count, 1);
}

/// Nothing acts on a deleted message: no edit, second delete, reaction
/// either way, or reply.
pub async fn a_deleted_target_is_refused(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let m = write_new(s, message(c, "soon gone")).await;
    write_new(s, reaction(c, true, "bob", m.id, "👍")).await;
    write_new(s, acting(c, "delete", "user-1", m.id)).await;
    let deleted = Refusal::TargetDeleted { field: "target_id" };
    assert_write_refused(s, edit(c, "user-1", m.id, "back?"), deleted, "edit of a deleted message").await;
    assert_write_refused(s, acting(c, "delete", "user-1", m.id), deleted, "a second delete").await;
    assert_write_refused(s, reaction(c, true, "bob", m.id, "🎉"), deleted, "a reaction to a deleted message").await;
    assert_write_refused(s, reaction(c, false, "bob", m.id, "👍"), deleted, "taking back a dropped reaction").await;
    let reply_deleted = Refusal::TargetDeleted { field: "parent_id" };
    assert_write_refused(s, reply(c, "bob", m.id, "re"), reply_deleted, "a reply to a deleted message").await;
}

/// The refusals of one batch fail alone: the good items around them commit
/// with gap-free seqs.
pub async fn a_refused_item_fails_alone_in_its_batch(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let m = write_new(s, message_by(c, "alice", "hi")).await;
    let mut not_author = edit(c, "bob", m.id, "x");
    not_author.author_only = true;
    let batch = vec![
        message(c, "one"),
        edit(c, "alice", new_id(), "nowhere"),
        reaction(c, false, "bob", m.id, "👍"),
        not_author,
        reaction(c, true, "bob", m.id, "👍"),
        message(c, "two"),
    ];
    let results = write(s, batch).await;
    let seqs: Vec<_> = results.iter().map(|r| r.as_ref().ok().map(|w| w.activity().seq)).collect();
    assert_eq!(seqs, vec![Some(2), None, None, None, Some(3), Some(4)]);
    assert_refused(&results[1], TARGET, "edit of a missing message");
    assert_refused(&results[2], Refusal::ReactionNotFound, "remove of a reaction never added");
    assert_refused(&results[3], Refusal::NotAuthor, "bob's client edit");
    assert_eq!(all_activities(s, c.id).await.iter().map(|a| a.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
}

/// Items of one batch see the ones before them: a message written in the
/// batch is edited, reacted to, replied to and deleted by later items, and
/// an item after the delete is refused.
pub async fn items_of_one_batch_see_each_other(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let m = message_by(c, "alice", "draft");
    let keep = message_by(c, "alice", "kept");
    let batch = vec![
        m.clone(),
        edit(c, "alice", m.id, "final"),
        reaction(c, true, "bob", m.id, "👍"),
        reaction(c, true, "bob", m.id, "👍"),
        keep.clone(),
        reply(c, "bob", keep.id, "re: kept"),
        edit(c, "alice", keep.id, "kept, edited"),
        reaction(c, true, "carol", keep.id, "🎉"),
        reaction(c, true, "dave", keep.id, "🎉"),
        reaction(c, true, "dave", keep.id, "👀"),
        reaction(c, false, "dave", keep.id, "👀"),
        acting(c, "delete", "alice", m.id),
        edit(c, "alice", m.id, "too late"),
    ];
    let results = write(s, batch).await;
    let first_reaction = results[2].as_ref().expect("reaction").clone();
    match &results[3] {
        Ok(Written::Replay(a)) => {
            assert_eq!(a, first_reaction.activity(), "a second add in the batch replays the first")
        }
        other => panic!("a repeated reaction in one batch: expected a replay, got {other:?}"),
    }
    assert_refused(&results[12], Refusal::TargetDeleted { field: "target_id" }, "an edit after the delete");
    let seqs: Vec<_> = results.iter().map(|r| r.as_ref().ok().map(|w| w.activity().seq)).collect();
    let expected_seqs = [Some(1), Some(2), Some(3), Some(3), Some(4), Some(5), Some(6), Some(7), Some(8), Some(9)];
    assert_eq!(seqs[..10], expected_seqs, "a replay takes no seq");
    assert_eq!(seqs[10..], [Some(10), Some(11), None]);

    let read = all_activities(s, c.id).await;
    assert_eq!(read.len(), 11);
    let deleted = &read[0];
    assert!(deleted.is_deleted() && deleted.text.is_none(), "{deleted:?}");
    assert_eq!(read[1].text, None, "the batch's own edit of the deleted message is erased too");
    let kept = read.iter().find(|a| a.id == keep.id).expect("kept");
    assert_eq!(kept.text.as_deref(), Some("kept, edited"));
    let state = kept.state.clone().expect("state");
    assert_eq!(state.reply_count, 1);
    assert!(state.edited_at.is_some());
    let summary: Vec<_> = state.reactions.iter().map(|r| (r.emoji.as_str(), r.count)).collect();
    assert_eq!(summary, [("🎉", 2)], "added and taken back in the batch: 👀 is not there");
}

/// Two writers race on one message, one editing and one deleting it, in
/// separate transactions (on PostgreSQL, separate connections): either the
/// edit commits first and the delete erases it, or the delete commits first
/// and the edit is refused. Never a deleted message with a visible edit.
pub async fn racing_edit_and_delete_end_consistent(store: Arc<dyn Store>) {
    const ROUNDS: usize = 25;
    let w = world(&*store, "Acme").await;
    let c = Arc::new(w.conversation.clone());
    let (mut edit_first, mut delete_first) = (0, 0);
    for round in 0..ROUNDS {
        let m = write_new(&*store, message_by(&c, "alice", &format!("round {round}"))).await;
        write_new(&*store, reaction(&c, true, "bob", m.id, "👍")).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let spawn = |item: NewActivity| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.write_batch(vec![item]).await.expect("write_batch").pop().expect("one result")
            })
        };
        let editing = spawn(edit(&c, "alice", m.id, &format!("edited {round}")));
        let reacting = spawn(reaction(&c, true, "carol", m.id, "🎉"));
        let deleting = spawn(acting(&c, "delete", "alice", m.id));
        let (edited, reacted, deleted) =
            (editing.await.expect("edit task"), reacting.await.expect("react task"), deleting.await.expect("delete"));
        let deleted = deleted.expect("the delete always commits").into_activity();
        for (answer, what) in [(&edited, "edit"), (&reacted, "reaction")] {
            match answer {
                Ok(a) => {
                    assert!(a.activity().seq < deleted.seq, "round {round}: a {what} committed after the delete");
                }
                Err(e) => assert!(
                    matches!(e, StoreError::Refused(Refusal::TargetDeleted { field: "target_id" })),
                    "round {round}: a {what} that lost to the delete: {e:?}"
                ),
            }
        }
        if edited.is_ok() {
            edit_first += 1;
        } else {
            delete_first += 1;
        }
        let log = all_activities(&*store, c.id).await;
        let tombstone = log.iter().find(|a| a.id == m.id).expect("the message");
        assert!(tombstone.is_deleted() && tombstone.text.is_none(), "round {round}: {tombstone:?}");
        assert!(tombstone.state.as_ref().is_some_and(|s| s.reactions.is_empty()), "round {round}: reactions dropped");
        let edited_text = format!("edited {round}");
        let leaked: Vec<&Activity> = log.iter().filter(|a| a.text.as_deref() == Some(&edited_text)).collect();
        assert!(leaked.is_empty(), "round {round}: the edit's content is visible after the delete: {leaked:?}");
        let seqs: Vec<i64> = log.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, (1..=log.len() as i64).collect::<Vec<_>>(), "round {round}: seq stays gap-free");
    }
    eprintln!("racing_edit_and_delete_end_consistent: edit first {edit_first}, delete first {delete_first}");
}

/// A replay of an idempotency key wins over the lifecycle rules: a delete
/// retried after it committed answers the original, not `TargetDeleted`.
pub async fn a_retried_delete_replays_its_key(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let m = write_new(s, message(c, "bye")).await;
    let delete = NewActivity { idempotency_key: Some("del-1".into()), ..acting(c, "delete", "user-1", m.id) };
    let first = write_new(s, delete.clone()).await;
    match write_one(s, NewActivity { id: new_id(), ..delete }).await {
        Written::Replay(a) => assert_eq!(a, first),
        other => panic!("a retried delete: expected a replay, got {other:?}"),
    }
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
