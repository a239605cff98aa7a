//! Members and their receipts, and users' last seen. Joining and leaving are
//! written by `write_batch` with their activities (see `crate::lifecycle`).

use tokio_postgres::types::ToSql;

use super::rows::{self, MEMBER_COLS};
use super::PgStore;
use crate::model::page_from;
use crate::{Entity, Id, Member, Page, PageRequest, Receipts, Refusal, Scope, StoreError, StoreResult, Timestamp};

impl PgStore {
    pub(super) async fn get_member_impl(&self, scope: Scope, conversation_id: Id, sender: &str) -> StoreResult<Member> {
        let sql = format!(
            "SELECT {MEMBER_COLS} FROM members m WHERE m.conversation_id = $1 AND m.sender = $2 \
             AND ($3::uuid IS NULL OR m.tenant_id = $3)"
        );
        let params: [&(dyn ToSql + Sync); 3] = [&conversation_id, &sender, &scope.tenant()];
        self.pool.get().await?.one(&sql, &params, rows::member, Entity::Member).await
    }

    pub(super) async fn list_members_impl(
        &self,
        scope: Scope,
        conversation_id: Id,
        page: PageRequest,
    ) -> StoreResult<Page<Member>> {
        self.get_conversation_impl(scope, conversation_id).await?;
        let limit = page.clamped_limit();
        let sql = format!(
            "SELECT {MEMBER_COLS} FROM members m WHERE m.conversation_id = $1 AND ($2::uuid IS NULL OR m.id > $2) \
             ORDER BY m.id LIMIT $3"
        );
        let params: [&(dyn ToSql + Sync); 3] = [&conversation_id, &page.after, &(i64::from(limit) + 1)];
        let found = self.pool.get().await?.query(&sql, &params).await?;
        Ok(page_from(rows::all(&found, rows::member)?, limit, |m| m.id))
    }

    /// One statement: the watermarks only move forward (`greatest`), read
    /// drags delivered along, and a seq past the conversation's last is
    /// refused inside it, so two concurrent receipts cannot undo each other.
    pub(super) async fn update_receipts_impl(
        &self,
        scope: Scope,
        conversation_id: Id,
        sender: &str,
        receipts: Receipts,
    ) -> StoreResult<(Member, bool)> {
        let conversation = self.get_conversation_impl(scope, conversation_id).await?;
        let ahead = |seq: Option<i64>| seq.is_some_and(|s| s > conversation.last_seq);
        if ahead(receipts.read_seq) || ahead(receipts.delivered_seq) {
            // A non-member is told so first, whatever its seqs, as the embedded store does.
            return match self.get_member_impl(scope, conversation_id, sender).await {
                Ok(_) => Err(StoreError::Refused(Refusal::ReceiptAhead)),
                Err(StoreError::NotFound(Entity::Member)) => Err(StoreError::Refused(Refusal::NotMember)),
                Err(e) => Err(e),
            };
        }
        let read = receipts.read_seq.unwrap_or(0);
        let delivered = receipts.delivered_seq.unwrap_or(0);
        let update = "UPDATE members SET read_seq = greatest(read_seq, $3), \
             delivered_seq = greatest(delivered_seq, $4, $3) \
             WHERE conversation_id = $1 AND sender = $2 AND (read_seq < $3 OR delivered_seq < greatest($4, $3)) \
             RETURNING id";
        let params: [&(dyn ToSql + Sync); 4] = [&conversation_id, &sender, &read, &delivered];
        let moved = self.pool.get().await?.query_opt(update, &params).await?.is_some();
        match self.get_member_impl(scope, conversation_id, sender).await {
            Ok(m) => Ok((m, moved)),
            Err(StoreError::NotFound(Entity::Member)) => Err(StoreError::Refused(Refusal::NotMember)),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn member_conversations_impl(
        &self,
        tenant_id: Id,
        sender: &str,
        limit: u32,
    ) -> StoreResult<Vec<Id>> {
        let sql = "SELECT m.conversation_id FROM members m JOIN conversations c ON c.id = m.conversation_id \
             WHERE m.tenant_id = $1 AND m.sender = $2 AND c.status = 'active' ORDER BY m.id DESC LIMIT $3";
        let params: [&(dyn ToSql + Sync); 3] = [&tenant_id, &sender, &i64::from(PageRequest::clamp(limit))];
        let found = self.pool.get().await?.query(sql, &params).await?;
        found.iter().map(|r| r.try_get(0).map_err(|e| StoreError::Schema(e.to_string()))).collect()
    }

    pub(super) async fn set_last_seen_impl(&self, tenant_id: Id, sender: &str, at: Timestamp) -> StoreResult<()> {
        let sql = "INSERT INTO users (tenant_id, sender, last_seen) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, sender) DO UPDATE SET last_seen = greatest(users.last_seen, excluded.last_seen)";
        let params: [&(dyn ToSql + Sync); 3] = [&tenant_id, &sender, &at];
        match self.pool.get().await?.query(sql, &params).await {
            Err(StoreError::ForeignKey(_)) => Err(StoreError::NotFound(Entity::Tenant)),
            other => other.map(|_| ()),
        }
    }
}
