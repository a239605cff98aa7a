-- Embedded (SQLite) schema, step 4 (user_version 3 → 4). Mirrors
-- migrations/0004_conversation_features.sql of the PostgreSQL backend:
-- the message lifecycle, members with their receipts, and users' last seen.

-- A message's current state, kept on its own row by the write that changes
-- it (an edit, a delete, a reply), so reads need no replay. The lifecycle
-- activities themselves keep the message they act on in target_id.
ALTER TABLE activities ADD COLUMN target_id BLOB;
ALTER TABLE activities ADD COLUMN parent_id BLOB;
ALTER TABLE activities ADD COLUMN edited_at INTEGER;
ALTER TABLE activities ADD COLUMN deleted_at INTEGER;
ALTER TABLE activities ADD COLUMN reply_count INTEGER NOT NULL DEFAULT 0;
CREATE INDEX activities_by_target ON activities (target_id) WHERE target_id IS NOT NULL;
CREATE INDEX activities_by_parent ON activities (parent_id, seq) WHERE parent_id IS NOT NULL;

ALTER TABLE conversations ADD COLUMN members_only INTEGER NOT NULL DEFAULT 0;

-- One row per (message, sender, emoji): at most one of each. reaction_id is
-- the reaction_add activity that set it (a repeated add answers that one).
CREATE TABLE reactions (
    activity_id      BLOB    NOT NULL REFERENCES activities (id),
    sender           TEXT    NOT NULL,
    emoji            TEXT    NOT NULL,
    reaction_id      BLOB    NOT NULL REFERENCES activities (id),
    conversation_id  BLOB    NOT NULL,
    PRIMARY KEY (activity_id, sender, emoji)
) WITHOUT ROWID;

CREATE TABLE members (
    id               BLOB    NOT NULL PRIMARY KEY,
    tenant_id        BLOB    NOT NULL,
    conversation_id  BLOB    NOT NULL,
    sender           TEXT    NOT NULL,
    role             TEXT,
    metadata         TEXT    NOT NULL,
    joined_at        INTEGER NOT NULL,
    read_seq         INTEGER NOT NULL DEFAULT 0,
    delivered_seq    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (conversation_id, sender),
    FOREIGN KEY (conversation_id, tenant_id) REFERENCES conversations (id, tenant_id)
);
CREATE INDEX members_by_conversation ON members (conversation_id, id);
CREATE INDEX members_by_sender ON members (tenant_id, sender);

-- When each user (a sender id of a tenant) was last connected.
CREATE TABLE users (
    tenant_id  BLOB    NOT NULL REFERENCES tenants (id),
    sender     TEXT    NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, sender)
) WITHOUT ROWID;
