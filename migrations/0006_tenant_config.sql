-- A tenant's own settings (issue 17): a JSON object, '{}' for every existing
-- tenant. Today one key: "pre_publish", the tenant's default pre-publish hook
-- ({url, timeout_ms, on_failure}), called for conversations whose channel has
-- no hook of its own. Checked by the server when written; like limits, no
-- CHECK constraint pins the keys, so a newer binary may add one without a
-- migration. Mirrored by the embedded store's schema step 6.
--
-- ADD COLUMN with a constant default rewrites no rows (PostgreSQL 11+).
ALTER TABLE tenants ADD COLUMN config jsonb NOT NULL DEFAULT '{}';
