-- Embedded (SQLite) schema, step 7. Mirrors
-- migrations/0007_lifecycle_events.sql of the PostgreSQL backend: tenants'
-- event endpoints (events: a JSON array of type names; a deleted endpoint
-- keeps its row, status 'deleted') and the events queue, one row per
-- (change, endpoint), written in the change's transaction.
CREATE TABLE event_endpoints (
    id          BLOB    NOT NULL PRIMARY KEY,
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id),
    url         TEXT    NOT NULL,
    events      TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('active', 'deleted')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX event_endpoints_by_tenant ON event_endpoints (tenant_id, id) WHERE status = 'active';

CREATE TABLE events (
    id               BLOB    NOT NULL PRIMARY KEY,
    tenant_id        BLOB    NOT NULL REFERENCES tenants (id),
    endpoint_id      BLOB    NOT NULL REFERENCES event_endpoints (id),
    type             TEXT    NOT NULL,
    data             TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  INTEGER NOT NULL,
    delivered_at     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX events_due ON events (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE INDEX events_by_endpoint ON events (endpoint_id, status);
