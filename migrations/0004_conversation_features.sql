-- Conversation features (issue 16): the message lifecycle, members with
-- their receipts, and users' last seen. Mirrored by the embedded store's
-- schema step 4.

-- A message's current state, kept on its own row by the write that changes
-- it (an edit, a delete, a reply), so reads need no replay. The lifecycle
-- activities themselves keep the message they act on in target_id.
-- ADD COLUMN with a constant default (or none) rewrites no rows.
ALTER TABLE activities
    ADD COLUMN target_id    uuid,
    ADD COLUMN parent_id    uuid,
    ADD COLUMN edited_at    timestamptz,
    ADD COLUMN deleted_at   timestamptz,
    ADD COLUMN reply_count  integer NOT NULL DEFAULT 0;
CREATE INDEX activities_by_target ON activities (target_id) WHERE target_id IS NOT NULL;
CREATE INDEX activities_by_parent ON activities (parent_id, seq) WHERE parent_id IS NOT NULL;

ALTER TABLE conversations ADD COLUMN members_only boolean NOT NULL DEFAULT false;

-- One row per (message, sender, emoji): at most one of each. reaction_id is
-- the reaction_add activity that set it (a repeated add answers that one).
CREATE TABLE reactions (
    activity_id      uuid NOT NULL REFERENCES activities (id),
    sender           text NOT NULL,
    emoji            text NOT NULL,
    reaction_id      uuid NOT NULL REFERENCES activities (id),
    conversation_id  uuid NOT NULL,
    PRIMARY KEY (activity_id, sender, emoji)
);

CREATE TABLE members (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL,
    conversation_id  uuid        NOT NULL,
    sender           text        NOT NULL,
    role             text,
    metadata         jsonb       NOT NULL DEFAULT '{}',
    joined_at        timestamptz NOT NULL,
    read_seq         bigint      NOT NULL DEFAULT 0 CHECK (read_seq >= 0),
    delivered_seq    bigint      NOT NULL DEFAULT 0 CHECK (delivered_seq >= 0),
    CONSTRAINT members_conversation_sender_key UNIQUE (conversation_id, sender),
    CONSTRAINT members_conversation_fkey FOREIGN KEY (tenant_id, conversation_id)
        REFERENCES conversations (tenant_id, id)
);
CREATE INDEX members_by_conversation ON members (conversation_id, id);
CREATE INDEX members_by_sender ON members (tenant_id, sender);

-- When each user (a sender id of a tenant) was last connected.
CREATE TABLE users (
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    sender     text        NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, sender)
);
