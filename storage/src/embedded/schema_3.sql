-- Embedded (SQLite) schema, step 3 (user_version 2 → 3). Mirrors
-- migrations/0003_tenant_limits.sql of the PostgreSQL backend.
--
-- A tenant's own rate limits: a JSON object holding only the keys that are
-- set, e.g. {"deliveries_per_second": 5}; '{}' (every existing tenant) means
-- the server's defaults. A value the server cannot use is read as unset.
ALTER TABLE tenants ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
