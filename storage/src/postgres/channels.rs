//! Channels, scoped by tenant.

use super::query::ListQuery;
use super::rows::{self, CHANNEL_COLS};
use super::PgStore;
use crate::{
    Channel, ChannelFilter, ChannelPatch, Entity, Id, NewChannel, Page, PageRequest, Scope, Status, StoreError,
    StoreResult, Timestamp,
};

impl PgStore {
    pub(super) async fn create_channel_impl(&self, new: NewChannel) -> StoreResult<Channel> {
        let now = Timestamp::now();
        let c = new.into_channel(now);
        let sql = format!("INSERT INTO channels ({CHANNEL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        let mut conn = self.pool.get().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] =
            [&c.id, &c.tenant_id, &c.name, &c.kind, &c.secret, &c.config, &c.status.as_str(), &now, &now];
        match conn.query(&sql, &params).await {
            Ok(_) => Ok(c),
            // The only foreign key of a channel is its tenant.
            Err(StoreError::ForeignKey(_)) => Err(StoreError::NotFound(Entity::Tenant)),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn get_channel_impl(&self, scope: Scope, id: Id) -> StoreResult<Channel> {
        let sql = format!("SELECT {CHANNEL_COLS} FROM channels WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)");
        self.pool.get().await?.one(&sql, &[&id, &scope.tenant()], rows::channel, Entity::Channel).await
    }

    pub(super) async fn list_channels_impl(
        &self,
        scope: Scope,
        filter: ChannelFilter,
        page: PageRequest,
    ) -> StoreResult<Page<Channel>> {
        let mut conn = self.pool.get().await?;
        ListQuery::new(CHANNEL_COLS, "channels")
            .eq("tenant_id", scope.tenant())
            .eq("status", filter.status.map(Status::as_str))
            .fetch(&mut conn, page, rows::channel, |c| c.id)
            .await
    }

    pub(super) async fn update_channel_impl(&self, scope: Scope, id: Id, patch: ChannelPatch) -> StoreResult<Channel> {
        let sql = format!(
            "UPDATE channels SET name = COALESCE($3::text, name), config = COALESCE($4::jsonb, config), \
             status = COALESCE($5::text, status), secret = COALESCE($6::text, secret), updated_at = $7 \
             WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) RETURNING {CHANNEL_COLS}"
        );
        let status = patch.status.map(Status::as_str);
        let now = Timestamp::now();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
            [&id, &scope.tenant(), &patch.name, &patch.config, &status, &patch.secret, &now];
        self.pool.get().await?.one(&sql, &params, rows::channel, Entity::Channel).await
    }
}
