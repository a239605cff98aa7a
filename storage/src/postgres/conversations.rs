//! Conversations, scoped by tenant.
//!
//! Creation is one `INSERT … SELECT FROM channels` that only produces a row
//! when the channel is the tenant's and active, so a channel deactivated
//! concurrently cannot gain a conversation. `find_or_create` relies on
//! `ON CONFLICT DO NOTHING` over the (channel_id, external_id) unique index:
//! when two callers race, the loser's insert waits for the winner's commit,
//! does nothing, and its next statement sees the winner's row.

use tokio_postgres::types::ToSql;

use super::events::{fan_out, CONVERSATION_DATA};
use super::pool::Conn;
use super::query::ListQuery;
use super::rows::{self, CONVERSATION_COLS};
use super::PgStore;
use crate::{
    new_id, Conversation, ConversationFilter, ConversationPatch, ConversationStatus, Entity, Id, NewConversation, Page,
    PageRequest, Scope, Status, StoreError, StoreResult, Timestamp,
};

/// Rounds of insert-then-look; a second is needed only when the row that
/// blocked the insert vanished (its transaction rolled back) in between.
const ATTEMPTS: usize = 3;

/// The insert and its `conversation.created` events, in one statement.
fn insert_sql(on_conflict: &str) -> String {
    let src = format!(
        "(SELECT tenant_id, 'conversation.created'::text AS type, {CONVERSATION_DATA} AS data, created_at AS at \
         FROM c) src"
    );
    format!(
        "WITH c AS (INSERT INTO conversations (id, tenant_id, channel_id, status, metadata, external_id, created_at, \
         updated_at, members_only) \
         SELECT $1::uuid, $2::uuid, $3::uuid, 'active', $4::jsonb, $5::text, $6::timestamptz, $6, $7::bool FROM channels \
         WHERE id = $3 AND tenant_id = $2 AND status = 'active' {on_conflict} RETURNING {CONVERSATION_COLS}), \
         ev AS ({}) SELECT * FROM c",
        fan_out(&src)
    )
}

impl PgStore {
    pub(super) async fn create_conversation_impl(&self, new: NewConversation) -> StoreResult<Conversation> {
        let mut conn = self.pool.get().await?;
        for _ in 0..ATTEMPTS {
            match insert(&mut conn, &new, "").await {
                Ok(Some(c)) => return Ok(c),
                Ok(None) => channel_refusal(&mut conn, &new).await?,
                Err(StoreError::Conflict(_)) => {
                    return Err(StoreError::Conflict("external_id is already used on this channel".into()))
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Internal("the channel changed state during every attempt".into()))
    }

    pub(super) async fn find_or_create_conversation_impl(
        &self,
        new: NewConversation,
    ) -> StoreResult<(Conversation, bool)> {
        let Some(external_id) = &new.external_id else {
            return Err(StoreError::Invalid("find_or_create_conversation needs an external_id".into()));
        };
        let mut conn = self.pool.get().await?;
        let conflict = "ON CONFLICT (channel_id, external_id) WHERE external_id IS NOT NULL DO NOTHING";
        let find = format!(
            "SELECT {CONVERSATION_COLS} FROM conversations \
             WHERE channel_id = $1 AND external_id = $2 AND tenant_id = $3"
        );
        for _ in 0..ATTEMPTS {
            if let Some(c) = insert(&mut conn, &new, conflict).await? {
                return Ok((c, true));
            }
            if let Some(row) = conn.query_opt(&find, &[&new.channel_id, external_id, &new.tenant_id]).await? {
                return Ok((rows::conversation(&row)?, false));
            }
            channel_refusal(&mut conn, &new).await?;
        }
        Err(StoreError::Internal("the conversation changed during every attempt".into()))
    }

    pub(super) async fn get_conversation_impl(&self, scope: Scope, id: Id) -> StoreResult<Conversation> {
        let sql = format!(
            "SELECT {CONVERSATION_COLS} FROM conversations WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)"
        );
        self.pool.get().await?.one(&sql, &[&id, &scope.tenant()], rows::conversation, Entity::Conversation).await
    }

    pub(super) async fn list_conversations_impl(
        &self,
        scope: Scope,
        filter: ConversationFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Conversation>> {
        let mut conn = self.pool.get().await?;
        ListQuery::new(CONVERSATION_COLS, "conversations")
            .eq("tenant_id", scope.tenant())
            .eq("channel_id", filter.channel_id)
            .eq("status", filter.status.map(ConversationStatus::as_str))
            .fetch(&mut conn, page, rows::conversation, |c| c.id)
            .await
    }

    /// Closing a closed conversation changes nothing and answers it as it is.
    pub(super) async fn close_conversation_impl(&self, scope: Scope, id: Id) -> StoreResult<Conversation> {
        // `prev` locks the row and reads its status as it is now (after any
        // concurrent close commits), so only the close that changes it
        // writes `conversation.closed`, in the same statement.
        let src = format!(
            "(SELECT tenant_id, 'conversation.closed'::text AS type, {CONVERSATION_DATA} AS data, updated_at AS at \
             FROM closed WHERE was = 'active') src"
        );
        let sql = format!(
            "WITH closed AS (UPDATE conversations SET status = 'closed', \
                 updated_at = CASE WHEN prev.was = 'closed' THEN updated_at ELSE $3 END \
                 FROM (SELECT id AS prev_id, status AS was FROM conversations \
                       WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) FOR UPDATE) prev \
                 WHERE conversations.id = prev.prev_id RETURNING {CONVERSATION_COLS}, prev.was), \
             ev AS ({}) SELECT * FROM closed",
            fan_out(&src)
        );
        let now = Timestamp::now();
        self.pool.get().await?.one(&sql, &[&id, &scope.tenant(), &now], rows::conversation, Entity::Conversation).await
    }

    pub(super) async fn update_conversation_impl(
        &self,
        scope: Scope,
        id: Id,
        patch: ConversationPatch,
    ) -> StoreResult<Conversation> {
        let sql = format!(
            "UPDATE conversations SET metadata = coalesce($3::jsonb, metadata), \
             members_only = coalesce($4::bool, members_only), updated_at = $5 \
             WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) RETURNING {CONVERSATION_COLS}"
        );
        let now = Timestamp::now();
        let params: [&(dyn ToSql + Sync); 5] = [&id, &scope.tenant(), &patch.metadata, &patch.members_only, &now];
        self.pool.get().await?.one(&sql, &params, rows::conversation, Entity::Conversation).await
    }
}

async fn insert(conn: &mut Conn, new: &NewConversation, on_conflict: &str) -> StoreResult<Option<Conversation>> {
    let id = new_id();
    let now = Timestamp::now();
    let params: [&(dyn ToSql + Sync); 7] =
        [&id, &new.tenant_id, &new.channel_id, &new.metadata, &new.external_id, &now, &new.members_only];
    match conn.query_opt(&insert_sql(on_conflict), &params).await? {
        Some(row) => rows::conversation(&row).map(Some),
        None => Ok(None),
    }
}

/// Why the insert produced no row: the channel is not the tenant's, or it is
/// inactive. `Ok` when it is neither any more, so the caller tries again.
async fn channel_refusal(conn: &mut Conn, new: &NewConversation) -> StoreResult<()> {
    let row = conn
        .query_opt("SELECT status FROM channels WHERE id = $1 AND tenant_id = $2", &[&new.channel_id, &new.tenant_id])
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(Entity::Channel));
    };
    let status: &str = row.try_get(0).map_err(|e| StoreError::Schema(e.to_string()))?;
    match Status::parse(status) {
        Some(Status::Active) => Ok(()),
        _ => Err(StoreError::ChannelInactive),
    }
}
