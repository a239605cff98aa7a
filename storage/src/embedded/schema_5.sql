-- Embedded (SQLite) schema, step 5 (user_version 4 → 5). Mirrors
-- migrations/0005_signing_keys.sql of the PostgreSQL backend: tenants' own
-- keys for signing client tokens. kid is unique across tenants; an HS256
-- key keeps its secret as issued (HMAC verification needs it), a JWKS key
-- its URL. Revoking a key deletes its row.
CREATE TABLE signing_keys (
    kid         TEXT    NOT NULL PRIMARY KEY,
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id),
    kind        TEXT    NOT NULL CHECK (kind IN ('hs256', 'jwks')),
    secret      TEXT,
    jwks_url    TEXT,
    created_at  INTEGER NOT NULL,
    CHECK ((kind = 'hs256' AND secret IS NOT NULL AND jwks_url IS NULL)
        OR (kind = 'jwks' AND jwks_url IS NOT NULL AND secret IS NULL))
);
CREATE INDEX signing_keys_by_tenant ON signing_keys (tenant_id, created_at);
