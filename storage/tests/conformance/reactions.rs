//! Reactions and replies: one emoji per sender per message at most once (a
//! repeated add is a replay of the first and writes nothing), summaries per
//! emoji in one order with `me` for a reader, taking a reaction back; replies
//! counted on their parent and listed by `read_replies` in seq order.

use std::sync::Arc;

use converger_storage::{new_id, Entity, Id, NewActivity, ReactionCount, Refusal, Scope, Store, Timestamp, Written};

use crate::harness::{
    acting, all_activities, assert_not_found, assert_write_refused, conversation, edit, message, message_by, reaction,
    read_one, reply, world, write_new, write_one,
};

fn counts(summary: &[ReactionCount]) -> Vec<(&str, i64, bool)> {
    summary.iter().map(|r| (r.emoji.as_str(), r.count, r.me)).collect()
}

/// The summary of message `id` as `reader` reads the conversation.
async fn summary(
    store: &dyn Store,
    scope: Scope,
    conversation: Id,
    id: Id,
    reader: Option<&str>,
) -> Vec<ReactionCount> {
    let page = store.read_range(scope, conversation, 0, 1000, reader).await.expect("read_range");
    let m = page.into_iter().find(|a| a.id == id).expect("the message");
    m.state.expect("a message's state").reactions
}

/// A second `reaction_add` of the same emoji by the same sender answers
/// `Written::Replay` of the first and writes nothing, in a later batch or
/// the same one; another emoji or another sender is a new reaction.
pub async fn a_repeated_reaction_replays_the_first(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let m = write_new(s, message(c, "react to me")).await;
    let first = write_new(s, reaction(c, true, "bob", m.id, "👍")).await;
    assert_eq!((first.kind.as_str(), first.text.as_deref(), first.target_id), ("reaction_add", Some("👍"), Some(m.id)));
    let again = reaction(c, true, "bob", m.id, "👍");
    let again_id = again.id;
    match write_one(s, NewActivity { created_at: Timestamp::now(), ..again }).await {
        Written::Replay(a) => assert_eq!(a, first, "the replay is the first reaction"),
        Written::New(a) => panic!("a repeated reaction wrote seq {}", a.seq),
    }
    assert!(s.get_activity(Scope::Admin, again_id).await.is_err(), "the repeat was not stored");
    assert_eq!(s.get_conversation(Scope::Admin, c.id).await.expect("get").last_seq, 2, "nothing written");
    let scope = Scope::Tenant(w.tenant.id);
    assert_eq!(counts(&summary(s, scope, c.id, m.id, Some("bob")).await), [("👍", 1, true)]);

    write_new(s, reaction(c, true, "bob", m.id, "🎉")).await;
    write_new(s, reaction(c, true, "carol", m.id, "👍")).await;
    assert_eq!(counts(&summary(s, scope, c.id, m.id, None).await), [("👍", 2, false), ("🎉", 1, false)]);
    // Taken back, it may be added again: a new activity, counted once.
    write_new(s, reaction(c, false, "bob", m.id, "👍")).await;
    // A tie is ordered by emoji: 🎉 (U+1F389) before 👍 (U+1F44D).
    assert_eq!(counts(&summary(s, scope, c.id, m.id, Some("bob")).await), [("🎉", 1, true), ("👍", 1, false)]);
    let back = write_new(s, reaction(c, true, "bob", m.id, "👍")).await;
    assert_ne!(back.id, first.id);
    match write_one(s, reaction(c, true, "bob", m.id, "👍")).await {
        Written::Replay(a) => assert_eq!(a.id, back.id, "now the replay is of the new add"),
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_eq!(counts(&summary(s, scope, c.id, m.id, Some("bob")).await), [("👍", 2, true), ("🎉", 1, true)]);
}

/// Taking back a reaction the sender does not have is refused: never added,
/// another emoji, another sender's, already taken back.
pub async fn removing_a_reaction_not_there_is_refused(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let m = write_new(s, message(c, "m")).await;
    let none = Refusal::ReactionNotFound;
    assert_write_refused(s, reaction(c, false, "bob", m.id, "👍"), none, "never added").await;
    write_new(s, reaction(c, true, "bob", m.id, "👍")).await;
    assert_write_refused(s, reaction(c, false, "bob", m.id, "🎉"), none, "another emoji").await;
    assert_write_refused(s, reaction(c, false, "carol", m.id, "👍"), none, "another sender's").await;
    write_new(s, reaction(c, false, "bob", m.id, "👍")).await;
    assert_write_refused(s, reaction(c, false, "bob", m.id, "👍"), none, "already taken back").await;
    assert!(read_one(s, c.id, m.id).await.state.expect("state").reactions.is_empty());
}

/// One entry per emoji, most used first, ties by emoji; `me` is whether the
/// reader is among the senders, false for every entry without a reader.
pub async fn reaction_summaries_count_per_emoji_in_one_order(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let scope = Scope::Tenant(w.tenant.id);
    let m = write_new(s, message(c, "popular")).await;
    let other = write_new(s, message(c, "quiet")).await;
    let plan = [("a", "🎉"), ("b", "🎉"), ("c", "🎉"), ("a", "👍"), ("b", "👍"), ("c", "❤"), ("d", "🙂"), ("d", "❤")];
    for (sender, emoji) in plan {
        write_new(s, reaction(c, true, sender, m.id, emoji)).await;
    }
    write_new(s, reaction(c, true, "z", other.id, "👍")).await;
    // 🎉 3; ❤ 2 and 👍 2 (ties by emoji: "❤" U+2764 sorts before "👍"); 🙂 1.
    let none = summary(s, scope, c.id, m.id, None).await;
    assert_eq!(counts(&none), [("🎉", 3, false), ("❤", 2, false), ("👍", 2, false), ("🙂", 1, false)]);
    let as_d = summary(s, scope, c.id, m.id, Some("d")).await;
    assert_eq!(counts(&as_d), [("🎉", 3, false), ("❤", 2, true), ("👍", 2, false), ("🙂", 1, true)]);
    let as_stranger = summary(s, scope, c.id, m.id, Some("nobody")).await;
    assert!(as_stranger.iter().all(|r| !r.me), "{as_stranger:?}");
    assert_eq!(counts(&summary(s, scope, c.id, other.id, Some("z")).await), [("👍", 1, true)], "per message");
    let mut sorted = none.clone();
    ReactionCount::sort(&mut sorted);
    assert_eq!(sorted, none, "the order ReactionCount::sort gives");
    // Emoji are compared as given: another spelling is another emoji.
    write_new(s, reaction(c, true, "a", m.id, ":tada:")).await;
    let with_code = summary(s, scope, c.id, m.id, None).await;
    assert_eq!(with_code.iter().find(|r| r.emoji == ":tada:").map(|r| r.count), Some(1));
    // A page that starts after the message still gives its summary when it holds it.
    let page = s.read_range(scope, c.id, m.seq - 1, 1, Some("d")).await.expect("read_range");
    assert_eq!(page[0].id, m.id);
    assert_eq!(page[0].state.as_ref().expect("state").reactions.len(), 5);
}

/// A reply names its parent; the parent counts its replies; `read_replies`
/// lists the thread in seq order after a watermark, with the replies'
/// current state. Threads are one level deep.
pub async fn replies_form_one_level_threads(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let scope = Scope::Tenant(w.tenant.id);
    let root = write_new(s, message_by(c, "alice", "root")).await;
    let other_root = write_new(s, message(c, "another root")).await;
    let mut thread = Vec::new();
    for i in 0..5 {
        let target = if i == 2 { other_root.id } else { root.id };
        let r = write_new(s, reply(c, &format!("user-{i}"), target, &format!("reply {i}"))).await;
        assert_eq!(r.parent_id, Some(target));
        assert_eq!(r.state.as_ref().map(|st| st.reply_count), Some(0), "a reply is a message");
        if target == root.id {
            thread.push(r);
        }
        write_new(s, message(c, &format!("noise {i}"))).await;
    }
    assert_eq!(read_one(s, c.id, root.id).await.state.expect("state").reply_count, 4);
    assert_eq!(read_one(s, c.id, other_root.id).await.state.expect("state").reply_count, 1);

    let listed = s.read_replies(scope, c.id, root.id, 0, 100, None).await.expect("read_replies");
    let texts: Vec<_> = listed.iter().map(|a| a.text.clone().unwrap_or_default()).collect();
    assert_eq!(texts, ["reply 0", "reply 1", "reply 3", "reply 4"], "in seq order, only this thread");
    assert!(listed.windows(2).all(|p| p[0].seq < p[1].seq));
    let after = s.read_replies(scope, c.id, root.id, thread[1].seq, 1, None).await.expect("after a watermark");
    assert_eq!(after.iter().map(|a| a.id).collect::<Vec<_>>(), [thread[2].id], "after_seq and limit");
    assert!(s.read_replies(scope, c.id, other_root.id, 10_000, 10, None).await.expect("past the end").is_empty());

    // The replies in their current state, `me` for a reader.
    write_new(s, edit(c, "user-0", thread[0].id, "reply 0, edited")).await;
    write_new(s, reaction(c, true, "alice", thread[1].id, "👍")).await;
    write_new(s, acting(c, "delete", "user-3", thread[2].id)).await;
    let listed = s.read_replies(scope, c.id, root.id, 0, 100, Some("alice")).await.expect("read_replies");
    assert_eq!(listed[0].text.as_deref(), Some("reply 0, edited"));
    assert!(listed[0].state.as_ref().is_some_and(|st| st.edited_at.is_some()));
    let r1 = listed[1].state.clone().expect("state").reactions;
    assert_eq!(counts(&r1), [("👍", 1, true)]);
    assert!(listed[2].is_deleted() && listed[2].text.is_none(), "a deleted reply is a tombstone in its thread");
    let range = s.read_range(scope, c.id, 0, 1000, Some("alice")).await.expect("read_range");
    for a in &listed {
        assert_eq!(Some(a), range.iter().find(|r| r.id == a.id), "a reply reads as read_range shows it");
    }
    // The count is of replies written: a deleted reply still counts.
    assert_eq!(read_one(s, c.id, root.id).await.state.expect("state").reply_count, 4);

    // No thread without a message of the conversation for its parent.
    let elsewhere = conversation(s, &w.channel).await;
    let foreign = write_new(s, message(&elsewhere, "elsewhere")).await;
    assert_not_found(s.read_replies(scope, c.id, new_id(), 0, 10, None).await, Entity::Activity, "a missing parent");
    assert_not_found(s.read_replies(scope, c.id, foreign.id, 0, 10, None).await, Entity::Activity, "another conv's");
    let e = all_activities(s, c.id).await.into_iter().find(|a| a.kind == "edit").expect("an edit");
    assert_not_found(s.read_replies(scope, c.id, e.id, 0, 10, None).await, Entity::Activity, "an edit as parent");
    let theirs = world(s, "Globex").await;
    let as_them = Scope::Tenant(theirs.tenant.id);
    assert!(s.read_replies(as_them, c.id, root.id, 0, 10, None).await.is_err(), "another tenant reads no thread");
    let nested = reply(c, "x", thread[0].id, "nested");
    assert_write_refused(s, nested, Refusal::TargetNotMessage { field: "parent_id" }, "a reply to a reply").await;
}
