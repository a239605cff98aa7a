//! Tenants, channels and conversations: the small, synchronous operations the
//! store runs on its writer (changes) or reader (lookups) connections.

use rusqlite::{params, Connection, OptionalExtension};

use super::query::{id_value, ListQuery};
use super::rows::{self, found, sql_err, CHANNEL_COLS, CONVERSATION_COLS, TENANT_COLS};
use crate::events::conversation_data;
use crate::{
    new_id, Channel, ChannelFilter, ChannelPatch, Conversation, ConversationFilter, ConversationPatch,
    ConversationStatus, Entity, EventType, Id, NewChannel, NewConversation, NewTenant, Page, PageRequest, Scope,
    Status, StoreError, StoreResult, Tenant, TenantPatch, Timestamp,
};

pub(crate) fn create_tenant(conn: &Connection, new: NewTenant) -> StoreResult<Tenant> {
    let now = Timestamp::now();
    let t = new.tenant(now);
    conn.prepare_cached(
        "INSERT INTO tenants (id, name, api_key_hash, status, created_at, updated_at, limits) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| s.execute(params![t.id, t.name, &new.api_key_hash[..], t.status, now, now, t.limits.to_stored()]))
    .map_err(sql_err)?;
    Ok(t)
}

pub(crate) fn get_tenant(conn: &Connection, id: Id) -> StoreResult<Tenant> {
    let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE id = ?");
    found(Entity::Tenant, conn.prepare_cached(&sql).and_then(|mut s| s.query_row([id], rows::tenant)))
}

pub(crate) fn tenant_by_api_key_hash(conn: &Connection, hash: &[u8; 32]) -> StoreResult<Tenant> {
    let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE api_key_hash = ?");
    found(Entity::Tenant, conn.prepare_cached(&sql).and_then(|mut s| s.query_row([&hash[..]], rows::tenant)))
}

pub(crate) fn list_tenants(conn: &Connection, page: PageRequest) -> StoreResult<Page<Tenant>> {
    ListQuery::new(TENANT_COLS, "tenants").fetch(conn, page, rows::tenant, |t| t.id)
}

pub(crate) fn update_tenant(conn: &Connection, id: Id, patch: TenantPatch) -> StoreResult<Tenant> {
    let mut t = get_tenant(conn, id)?;
    if let Some(name) = patch.name {
        t.name = name;
    }
    if let Some(status) = patch.status {
        t.status = status;
    }
    // Only a given patch rewrites the column: a stored value this binary
    // could not read (and read as unset) stays until it is replaced.
    let limits = patch.limits.map(|l| {
        t.limits = l;
        l.to_stored()
    });
    if let Some(config) = patch.config {
        t.config = config;
    }
    t.updated_at = Timestamp::now();
    let hash = patch.api_key_hash.map(|h| h.to_vec());
    conn.prepare_cached(
        "UPDATE tenants SET name = ?, status = ?, updated_at = ?, api_key_hash = COALESCE(?, api_key_hash), \
         limits = COALESCE(?, limits), config = ? WHERE id = ?",
    )
    .and_then(|mut s| s.execute(params![t.name, t.status, t.updated_at, hash, limits, t.config, id]))
    .map_err(sql_err)?;
    Ok(t)
}

pub(crate) fn create_channel(conn: &Connection, new: NewChannel) -> StoreResult<Channel> {
    get_tenant(conn, new.tenant_id)?;
    let now = Timestamp::now();
    let c = new.into_channel(now);
    conn.prepare_cached(&format!("INSERT INTO channels ({CHANNEL_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"))
        .and_then(|mut s| s.execute(params![c.id, c.tenant_id, c.name, c.kind, c.secret, c.config, c.status, now, now]))
        .map_err(sql_err)?;
    Ok(c)
}

pub(crate) fn get_channel(conn: &Connection, scope: Scope, id: Id) -> StoreResult<Channel> {
    let sql = format!("SELECT {CHANNEL_COLS} FROM channels WHERE id = ?");
    let c = found(Entity::Channel, conn.prepare_cached(&sql).and_then(|mut s| s.query_row([id], rows::channel)))?;
    in_scope(scope, c.tenant_id, Entity::Channel)?;
    Ok(c)
}

pub(crate) fn list_channels(
    conn: &Connection,
    scope: Scope,
    filter: ChannelFilter,
    page: PageRequest,
) -> StoreResult<Page<Channel>> {
    ListQuery::new(CHANNEL_COLS, "channels")
        .eq("tenant_id", scope.tenant().map(id_value))
        .eq("status", filter.status.map(|s| s.as_str().to_string().into()))
        .fetch(conn, page, rows::channel, |c| c.id)
}

pub(crate) fn update_channel(conn: &Connection, scope: Scope, id: Id, patch: ChannelPatch) -> StoreResult<Channel> {
    let mut c = get_channel(conn, scope, id)?;
    if let Some(name) = patch.name {
        c.name = name;
    }
    if let Some(config) = patch.config {
        c.config = config;
    }
    if let Some(status) = patch.status {
        c.status = status;
    }
    if let Some(secret) = patch.secret {
        c.secret = secret;
    }
    c.updated_at = Timestamp::now();
    conn.prepare_cached(
        "UPDATE channels SET name = ?, config = ?, status = ?, secret = ?, updated_at = ? WHERE id = ?",
    )
    .and_then(|mut s| s.execute(params![c.name, c.config, c.status, c.secret, c.updated_at, id]))
    .map_err(sql_err)?;
    Ok(c)
}

pub(crate) fn create_conversation(conn: &Connection, new: NewConversation) -> StoreResult<Conversation> {
    let channel = get_channel(conn, Scope::Tenant(new.tenant_id), new.channel_id)?;
    if channel.status != Status::Active {
        return Err(StoreError::ChannelInactive);
    }
    let now = Timestamp::now();
    let c = Conversation {
        id: new_id(),
        tenant_id: new.tenant_id,
        channel_id: new.channel_id,
        status: ConversationStatus::Active,
        metadata: new.metadata,
        external_id: new.external_id,
        members_only: new.members_only,
        last_seq: 0,
        created_at: now,
        updated_at: now,
    };
    conn.prepare_cached(
        "INSERT INTO conversations (id, tenant_id, channel_id, status, metadata, external_id, created_at, updated_at, \
         members_only) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(params![
            c.id,
            c.tenant_id,
            c.channel_id,
            c.status,
            c.metadata,
            c.external_id,
            now,
            now,
            c.members_only
        ])
    })
    .map_err(|e| match sql_err(e) {
        StoreError::Conflict(_) => StoreError::Conflict("external_id is already used on this channel".into()),
        other => other,
    })?;
    super::events::fan_out(conn, c.tenant_id, EventType::ConversationCreated, &conversation_data(&c), now)?;
    Ok(c)
}

pub(crate) fn find_or_create_conversation(
    conn: &Connection,
    new: NewConversation,
) -> StoreResult<(Conversation, bool)> {
    let Some(external_id) = &new.external_id else {
        return Err(StoreError::Invalid("find_or_create_conversation needs an external_id".into()));
    };
    {
        let sql = format!("SELECT {CONVERSATION_COLS} FROM conversations WHERE channel_id = ? AND external_id = ?");
        let existing = conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(params![new.channel_id, external_id], rows::conversation).optional())
            .map_err(sql_err)?;
        if let Some(c) = existing {
            in_scope(Scope::Tenant(new.tenant_id), c.tenant_id, Entity::Channel)?;
            return Ok((c, false));
        }
    }
    create_conversation(conn, new).map(|c| (c, true))
}

pub(crate) fn get_conversation(conn: &Connection, scope: Scope, id: Id) -> StoreResult<Conversation> {
    let sql = format!("SELECT {CONVERSATION_COLS} FROM conversations WHERE id = ?");
    let c =
        found(Entity::Conversation, conn.prepare_cached(&sql).and_then(|mut s| s.query_row([id], rows::conversation)))?;
    in_scope(scope, c.tenant_id, Entity::Conversation)?;
    Ok(c)
}

pub(crate) fn list_conversations(
    conn: &Connection,
    scope: Scope,
    filter: ConversationFilter,
    page: PageRequest,
) -> StoreResult<Page<Conversation>> {
    ListQuery::new(CONVERSATION_COLS, "conversations")
        .eq("tenant_id", scope.tenant().map(id_value))
        .eq("channel_id", filter.channel_id.map(id_value))
        .eq("status", filter.status.map(|s| s.as_str().to_string().into()))
        .fetch(conn, page, rows::conversation, |c| c.id)
}

pub(crate) fn close_conversation(conn: &Connection, scope: Scope, id: Id) -> StoreResult<Conversation> {
    let mut c = get_conversation(conn, scope, id)?;
    if c.status == ConversationStatus::Closed {
        return Ok(c);
    }
    c.status = ConversationStatus::Closed;
    super::known::forget(id);
    c.updated_at = Timestamp::now();
    conn.prepare_cached("UPDATE conversations SET status = ?, updated_at = ? WHERE id = ?")
        .and_then(|mut s| s.execute(params![c.status, c.updated_at, id]))
        .map_err(sql_err)?;
    super::events::fan_out(conn, c.tenant_id, EventType::ConversationClosed, &conversation_data(&c), c.updated_at)?;
    Ok(c)
}

pub(crate) fn update_conversation(
    conn: &Connection,
    scope: Scope,
    id: Id,
    patch: ConversationPatch,
) -> StoreResult<Conversation> {
    let mut c = get_conversation(conn, scope, id)?;
    if let Some(metadata) = patch.metadata {
        c.metadata = metadata;
    }
    if let Some(members_only) = patch.members_only {
        c.members_only = members_only;
    }
    c.updated_at = Timestamp::now();
    conn.prepare_cached("UPDATE conversations SET metadata = ?, members_only = ?, updated_at = ? WHERE id = ?")
        .and_then(|mut s| s.execute(params![c.metadata, c.members_only, c.updated_at, id]))
        .map_err(sql_err)?;
    Ok(c)
}

/// Another tenant's row answers exactly like a missing one.
pub(crate) fn in_scope(scope: Scope, owner: Id, entity: Entity) -> StoreResult<()> {
    match scope {
        Scope::Tenant(t) if t != owner => Err(StoreError::NotFound(entity)),
        _ => Ok(()),
    }
}
