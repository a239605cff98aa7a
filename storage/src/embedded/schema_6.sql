-- Embedded (SQLite) schema, step 6 (user_version 5 → 6). Mirrors
-- migrations/0006_tenant_config.sql of the PostgreSQL backend: a tenant's own
-- settings as a JSON object (today its default pre-publish hook).
ALTER TABLE tenants ADD COLUMN config TEXT NOT NULL DEFAULT '{}';
