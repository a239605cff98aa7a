//! Cursor pagination of every list: pages of `limit` in id order, `next` only
//! when more rows exist, no duplicate or gap, stable while rows are added, and
//! the limit clamped to 1..=MAX_LIMIT.

use std::sync::Arc;

use converger_storage::{new_id, ChannelFilter, ConversationFilter, DeliveryFilter, Id, PageRequest, Scope, Store};

use crate::harness::{assert_ascending, channel, conversation, message, page_ids, tenant, world, write};

fn sizes(pages: &[Vec<Id>]) -> Vec<usize> {
    pages.iter().map(Vec::len).collect()
}

#[track_caller]
fn assert_paged(pages: &[Vec<Id>], created: &[Id], want_sizes: &[usize], what: &str) {
    assert_eq!(sizes(pages), want_sizes, "{what}: page sizes");
    let flat: Vec<Id> = pages.concat();
    assert_eq!(flat, created, "{what}: every row once, in creation (id) order");
    assert_ascending(&flat, what);
}

pub async fn pagination_is_stable_for_every_list(store: Arc<dyn Store>) {
    let s = &*store;
    let mut tenants = Vec::new();
    for i in 0..25 {
        tenants.push(tenant(s, &format!("t{i}")).await.id);
    }
    let pages = page_ids(10, |p| s.list_tenants(p), |t| t.id).await;
    assert_paged(&pages, &tenants, &[10, 10, 5], "tenants");

    let owner = tenants[0];
    let scope = Scope::Tenant(owner);
    let mut channels = Vec::new();
    for i in 0..25 {
        channels.push(channel(s, owner, &format!("c{i}")).await);
    }
    // Another tenant's channels interleave in id order but never show.
    channel(s, tenants[1], "foreign").await;
    let channel_ids: Vec<Id> = channels.iter().map(|c| c.id).collect();
    let pages = page_ids(10, |p| s.list_channels(scope, ChannelFilter::default(), p), |c| c.id).await;
    assert_paged(&pages, &channel_ids, &[10, 10, 5], "channels");

    // Conversations alternate between two channels; the filter pages one of them.
    let mut on_first = Vec::new();
    for _ in 0..25 {
        on_first.push(conversation(s, &channels[0]).await.id);
        conversation(s, &channels[1]).await;
    }
    let filter = ConversationFilter { channel_id: Some(channels[0].id), status: None };
    let pages = page_ids(10, |p| s.list_conversations(scope, filter, p), |c| c.id).await;
    assert_paged(&pages, &on_first, &[10, 10, 5], "conversations of one channel");
    let pages = page_ids(10, |p| s.list_conversations(scope, ConversationFilter::default(), p), |c| c.id).await;
    assert_eq!(sizes(&pages), vec![10, 10, 10, 10, 10], "an exact multiple ends with a full page and no next");

    let w = world(s, "deliveries").await;
    let batch: Vec<_> = (0..25)
        .map(|i| {
            let mut m = message(&w.conversation, &format!("m{i}"));
            m.deliver_to = vec![w.channel.id];
            m
        })
        .collect();
    write(s, batch).await;
    let scope = Scope::Tenant(w.tenant.id);
    let all = s.list_deliveries(scope, DeliveryFilter::default(), PageRequest::first(1000)).await.expect("list");
    let delivery_ids: Vec<Id> = all.items.iter().map(|d| d.id).collect();
    let pages = page_ids(10, |p| s.list_deliveries(scope, DeliveryFilter::default(), p), |d| d.id).await;
    assert_paged(&pages, &delivery_ids, &[10, 10, 5], "deliveries");
}

pub async fn rows_added_after_a_cursor_appear_on_later_pages(store: Arc<dyn Store>) {
    let s = &*store;
    let t = tenant(s, "Acme").await;
    let scope = Scope::Tenant(t.id);
    let mut created = Vec::new();
    for i in 0..15 {
        created.push(channel(s, t.id, &format!("c{i}")).await.id);
    }
    let list = |after| async move {
        s.list_channels(scope, ChannelFilter::default(), PageRequest { after, limit: 10 }).await.expect("list")
    };
    let first = list(None).await;
    assert_eq!(first.items.len(), 10);
    let cursor = first.next.expect("more rows after the first page");
    for i in 15..20 {
        created.push(channel(s, t.id, &format!("c{i}")).await.id);
    }
    let second = list(Some(cursor)).await;
    assert_eq!(second.items.len(), 10, "the five old rows and the five new ones");
    assert_eq!(second.next, None, "exactly 20 rows: the second page is the last");
    let seen: Vec<Id> = first.items.iter().chain(&second.items).map(|c| c.id).collect();
    assert_eq!(seen, created, "new rows come after the cursor, nothing repeats");
    // A later row after the last page is still reachable from that page's last id.
    created.push(channel(s, t.id, "late").await.id);
    let tail = list(second.items.last().map(|c| c.id)).await;
    assert_eq!(tail.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![created[20]]);
    assert_eq!(tail.next, None);
    // A cursor past every row answers an empty last page.
    let beyond = list(Some(new_id())).await;
    assert!(beyond.items.is_empty() && beyond.next.is_none());
}

pub async fn page_limit_is_clamped(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(PageRequest::first(0).clamped_limit(), 1);
    assert_eq!(PageRequest::first(5000).clamped_limit(), PageRequest::MAX_LIMIT);
    let a = tenant(s, "a").await;
    tenant(s, "b").await;
    let zero = s.list_tenants(PageRequest::first(0)).await.expect("limit 0");
    assert_eq!(zero.items.iter().map(|t| t.id).collect::<Vec<_>>(), vec![a.id], "limit 0 is clamped to 1");
    assert!(zero.next.is_some());

    let w = world(s, "Acme").await;
    let max = PageRequest::MAX_LIMIT as usize;
    let batch: Vec<_> = (0..=max)
        .map(|i| {
            let mut m = message(&w.conversation, &format!("m{i}"));
            m.deliver_to = vec![w.channel.id];
            m
        })
        .collect();
    write(s, batch).await;
    let big = s.list_deliveries(Scope::Admin, DeliveryFilter::default(), PageRequest::first(u32::MAX)).await;
    let big = big.expect("huge limit");
    assert_eq!(big.items.len(), max, "the limit is clamped to MAX_LIMIT");
    let rest = PageRequest { after: big.next, limit: u32::MAX };
    let rest = s.list_deliveries(Scope::Admin, DeliveryFilter::default(), rest).await.expect("rest");
    assert_eq!((rest.items.len(), rest.next), (1, None));
}
