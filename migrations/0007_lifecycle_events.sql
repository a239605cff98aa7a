-- Lifecycle events (issue 17, item 2). Mirrored by the embedded store's
-- schema step 7.
--
-- event_endpoints: where a tenant's events go, and which types. The secret
-- (`whsec_…`) signs them per Standard Webhooks and is kept as issued (HMAC
-- needs it). A deleted endpoint keeps its row (status 'deleted'): events
-- written for it refer to it, and a write racing the delete cannot fail on
-- a vanished foreign key.
--
-- events: the queue, one row per (change, endpoint), written in the same
-- transaction as the change (an INSERT … SELECT over the tenant's active
-- endpoints); drained like deliveries (leases, attempts, retries).
CREATE TABLE event_endpoints (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    url         text        NOT NULL,
    events      text[]      NOT NULL,
    secret      text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('active', 'deleted')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX event_endpoints_by_tenant ON event_endpoints (tenant_id, id) WHERE status = 'active';

CREATE TABLE events (
    id               uuid        PRIMARY KEY,
    tenant_id        uuid        NOT NULL REFERENCES tenants (id),
    endpoint_id      uuid        NOT NULL REFERENCES event_endpoints (id),
    type             text        NOT NULL,
    data             jsonb       NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX events_due ON events (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE INDEX events_by_endpoint ON events (endpoint_id, status);

-- A UUID v7 made by the database, for the rows a fan-out writes in one
-- statement (one per matching endpoint): 48 bits of unix milliseconds, then
-- gen_random_uuid()'s random bits with the version set to 7 (the variant
-- bits are already RFC 4122's). gen_random_uuid() is core from PostgreSQL 13.
CREATE FUNCTION converger_uuid_v7() RETURNS uuid AS $$
    SELECT encode(
        set_bit(set_bit(set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1), 54, 1), 55, 0),
        'hex')::uuid
$$ LANGUAGE sql VOLATILE;
