//! Members and their receipts, and users' last seen. Joining and leaving are
//! written by `write_batch` with their activities (see `crate::lifecycle`).

use rusqlite::{params, Connection, OptionalExtension};

use super::crud::{get_conversation, in_scope};
use super::rows::{self, found, sql_err, MEMBER_COLS};
use crate::model::page_from;
use crate::{Entity, Id, Member, Page, PageRequest, Receipts, Refusal, Scope, StoreError, StoreResult, Timestamp};

pub(crate) fn get_member(conn: &Connection, scope: Scope, conversation_id: Id, sender: &str) -> StoreResult<Member> {
    let sql = format!("SELECT {MEMBER_COLS} FROM members m WHERE m.conversation_id = ? AND m.sender = ?");
    let m = found(
        Entity::Member,
        conn.prepare_cached(&sql).and_then(|mut s| s.query_row(params![conversation_id, sender], rows::member)),
    )?;
    in_scope(scope, m.tenant_id, Entity::Member)?;
    Ok(m)
}

pub(crate) fn list_members(
    conn: &Connection,
    scope: Scope,
    conversation_id: Id,
    page: PageRequest,
) -> StoreResult<Page<Member>> {
    get_conversation(conn, scope, conversation_id)?;
    let limit = page.clamped_limit();
    let sql = format!(
        "SELECT {MEMBER_COLS} FROM members m WHERE m.conversation_id = ?1 AND (?2 IS NULL OR m.id > ?2) \
         ORDER BY m.id LIMIT ?3"
    );
    let rows = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(params![conversation_id, page.after, i64::from(limit) + 1], rows::member)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(sql_err)?;
    Ok(page_from(rows, limit, |m| m.id))
}

pub(crate) fn update_receipts(
    conn: &Connection,
    scope: Scope,
    conversation_id: Id,
    sender: &str,
    receipts: Receipts,
) -> StoreResult<(Member, bool)> {
    let conversation = get_conversation(conn, scope, conversation_id)?;
    let before = match get_member(conn, scope, conversation_id, sender) {
        Err(StoreError::NotFound(Entity::Member)) => return Err(StoreError::Refused(Refusal::NotMember)),
        other => other?,
    };
    let ahead = |seq: Option<i64>| seq.is_some_and(|s| s > conversation.last_seq);
    if ahead(receipts.read_seq) || ahead(receipts.delivered_seq) {
        return Err(StoreError::Refused(Refusal::ReceiptAhead));
    }
    // Read implies delivered: a delivered watermark never trails the read one.
    let read = receipts.read_seq.unwrap_or(0).max(before.read_seq);
    let delivered = receipts.delivered_seq.unwrap_or(0).max(before.delivered_seq).max(read);
    if read == before.read_seq && delivered == before.delivered_seq {
        return Ok((before, false));
    }
    conn.prepare_cached("UPDATE members SET read_seq = ?, delivered_seq = ? WHERE id = ?")
        .and_then(|mut s| s.execute(params![read, delivered, before.id]))
        .map_err(sql_err)?;
    Ok((get_member(conn, scope, conversation_id, sender)?, true))
}

pub(crate) fn member_conversations(conn: &Connection, tenant_id: Id, sender: &str, limit: u32) -> StoreResult<Vec<Id>> {
    conn.prepare_cached(
        "SELECT m.conversation_id FROM members m JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.tenant_id = ? AND m.sender = ? AND c.status = 'active' ORDER BY m.id DESC LIMIT ?",
    )
    .and_then(|mut s| {
        s.query_map(params![tenant_id, sender, PageRequest::clamp(limit)], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<Id>>>()
    })
    .map_err(sql_err)
}

pub(crate) fn set_last_seen(conn: &Connection, tenant_id: Id, sender: &str, at: Timestamp) -> StoreResult<()> {
    let known: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM tenants WHERE id = ?")
        .and_then(|mut s| s.query_row([tenant_id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    if known.is_none() {
        return Err(StoreError::NotFound(Entity::Tenant));
    }
    conn.prepare_cached(
        "INSERT INTO users (tenant_id, sender, last_seen) VALUES (?1, ?2, ?3) \
         ON CONFLICT (tenant_id, sender) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
    )
    .and_then(|mut s| s.execute(params![tenant_id, sender, at]))
    .map_err(sql_err)?;
    Ok(())
}
