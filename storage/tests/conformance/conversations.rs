//! Conversations: create, read, list with filters, close, external_id uniqueness
//! per channel and find-or-create (also under a race).

use std::sync::Arc;

use converger_storage::{
    new_id, ChannelPatch, ConversationFilter, ConversationStatus, Entity, PageRequest, Scope, Status, Store, StoreError,
};

use crate::harness::{assert_not_found, channel, conversation, json, message, new_conversation, tenant, write_one};

pub async fn conversation_create_get_list_close_round_trip(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    let ch = channel(s, t.id, "support").await;
    let scope = Scope::Tenant(t.id);
    let mut new = new_conversation(&ch, Some("+15550001"));
    new.metadata = json(r#"{"customer": {"name": "Zoë", "tags": ["vip", 3]}, "empty": {}}"#);
    let c = s.create_conversation(new.clone()).await.expect("create conversation");
    assert_eq!((c.tenant_id, c.channel_id), (t.id, ch.id));
    assert_eq!(c.status, ConversationStatus::Active);
    assert_eq!(c.metadata, new.metadata, "metadata round-trips by value");
    assert_eq!(c.external_id.as_deref(), Some("+15550001"));
    assert_eq!(c.last_seq, 0, "no activity yet");
    assert!(c.updated_at >= c.created_at);
    assert_eq!(s.get_conversation(scope, c.id).await.expect("get"), c);
    assert_eq!(s.get_conversation(Scope::Admin, c.id).await.expect("admin get"), c);

    let without_external = conversation(s, &ch).await;
    assert_eq!(without_external.external_id, None);
    let page = s.list_conversations(scope, ConversationFilter::default(), PageRequest::first(10)).await.expect("list");
    assert_eq!(page.items, vec![c.clone(), without_external.clone()]);
    assert_eq!(page.next, None);

    write_one(s, message(&c, "hello")).await;
    let closed = s.close_conversation(scope, c.id).await.expect("close");
    assert_eq!(closed.status, ConversationStatus::Closed);
    assert_eq!((closed.id, closed.last_seq, closed.created_at), (c.id, 1, c.created_at));
    assert_eq!(closed.metadata, c.metadata);
    assert!(closed.updated_at >= c.updated_at);
    assert_eq!(s.get_conversation(scope, c.id).await.expect("get closed"), closed, "closing is stored");
    assert_eq!(
        s.get_conversation(scope, without_external.id).await.expect("get other"),
        without_external,
        "closing one conversation leaves the others alone"
    );
    assert_not_found(s.close_conversation(scope, new_id()).await, Entity::Conversation, "close an unknown id");
    assert_not_found(s.get_conversation(scope, new_id()).await, Entity::Conversation, "get an unknown id");
}

/// The trait does not say what closing a closed conversation answers. Accepted:
/// the closed conversation again (idempotent) or `ConversationClosed`; the
/// conversation must stay closed and unchanged either way.
pub async fn conversation_close_twice_is_idempotent_or_a_clear_answer(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    let ch = channel(s, t.id, "support").await;
    let c = conversation(s, &ch).await;
    let scope = Scope::Tenant(t.id);
    let closed = s.close_conversation(scope, c.id).await.expect("first close");
    match s.close_conversation(scope, c.id).await {
        Ok(again) => {
            assert_eq!((again.id, again.status), (c.id, ConversationStatus::Closed));
        }
        Err(StoreError::ConversationClosed) => {}
        Err(other) => panic!("second close: expected the closed conversation or ConversationClosed, got {other:?}"),
    }
    let now = s.get_conversation(scope, c.id).await.expect("get");
    assert_eq!((now.status, now.last_seq, now.created_at), (closed.status, closed.last_seq, closed.created_at));
}

pub async fn conversation_list_filters_by_channel_and_status(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    let scope = Scope::Tenant(t.id);
    let ch1 = channel(s, t.id, "one").await;
    let ch2 = channel(s, t.id, "two").await;
    let a = conversation(s, &ch1).await;
    let b = conversation(s, &ch2).await;
    let c = conversation(s, &ch1).await;
    let d = conversation(s, &ch2).await;
    s.close_conversation(scope, c.id).await.expect("close c");
    s.close_conversation(scope, b.id).await.expect("close b");

    let ids = |channel_id, status| async move {
        let filter = ConversationFilter { channel_id, status };
        let page = s.list_conversations(scope, filter, PageRequest::first(100)).await.expect("list conversations");
        page.items.iter().map(|c| c.id).collect::<Vec<_>>()
    };
    let (active, closed) = (Some(ConversationStatus::Active), Some(ConversationStatus::Closed));
    assert_eq!(ids(None, None).await, vec![a.id, b.id, c.id, d.id]);
    assert_eq!(ids(Some(ch1.id), None).await, vec![a.id, c.id]);
    assert_eq!(ids(Some(ch2.id), None).await, vec![b.id, d.id]);
    assert_eq!(ids(None, active).await, vec![a.id, d.id]);
    assert_eq!(ids(None, closed).await, vec![b.id, c.id]);
    assert_eq!(ids(Some(ch1.id), active).await, vec![a.id]);
    assert_eq!(ids(Some(ch2.id), closed).await, vec![b.id]);
    assert_eq!(
        ids(Some(new_id()), None).await,
        Vec::<converger_storage::Id>::new(),
        "an unknown channel lists nothing"
    );
}

pub async fn conversation_external_id_is_unique_per_channel(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    let ch1 = channel(s, t.id, "one").await;
    let ch2 = channel(s, t.id, "two").await;
    let first = s.create_conversation(new_conversation(&ch1, Some("+15550001"))).await.expect("create");
    match s.create_conversation(new_conversation(&ch1, Some("+15550001"))).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("same external_id on the same channel: expected Conflict, got {other:?}"),
    }
    let other_channel = s.create_conversation(new_conversation(&ch2, Some("+15550001"))).await;
    let other_channel = other_channel.expect("the same external_id on another channel is fine");
    assert_ne!(other_channel.id, first.id);

    let u = tenant(s, "Globex").await;
    let foreign = channel(s, u.id, "theirs").await;
    s.create_conversation(new_conversation(&foreign, Some("+15550001")))
        .await
        .expect("the same external_id on another tenant's channel is fine");
    // Conversations without an external_id never collide.
    conversation(s, &ch1).await;
    conversation(s, &ch1).await;
    let page = s
        .list_conversations(
            Scope::Tenant(t.id),
            ConversationFilter { channel_id: Some(ch1.id), status: None },
            PageRequest::first(100),
        )
        .await
        .expect("list");
    assert_eq!(page.items.len(), 3, "the conflicting create wrote nothing");
}

pub async fn conversation_create_checks_the_channel(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    let u = tenant(s, "Globex").await;
    let mine = channel(s, t.id, "mine").await;
    let theirs = channel(s, u.id, "theirs").await;

    let mut new = new_conversation(&theirs, None);
    new.tenant_id = t.id;
    assert_not_found(s.create_conversation(new.clone()).await, Entity::Channel, "another tenant's channel");
    new.external_id = Some("+15550002".into());
    assert_not_found(s.find_or_create_conversation(new).await, Entity::Channel, "find_or_create there");
    let mut new = new_conversation(&mine, None);
    new.channel_id = new_id();
    assert_not_found(s.create_conversation(new).await, Entity::Channel, "a channel that does not exist");

    s.update_channel(
        Scope::Tenant(t.id),
        mine.id,
        ChannelPatch { status: Some(Status::Inactive), ..Default::default() },
    )
    .await
    .expect("disable channel");
    match s.create_conversation(new_conversation(&mine, None)).await {
        Err(StoreError::ChannelInactive) => {}
        other => panic!("create on an inactive channel: expected ChannelInactive, got {other:?}"),
    }
    match s.find_or_create_conversation(new_conversation(&mine, Some("new-one"))).await {
        Err(StoreError::ChannelInactive) => {}
        other => {
            panic!("find_or_create of a missing one on an inactive channel: expected ChannelInactive, got {other:?}")
        }
    }
    let all = s.list_conversations(Scope::Admin, ConversationFilter::default(), PageRequest::first(10)).await;
    assert!(all.expect("list").items.is_empty(), "no refused create wrote a row");
}

pub async fn find_or_create_returns_the_existing_conversation(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    let ch1 = channel(s, t.id, "one").await;
    let ch2 = channel(s, t.id, "two").await;
    let (first, created) = s.find_or_create_conversation(new_conversation(&ch1, Some("+15550001"))).await.expect("f/c");
    assert!(created, "the first call creates");
    assert_eq!((first.channel_id, first.external_id.as_deref()), (ch1.id, Some("+15550001")));
    assert_eq!(s.get_conversation(Scope::Tenant(t.id), first.id).await.expect("get"), first);

    let mut again = new_conversation(&ch1, Some("+15550001"));
    again.metadata = json(r#"{"different": true}"#);
    let (second, created) = s.find_or_create_conversation(again).await.expect("f/c again");
    assert!(!created, "the second call finds");
    assert_eq!(second, first, "the existing conversation, unchanged");

    let (other, created) = s.find_or_create_conversation(new_conversation(&ch2, Some("+15550001"))).await.expect("f/c");
    assert!(created, "another channel's external_id space is separate");
    assert_ne!(other.id, first.id);
    let (third, created) = s.find_or_create_conversation(new_conversation(&ch1, Some("+15550002"))).await.expect("f/c");
    assert!(created);
    assert_ne!(third.id, first.id);
    // A conversation made by create_conversation is found too.
    let made = s.create_conversation(new_conversation(&ch1, Some("+15550003"))).await.expect("create");
    let (found, created) = s.find_or_create_conversation(new_conversation(&ch1, Some("+15550003"))).await.expect("f/c");
    assert_eq!((found, created), (made, false));
}

pub async fn find_or_create_under_a_race_creates_once(store: Arc<dyn Store>) {
    let t = tenant(&*store, "Acme").await;
    let ch = channel(&*store, t.id, "one").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (store, barrier, new) = (store.clone(), barrier.clone(), new_conversation(&ch, Some("+15550009")));
            tokio::spawn(async move {
                barrier.wait().await;
                store.find_or_create_conversation(new).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task").expect("find_or_create under a race must not fail"));
    }
    let created = answers.iter().filter(|(_, created)| *created).count();
    assert_eq!(created, 1, "exactly one caller creates");
    let id = answers[0].0.id;
    assert!(answers.iter().all(|(c, _)| c.id == id), "every caller gets the same conversation");
    let page = store.list_conversations(Scope::Admin, ConversationFilter::default(), PageRequest::first(100)).await;
    assert_eq!(page.expect("list").items.len(), 1);
}

pub async fn find_or_create_without_external_id_is_invalid(store: Arc<dyn Store>) {
    let s = &*store;
    let w = crate::harness::world(s, "Acme").await;
    let got = s.find_or_create_conversation(new_conversation(&w.channel, None)).await;
    assert!(matches!(got, Err(converger_storage::StoreError::Invalid(_))), "got {got:?}");
}
