-- Embedded (SQLite) schema, version 1. It mirrors migrations/0001_init.sql of the
-- PostgreSQL backend: same tables, same constraints, SQLite types (ids as 16-byte
-- BLOBs, timestamps as INTEGER microseconds since the Unix epoch, JSON as TEXT).

CREATE TABLE tenants (
    id            BLOB    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    api_key_hash  BLOB    NOT NULL UNIQUE,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'inactive')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE channels (
    id          BLOB    NOT NULL PRIMARY KEY,
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id),
    name        TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    config      TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('active', 'inactive')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    -- Target of the tenant-consistent foreign keys below: a row may only point at
    -- a channel of its own tenant, enforced by the database, not only by code.
    UNIQUE (id, tenant_id)
);
CREATE INDEX channels_by_tenant ON channels (tenant_id, id);

-- No last_seq column: it is max(seq) of the conversation's activities, one index
-- seek away, so the hot write never has to update the conversation row.
CREATE TABLE conversations (
    id           BLOB    NOT NULL PRIMARY KEY,
    tenant_id    BLOB    NOT NULL REFERENCES tenants (id),
    channel_id   BLOB    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('active', 'closed')),
    metadata     TEXT    NOT NULL,
    external_id  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (id, tenant_id),
    FOREIGN KEY (channel_id, tenant_id) REFERENCES channels (id, tenant_id)
);
CREATE INDEX conversations_by_tenant ON conversations (tenant_id, id);
CREATE INDEX conversations_by_channel ON conversations (channel_id, id);
CREATE UNIQUE INDEX conversations_external_id ON conversations (channel_id, external_id)
    WHERE external_id IS NOT NULL;

-- A rowid table: rows carry message text and are often larger than the ~200 bytes
-- where WITHOUT ROWID pays off; inserts then append at the end of the table b-tree.
CREATE TABLE activities (
    id               BLOB    NOT NULL UNIQUE,
    tenant_id        BLOB    NOT NULL,
    conversation_id  BLOB    NOT NULL,
    seq              INTEGER NOT NULL,
    type             TEXT    NOT NULL,
    text             TEXT,
    attachments      TEXT,
    sender           TEXT    NOT NULL,
    metadata         TEXT    NOT NULL,
    idempotency_key  TEXT,
    created_at       INTEGER NOT NULL,
    UNIQUE (conversation_id, seq),
    FOREIGN KEY (conversation_id, tenant_id) REFERENCES conversations (id, tenant_id)
);
CREATE UNIQUE INDEX activities_idempotency_key ON activities (conversation_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id               BLOB    NOT NULL PRIMARY KEY,
    activity_id      BLOB    NOT NULL REFERENCES activities (id),
    channel_id       BLOB    NOT NULL,
    tenant_id        BLOB    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  INTEGER NOT NULL,
    delivered_at     INTEGER,
    metadata         TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (activity_id, channel_id),
    FOREIGN KEY (channel_id, tenant_id) REFERENCES channels (id, tenant_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_by_status ON deliveries (status, id);
CREATE INDEX deliveries_by_channel ON deliveries (channel_id, id);
