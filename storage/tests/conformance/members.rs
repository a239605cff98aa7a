//! Members: joined and left through `write_batch` (`member_joined` /
//! `member_left` activities carrying a `MemberChange`), read one by one and
//! paged, with receipts that never move back (read drags delivered along),
//! unread counts, last seen, and the conversations a sender is a member of.
//! Also `members_only` on conversations and `update_conversation`.

use std::sync::Arc;

use converger_storage::{
    ConversationPatch, Entity, Id, Member, NewConversation, PageRequest, Receipts, Refusal, Scope, Store, StoreError,
    Timestamp,
};

use crate::harness::{
    acting, assert_not_found, assert_write_refused, conversation, join, json, leave, message_by, new_conversation,
    page_ids, world, write_new,
};

async fn member(store: &dyn Store, scope: Scope, conversation: Id, sender: &str) -> Member {
    store.get_member(scope, conversation, sender).await.unwrap_or_else(|e| panic!("get member {sender}: {e}"))
}

fn receipts(read: Option<i64>, delivered: Option<i64>) -> Receipts {
    Receipts { read_seq: read, delivered_seq: delivered }
}

/// A join writes its activity and the member in one transaction; joining
/// again replaces role and metadata and keeps the rest; leaving removes it;
/// leaving when not a member is refused.
pub async fn members_join_and_leave_through_the_log(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let scope = Scope::Tenant(w.tenant.id);
    assert_not_found(s.get_member(scope, c.id, "alice").await, Entity::Member, "before joining");
    let joined_at = Timestamp::from_micros(1_700_000_000_000_000);
    let j = write_new(
        s,
        converger_storage::NewActivity {
            created_at: joined_at,
            ..join(c, "alice", Some("agent"), r#"{"team": "red"}"#)
        },
    )
    .await;
    assert_eq!((j.kind.as_str(), j.sender.as_str(), j.seq), ("member_joined", "alice", 1));
    assert!(j.state.is_none(), "a member activity is not a message");
    let alice = member(s, scope, c.id, "alice").await;
    assert_eq!((alice.conversation_id, alice.tenant_id, alice.sender.as_str()), (c.id, w.tenant.id, "alice"));
    assert_eq!((alice.role.as_deref(), &alice.metadata), (Some("agent"), &json(r#"{"team": "red"}"#)));
    assert_eq!((alice.joined_at, alice.read_seq, alice.delivered_seq), (joined_at, 0, 0));
    assert_eq!((alice.unread_count, alice.last_seen), (0, None));

    write_new(s, message_by(c, "bob", "hello")).await;
    s.update_receipts(scope, c.id, "alice", receipts(Some(2), None)).await.expect("read");
    let again = write_new(s, join(c, "alice", None, r#"{"team": "blue"}"#)).await;
    assert_eq!(again.seq, 3, "joining again is logged too");
    let alice2 = member(s, scope, c.id, "alice").await;
    assert_eq!((alice2.role.as_deref(), &alice2.metadata), (None, &json(r#"{"team": "blue"}"#)), "replaced");
    assert_eq!((alice2.id, alice2.joined_at, alice2.read_seq), (alice.id, joined_at, 2), "the rest is kept");

    let left = write_new(s, leave(c, "alice")).await;
    assert_eq!((left.kind.as_str(), left.seq), ("member_left", 4));
    assert_not_found(s.get_member(scope, c.id, "alice").await, Entity::Member, "after leaving");
    assert_write_refused(s, leave(c, "alice"), Refusal::NotMember, "leaving twice").await;
    assert_write_refused(s, leave(c, "nobody"), Refusal::NotMember, "leaving, never a member").await;
    // Rejoining starts afresh.
    write_new(s, join(c, "alice", None, "{}")).await;
    let fresh = member(s, scope, c.id, "alice").await;
    assert_eq!((fresh.read_seq, fresh.delivered_seq), (0, 0));
    assert_ne!(fresh.id, alice.id);
    // Within one batch: join, leave, join again — the last one stands.
    let results = crate::harness::write(
        s,
        vec![
            join(c, "carol", Some("a"), "{}"),
            leave(c, "carol"),
            leave(c, "carol"),
            join(c, "carol", Some("b"), "{}"),
        ],
    )
    .await;
    assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok(), "{results:?}");
    crate::harness::assert_refused(&results[2], Refusal::NotMember, "leaving twice in one batch");
    assert_eq!(member(s, scope, c.id, "carol").await.role.as_deref(), Some("b"));
    let theirs = world(s, "Globex").await;
    let as_them = Scope::Tenant(theirs.tenant.id);
    assert_not_found(s.get_member(as_them, c.id, "carol").await, Entity::Member, "another tenant's member");
    assert_eq!(member(s, Scope::Admin, c.id, "carol").await.sender, "carol", "the admin sees it");
}

/// Members page by first join, `next` until the last page; another
/// tenant's conversation is not found.
pub async fn members_are_listed_in_pages(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let scope = Scope::Tenant(w.tenant.id);
    let senders: Vec<String> = (0..7).map(|i| format!("user-{i}")).collect();
    for sender in &senders {
        write_new(s, join(c, sender, None, "{}")).await;
    }
    // Someone in another conversation is not listed here.
    let elsewhere = conversation(s, &w.channel).await;
    write_new(s, join(&elsewhere, "stranger", None, "{}")).await;
    let pages = page_ids(3, |page| s.list_members(scope, c.id, page), |m| m.id).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let all = s.list_members(scope, c.id, PageRequest::first(100)).await.expect("list");
    assert_eq!(all.next, None);
    let listed: Vec<_> = all.items.iter().map(|m| m.sender.clone()).collect();
    assert_eq!(listed, senders, "in join order");
    assert_eq!(pages.concat(), all.items.iter().map(|m| m.id).collect::<Vec<_>>());
    crate::harness::assert_ascending(&pages.concat(), "member ids");
    for m in &all.items {
        assert_eq!(m, &member(s, scope, c.id, &m.sender).await, "list and get agree");
    }
    let theirs = world(s, "Globex").await;
    let as_them = Scope::Tenant(theirs.tenant.id);
    assert_not_found(s.list_members(as_them, c.id, PageRequest::first(10)).await, Entity::Conversation, "theirs");
    assert_not_found(s.list_members(scope, Id::nil(), PageRequest::first(10)).await, Entity::Conversation, "unknown");
}

/// Receipts only move forward; read drags delivered along; a seq past the
/// last one is refused; a non-member has none. The unread count is the
/// messages after `read_seq` by others, not deleted.
pub async fn receipts_never_move_back(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    let scope = Scope::Tenant(w.tenant.id);
    write_new(s, join(c, "alice", None, "{}")).await; // 1
    let mut bobs = Vec::new();
    for i in 0..4 {
        bobs.push(write_new(s, message_by(c, "bob", &format!("b{i}"))).await); // 2..=5
    }
    write_new(s, message_by(c, "alice", "mine")).await; // 6: her own, never unread
    write_new(s, converger_storage::NewActivity { kind: "event".into(), ..message_by(c, "bob", "e") }).await; // 7
    assert_eq!(member(s, scope, c.id, "alice").await.unread_count, 4);

    let (m, moved) = s.update_receipts(scope, c.id, "alice", receipts(None, Some(3))).await.expect("delivered");
    assert!(moved);
    assert_eq!((m.read_seq, m.delivered_seq, m.unread_count), (0, 3, 4), "delivered is not read");
    let (m, moved) = s.update_receipts(scope, c.id, "alice", receipts(Some(4), None)).await.expect("read");
    assert!(moved);
    assert_eq!((m.read_seq, m.delivered_seq, m.unread_count), (4, 4, 1), "read drags delivered along");
    let (m, moved) = s.update_receipts(scope, c.id, "alice", receipts(Some(2), Some(1))).await.expect("back");
    assert!(!moved, "a seq below the stored one changes nothing");
    assert_eq!((m.read_seq, m.delivered_seq), (4, 4));
    let (_, moved) = s.update_receipts(scope, c.id, "alice", receipts(Some(4), Some(4))).await.expect("same");
    assert!(!moved, "the same seq changes nothing");
    let (m, moved) = s.update_receipts(scope, c.id, "alice", receipts(Some(4), Some(7))).await.expect("delivered");
    assert!(moved);
    assert_eq!((m.read_seq, m.delivered_seq), (4, 7));
    assert_eq!(member(s, scope, c.id, "alice").await, m, "stored as answered");

    // Past the last seq, on either watermark: refused, nothing moves.
    for r in [receipts(Some(8), None), receipts(None, Some(8)), receipts(Some(5), Some(100))] {
        match s.update_receipts(scope, c.id, "alice", r).await {
            Err(StoreError::Refused(Refusal::ReceiptAhead)) => {}
            other => panic!("{r:?}: expected ReceiptAhead, got {other:?}"),
        }
    }
    assert_eq!(member(s, scope, c.id, "alice").await, m);

    // A deleted message is no longer unread.
    write_new(s, acting(c, "delete", "bob", bobs[3].id)).await; // 8
    assert_eq!(member(s, scope, c.id, "alice").await.unread_count, 0);
    let (m, _) = s.update_receipts(scope, c.id, "alice", receipts(Some(8), None)).await.expect("read all");
    assert_eq!((m.read_seq, m.delivered_seq, m.unread_count), (8, 8, 0));

    match s.update_receipts(scope, c.id, "bob", receipts(Some(1), None)).await {
        Err(StoreError::Refused(Refusal::NotMember)) => {}
        other => panic!("receipts of a non-member: expected NotMember, got {other:?}"),
    }
    let theirs = world(s, "Globex").await;
    let as_them = Scope::Tenant(theirs.tenant.id);
    assert!(
        matches!(
            s.update_receipts(as_them, c.id, "alice", receipts(Some(1), None)).await,
            Err(StoreError::NotFound(_))
        ),
        "another tenant moves no receipt"
    );
    assert_eq!(member(s, scope, c.id, "alice").await.read_seq, 8);
}

/// A non-member is told so whatever seqs it names, the same on every backend.
pub async fn receipts_of_a_non_member_are_refused_before_their_seqs(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let c = &w.conversation;
    write_new(s, message_by(c, "bob", "one")).await;
    for r in [receipts(Some(1), None), receipts(Some(5), None), receipts(None, Some(5))] {
        match s.update_receipts(Scope::Tenant(w.tenant.id), c.id, "nobody", r).await {
            Err(StoreError::Refused(Refusal::NotMember)) => {}
            other => panic!("{r:?} of a non-member: expected NotMember, got {other:?}"),
        }
    }
}

/// `last_seen` is per user of a tenant, shown on each of its memberships,
/// and only moves forward.
pub async fn last_seen_is_kept_per_user_and_moves_forward(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let scope = Scope::Tenant(w.tenant.id);
    let other = conversation(s, &w.channel).await;
    write_new(s, join(&w.conversation, "alice", None, "{}")).await;
    write_new(s, join(&other, "alice", None, "{}")).await;
    write_new(s, join(&other, "bob", None, "{}")).await;
    let t1 = Timestamp::from_micros(1_700_000_000_000_000);
    let t2 = Timestamp::from_micros(1_700_000_100_000_000);
    s.set_last_seen(w.tenant.id, "alice", t2).await.expect("set");
    for conv in [w.conversation.id, other.id] {
        assert_eq!(member(s, scope, conv, "alice").await.last_seen, Some(t2));
    }
    assert_eq!(member(s, scope, other.id, "bob").await.last_seen, None, "another user");
    s.set_last_seen(w.tenant.id, "alice", t1).await.expect("set an older one");
    assert_eq!(member(s, scope, other.id, "alice").await.last_seen, Some(t2), "never moves back");
    let t3 = Timestamp::from_micros(t2.as_micros() + 1);
    s.set_last_seen(w.tenant.id, "alice", t3).await.expect("set a newer one");
    assert_eq!(member(s, scope, other.id, "alice").await.last_seen, Some(t3));
    // Another tenant's user of the same name is another user.
    let theirs = world(s, "Globex").await;
    write_new(s, join(&theirs.conversation, "alice", None, "{}")).await;
    let as_them = Scope::Tenant(theirs.tenant.id);
    assert_eq!(member(s, as_them, theirs.conversation.id, "alice").await.last_seen, None);
    assert_not_found(s.set_last_seen(Id::nil(), "alice", t1).await, Entity::Tenant, "an unknown tenant");
}

/// The active conversations a sender is a member of, newest membership
/// first, at most `limit`; not those left, closed or of another tenant.
pub async fn member_conversations_lists_where_a_sender_is_a_member(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let mut convs = vec![w.conversation.clone()];
    for _ in 0..4 {
        convs.push(conversation(s, &w.channel).await);
    }
    for c in &convs {
        write_new(s, join(c, "alice", None, "{}")).await;
    }
    write_new(s, join(&convs[0], "bob", None, "{}")).await;
    write_new(s, leave(&convs[1], "alice")).await;
    s.close_conversation(Scope::Tenant(w.tenant.id), convs[2].id).await.expect("close");
    let theirs = world(s, "Globex").await;
    write_new(s, join(&theirs.conversation, "alice", None, "{}")).await;
    let found = s.member_conversations(w.tenant.id, "alice", 100).await.expect("member_conversations");
    assert_eq!(found, vec![convs[4].id, convs[3].id, convs[0].id], "newest membership first");
    assert_eq!(s.member_conversations(w.tenant.id, "alice", 2).await.expect("limit"), found[..2]);
    assert_eq!(s.member_conversations(w.tenant.id, "bob", 100).await.expect("bob"), vec![convs[0].id]);
    assert!(s.member_conversations(w.tenant.id, "nobody", 100).await.expect("nobody").is_empty());
    assert_eq!(s.member_conversations(theirs.tenant.id, "alice", 100).await.expect("theirs"), [theirs.conversation.id]);
}

/// `members_only` is stored on create, changed by `update_conversation`
/// (with `metadata`), and a patch of nothing changes nothing.
pub async fn members_only_is_stored_and_updated(store: Arc<dyn Store>) {
    let s = &*store;
    let w = world(s, "Acme").await;
    let scope = Scope::Tenant(w.tenant.id);
    assert!(!w.conversation.members_only, "off by default");
    let closed_room =
        s.create_conversation(NewConversation { members_only: true, ..new_conversation(&w.channel, None) }).await;
    let closed_room = closed_room.expect("create");
    assert!(closed_room.members_only);
    assert_eq!(s.get_conversation(scope, closed_room.id).await.expect("get"), closed_room);
    let patch = ConversationPatch { members_only: Some(false), metadata: Some(json(r#"{"topic": "open"}"#)) };
    let open = s.update_conversation(scope, closed_room.id, patch).await.expect("update");
    assert!(!open.members_only);
    assert_eq!(open.metadata, json(r#"{"topic": "open"}"#));
    assert!(open.updated_at >= closed_room.updated_at);
    assert_eq!(s.get_conversation(scope, closed_room.id).await.expect("get"), open);
    let only = ConversationPatch { members_only: Some(true), metadata: None };
    let again = s.update_conversation(scope, closed_room.id, only).await.expect("update");
    assert!(again.members_only);
    assert_eq!(again.metadata, json(r#"{"topic": "open"}"#), "metadata not given: kept");
    let nothing = s.update_conversation(scope, closed_room.id, ConversationPatch::default()).await.expect("empty");
    assert_eq!((nothing.members_only, &nothing.metadata), (true, &again.metadata));
    let theirs = world(s, "Globex").await;
    let as_them = Scope::Tenant(theirs.tenant.id);
    let hijack = ConversationPatch { members_only: Some(false), metadata: None };
    assert_not_found(s.update_conversation(as_them, closed_room.id, hijack).await, Entity::Conversation, "theirs");
    assert!(s.get_conversation(scope, closed_room.id).await.expect("get").members_only, "untouched");
    let listed = s.list_conversations(scope, Default::default(), PageRequest::first(10)).await.expect("list");
    let flags: Vec<_> = listed.items.iter().map(|c| (c.id, c.members_only)).collect();
    assert_eq!(flags, [(w.conversation.id, false), (closed_room.id, true)], "lists carry it");
    // A member of a closed conversation cannot be added: it refuses writes.
    s.close_conversation(scope, closed_room.id).await.expect("close");
    let refused = crate::harness::write(s, vec![join(&closed_room, "late", None, "{}")]).await;
    assert!(matches!(refused[0], Err(StoreError::ConversationClosed)), "{refused:?}");
}
