-- Converger schema, PostgreSQL.
--
-- Names are never schema-qualified: the search_path decides where they live,
-- so tests can run each case in its own schema.
--
-- Tenant isolation is enforced by the database as well as by the queries:
-- every child row names its tenant, and composite foreign keys
-- (tenant_id, parent_id) make it impossible to attach a row to another
-- tenant's parent. The UNIQUE (tenant_id, id) constraints exist for those keys
-- and double as the index of the tenant-scoped lists, which page by id.

CREATE TABLE tenants (
    id            uuid        PRIMARY KEY,
    name          text        NOT NULL,
    api_key_hash  bytea       NOT NULL CHECK (octet_length(api_key_hash) = 32),
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT tenants_api_key_hash_key UNIQUE (api_key_hash)
);

CREATE TABLE channels (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    name        text        NOT NULL,
    kind        text        NOT NULL,
    secret      text        NOT NULL,
    config      jsonb       NOT NULL,
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT channels_tenant_id_id_key UNIQUE (tenant_id, id)
);
-- list_channels with a status filter.
CREATE INDEX channels_tenant_status_id ON channels (tenant_id, status, id);

-- No last_seq column: it is max(seq) over activities (conversation_id, seq), one
-- index step away. Updating a column per conversation per batch wrote a new row
-- version into every index below and was a third of the batched write's cost.
CREATE TABLE conversations (
    id           uuid        PRIMARY KEY,
    tenant_id    uuid        NOT NULL REFERENCES tenants (id),
    channel_id   uuid        NOT NULL,
    status       text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    metadata     jsonb       NOT NULL DEFAULT '{}',
    external_id  text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    CONSTRAINT conversations_tenant_id_id_key UNIQUE (tenant_id, id),
    CONSTRAINT conversations_channel_fkey FOREIGN KEY (tenant_id, channel_id)
        REFERENCES channels (tenant_id, id)
);
-- One conversation per external id (e.g. a phone number) on a channel.
CREATE UNIQUE INDEX conversations_channel_external_id_key
    ON conversations (channel_id, external_id) WHERE external_id IS NOT NULL;
-- list_conversations: tenant + status; channel (+ status), which also serve the
-- admin scope because a channel belongs to one tenant; admin + status.
CREATE INDEX conversations_tenant_status_id ON conversations (tenant_id, status, id);
CREATE INDEX conversations_channel_id_id ON conversations (channel_id, id);
CREATE INDEX conversations_channel_status_id ON conversations (channel_id, status, id);
CREATE INDEX conversations_status_id ON conversations (status, id);

-- The hot table: kept to the indexes the write and read paths need. Its tenant
-- is enforced through the composite key to its conversation (whose tenant is a
-- real tenant); a second, direct key to tenants would double the per-row
-- foreign-key checks, which are most of the insert's cost (perf: ~35 % of the
-- backend's time with both).
CREATE TABLE activities (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    conversation_id  uuid        NOT NULL,
    seq              bigint      NOT NULL CHECK (seq > 0),
    kind             text        NOT NULL,
    text             text,
    attachments      jsonb,
    sender           text        NOT NULL,
    metadata         jsonb       NOT NULL DEFAULT '{}',
    idempotency_key  text,
    created_at       timestamptz NOT NULL,
    -- Also the index of read_range (seq order within a conversation).
    CONSTRAINT activities_conversation_seq_key UNIQUE (conversation_id, seq)
    -- The key to conversations is enforced by the triggers below.
);
CREATE UNIQUE INDEX activities_conversation_idempotency_key
    ON activities (conversation_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- activities (tenant_id, conversation_id) → conversations (tenant_id, id): a
-- foreign key checked once per statement instead of once per row. A declared
-- key runs one query per inserted row, ~30 % of the server's time on batched
-- writes (docs/benchmarks.md); this checks a whole batch in one query. It keeps
-- a declared key's guarantees: the child side locks the parents it names
-- (KEY SHARE, like a declared key) and fails with SQLSTATE 23503 naming
-- `activities_conversation_fkey`; the parent side refuses to delete or re-key
-- a conversation that activities reference.
CREATE FUNCTION activities_conversation_fkey_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    locked bigint;
BEGIN
    SELECT count(*) INTO wanted FROM (SELECT DISTINCT tenant_id, conversation_id FROM new_rows) w;
    SELECT count(*) INTO locked FROM (
        SELECT 1 FROM conversations c
        WHERE (c.tenant_id, c.id) IN (SELECT tenant_id, conversation_id FROM new_rows)
        FOR KEY SHARE OF c) l;
    IF locked < wanted THEN
        RAISE EXCEPTION 'insert or update on table "activities" violates foreign key constraint "activities_conversation_fkey"'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'activities_conversation_fkey',
                  TABLE = 'activities',
                  DETAIL = 'Key (tenant_id, conversation_id) is not present in table "conversations".';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER activities_conversation_fkey_insert AFTER INSERT ON activities
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION activities_conversation_fkey_check();
CREATE TRIGGER activities_conversation_fkey_update AFTER UPDATE ON activities
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION activities_conversation_fkey_check();

CREATE FUNCTION activities_conversation_fkey_parent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR OLD.id <> NEW.id OR OLD.tenant_id <> NEW.tenant_id)
        AND EXISTS (SELECT 1 FROM activities a WHERE a.conversation_id = OLD.id AND a.tenant_id = OLD.tenant_id) THEN
        RAISE EXCEPTION 'update or delete on table "conversations" violates foreign key constraint "activities_conversation_fkey" on table "activities"'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'activities_conversation_fkey',
                  TABLE = 'conversations';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER activities_conversation_fkey_parent BEFORE DELETE OR UPDATE OF id, tenant_id ON conversations
    FOR EACH ROW EXECUTE FUNCTION activities_conversation_fkey_parent();

-- Deliveries, likewise, reach their tenant through the composite channel key.
CREATE TABLE deliveries (
    id               uuid        PRIMARY KEY,
    activity_id      uuid        NOT NULL REFERENCES activities (id),
    channel_id       uuid        NOT NULL,
    tenant_id        uuid        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       text,
    next_attempt_at  timestamptz NOT NULL,
    delivered_at     timestamptz,
    metadata         jsonb       NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    -- Also the index of the activity_id filter.
    CONSTRAINT deliveries_activity_channel_key UNIQUE (activity_id, channel_id),
    CONSTRAINT deliveries_channel_fkey FOREIGN KEY (tenant_id, channel_id)
        REFERENCES channels (tenant_id, id)
);
-- The queue: only pending rows are ever claimed, so the index holds only them
-- and stays small however many deliveries are done.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
-- list_deliveries: tenant (+ status), channel, admin + status.
CREATE INDEX deliveries_tenant_id_id ON deliveries (tenant_id, id);
CREATE INDEX deliveries_tenant_status_id ON deliveries (tenant_id, status, id);
CREATE INDEX deliveries_channel_id_id ON deliveries (channel_id, id);
CREATE INDEX deliveries_status_id ON deliveries (status, id);
